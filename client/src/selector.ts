/**
 * Which documents the client hands to the server (no `vscode` import: the tests read it).
 *
 * Python files on disk and untitled ones, and the Python cells of Jupyter notebooks. For a
 * notebook the server announces LSP 3.17 notebook sync (`notebookDocumentSync`), so
 * vscode-languageclient sends the whole notebook (`notebookDocument/didOpen`, `didChange` ...)
 * and no `textDocument/didOpen` per cell; the cell filter here is what routes the per-cell
 * requests (diagnostics, code actions, hover) of those cells to the server.
 */

/** The notebook type of `.ipynb` files in VS Code. */
export const JUPYTER_NOTEBOOK = 'jupyter-notebook';

export const DOCUMENT_SELECTOR = [
  { scheme: 'file', language: 'python' },
  { scheme: 'untitled', language: 'python' },
  { notebook: JUPYTER_NOTEBOOK, language: 'python' },
];

/** The server's fix-all kinds: per file or cell, and once per notebook on save. */
export const FIX_ALL_KIND = 'source.fixAll.ckpt-lsp';
export const NOTEBOOK_FIX_ALL_KIND = `notebook.${FIX_ALL_KIND}`;
