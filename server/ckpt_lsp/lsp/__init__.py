"""The language server face of ckpt-lsp (pygls 2): diagnostics, code actions, hover.

Where things live:

    server.py             the pygls server and protocol, the stdio loop
    handlers/             one module per LSP request or notification (registry.py wires them)
    session.py            builds the parts below; handlers reach them through it
    open_documents.py     the open documents and the file names the analysis uses
    workspace_folders.py  a project per folder, with its settings (editor_settings.py)
    scheduling.py         the analysis and fix threads, the queue of documents to check
    document_checks.py    an open document's newest text -> a current result
    analysis_jobs.py      what runs on the analysis thread
    publishing.py         each document's result, pushed or pulled
    file_watching.py      the index follows files changed on disk
    workspace_checks.py   the start-up index and checkWorkspace
    fix_resolution.py     quick-fix edits, built on the fix thread
    actions.py, hover.py, diagnostics.py   what code actions, hovers and diagnostics say
"""
