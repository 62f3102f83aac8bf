/**
 * End-to-end over the wire: the real Python server, driven from plain Node with Microsoft's
 * protocol libraries (the ones vscode-languageclient is built on), with the initialization
 * options the extension sends. No VS Code needed.
 *
 * The server runs as `$CKPT_LSP_PYTHON -m ckpt_lsp --stdio`; CKPT_LSP_PYTHON defaults to the
 * repository's .venv/bin/python. Without that interpreter the test is skipped, except under CI
 * (CI=true), where it fails.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';

import {
  StreamMessageReader,
  StreamMessageWriter,
  createMessageConnection,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import {
  CodeActionKind,
  type CodeAction,
  type Command,
  type Diagnostic,
  type InitializeParams,
  type InitializeResult,
  type PublishDiagnosticsParams,
  type TextEdit,
  type WorkspaceEdit,
} from 'vscode-languageserver-protocol';

import { JUPYTER_NOTEBOOK, NOTEBOOK_FIX_ALL_KIND } from '../src/selector';
import { DEFAULT_SETTINGS, buildInitializationOptions } from '../src/settings';

const ROOT = path.resolve(__dirname, '..', '..');
const PYTHON = process.env.CKPT_LSP_PYTHON || path.join(ROOT, '.venv', 'bin', 'python');
const FIX_ALL = 'source.fixAll.ckpt-lsp';
const WAIT_MS = 60_000;
const MODEL = [
  'import threading',
  'from torch import nn',
  'class M(nn.Module):',
  '    def __init__(self):',
  '        super().__init__()',
  '        self.lock = threading.Lock()',
  '',
].join('\n');

const skip = !fs.existsSync(PYTHON) && process.env.CI !== 'true';
if (skip) {
  process.stderr.write(`protocol.test: ${PYTHON} does not exist; set CKPT_LSP_PYTHON to run it\n`);
}

/** Apply LSP text edits to a string (edits do not overlap, as the protocol requires). */
function applyEdits(text: string, edits: TextEdit[]): string {
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\n') {
      lineStarts.push(i + 1);
    }
  }
  const offset = (p: { line: number; character: number }) =>
    p.line >= lineStarts.length ? text.length : lineStarts[p.line] + p.character;
  const sorted = [...edits].sort((a, b) => offset(b.range.start) - offset(a.range.start));
  let out = text;
  for (const edit of sorted) {
    out = out.slice(0, offset(edit.range.start)) + edit.newText + out.slice(offset(edit.range.end));
  }
  return out;
}

function editsFor(edit: WorkspaceEdit | undefined, uri: string): TextEdit[] {
  if (!edit) {
    return [];
  }
  const fromChanges = edit.changes?.[uri] ?? [];
  const fromDocumentChanges = (edit.documentChanges ?? []).flatMap((change) =>
    'textDocument' in change && change.textDocument.uri === uri
      ? change.edits.filter((e): e is TextEdit => 'range' in e)
      : [],
  );
  return [...fromChanges, ...fromDocumentChanges];
}

function codeOf(d: Diagnostic): string {
  return String(d.code);
}

describe('the Python server over stdio', { skip }, () => {
  let child: ChildProcessWithoutNullStreams;
  let connection: MessageConnection;
  let workspace: string;
  let uri: string;
  let stderr = '';
  let exitCode: Promise<number | null>;
  const published: PublishDiagnosticsParams[] = [];
  const waiters: (() => void)[] = [];

  /** A request that fails with the server's stderr if the server dies instead of answering. */
  async function request<T>(method: string, params?: unknown): Promise<T> {
    const died = exitCode.then((code) => {
      throw new Error(`the server exited (${code}) during ${method}; stderr:\n${stderr}`);
    });
    const answer =
      params === undefined ? connection.sendRequest(method) : connection.sendRequest(method, params);
    return (await Promise.race([answer, died])) as T;
  }

  /** Resolve with the first publication for `uri` that `accept` takes, at or after `since`. */
  function diagnosticsWhere(
    accept: (diagnostics: Diagnostic[]) => boolean,
    since: number,
    what: string,
    target: string = uri,
  ): Promise<Diagnostic[]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const seen = JSON.stringify(published.slice(since).map((p) => [p.uri, p.diagnostics.map((d) => [d.code, d.range.start.line])]));
        reject(new Error(`no ${what} in ${WAIT_MS} ms; published: ${seen}\nstderr: ${stderr}`));
      }, WAIT_MS);
      const check = () => {
        const hit = published.slice(since).find((p) => p.uri === target && accept(p.diagnostics));
        if (hit) {
          clearTimeout(timer);
          resolve(hit.diagnostics);
          return true;
        }
        return false;
      };
      // each publication wakes the waiters once: wait again until one is accepted
      const wait = () => {
        if (!check()) {
          waiters.push(wait);
        }
      };
      wait();
    });
  }

  before(async () => {
    workspace = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-lsp-protocol-')));
    const file = path.join(workspace, 'model.py');
    fs.writeFileSync(file, MODEL);
    uri = pathToFileURL(file).href;
    child = spawn(PYTHON, ['-m', 'ckpt_lsp', '--stdio'], { cwd: workspace, stdio: 'pipe' });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-8000);
    });
    exitCode = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    connection = createMessageConnection(
      new StreamMessageReader(child.stdout),
      new StreamMessageWriter(child.stdin),
    );
    connection.onNotification('textDocument/publishDiagnostics', (params: PublishDiagnosticsParams) => {
      published.push(params);
      for (const wake of waiters.splice(0)) {
        wake();
      }
    });
    // Progress tokens, capability registrations, configuration pulls: say yes, change nothing.
    connection.onRequest(() => null);
    connection.listen();
  });

  after(async () => {
    connection?.dispose();
    if (child && child.exitCode === null) {
      child.kill();
    }
    if (workspace) {
      fs.rmSync(workspace, { recursive: true, force: true });
    }
  });

  it('initializes with the options the extension sends', { timeout: WAIT_MS }, async () => {
    const params: InitializeParams = {
      processId: process.pid,
      rootUri: pathToFileURL(workspace).href,
      workspaceFolders: [{ uri: pathToFileURL(workspace).href, name: 'ws' }],
      capabilities: {
        textDocument: {
          publishDiagnostics: { versionSupport: true, codeDescriptionSupport: true },
          codeAction: {
            codeActionLiteralSupport: {
              codeActionKind: { valueSet: [CodeActionKind.QuickFix, CodeActionKind.Source] },
            },
            resolveSupport: { properties: ['edit'] },
          },
        },
        window: { workDoneProgress: true },
        notebookDocument: { synchronization: { dynamicRegistration: true } },
      },
      initializationOptions: buildInitializationOptions(
        { ...DEFAULT_SETTINGS, select: ['CKPT005', 'CKPT001'] },
        DEFAULT_SETTINGS,
      ),
    };
    const result = await request<InitializeResult>('initialize', params);
    assert.equal(result.serverInfo?.name, 'ckpt-lsp');
    // The extension relies on the server announcing this command (the client registers it).
    assert.deepEqual(result.capabilities.executeCommandProvider?.commands, [
      'ckpt-lsp.checkWorkspace',
    ]);
    const actions = result.capabilities.codeActionProvider;
    assert.ok(actions && typeof actions === 'object', 'no codeActionProvider options');
    assert.ok(actions.codeActionKinds?.includes(FIX_ALL), JSON.stringify(actions));
    assert.ok(actions.codeActionKinds?.includes(NOTEBOOK_FIX_ALL_KIND), JSON.stringify(actions));
    // vscode-languageclient syncs the notebooks this selector names, cell by cell language
    const sync = result.capabilities.notebookDocumentSync;
    assert.ok(sync && 'notebookSelector' in sync, JSON.stringify(sync));
    assert.deepEqual(sync.notebookSelector, [
      { notebook: JUPYTER_NOTEBOOK, cells: [{ language: 'python' }] },
    ]);
    await connection.sendNotification('initialized', {});
  });

  let lockDiagnostic: Diagnostic;

  it('publishes CKPT005 for the lock on line index 5', { timeout: WAIT_MS + 5000 }, async () => {
    await connection.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: 'python', version: 1, text: MODEL },
    });
    const diagnostics = await diagnosticsWhere(
      (ds) => ds.some((d) => codeOf(d) === 'CKPT005'),
      0,
      'CKPT005 diagnostic',
    );
    const found = diagnostics.find((d) => codeOf(d) === 'CKPT005');
    assert.ok(found);
    assert.equal(found.range.start.line, 5);
    assert.equal(found.source, 'ckpt-lsp');
    assert.match(found.message, /lock/);
    lockDiagnostic = found;
  });

  it('offers a quick fix for it', { timeout: WAIT_MS }, async () => {
    assert.ok(lockDiagnostic, 'no diagnostic from the previous step');
    const answer = await request<(CodeAction | Command)[] | null>('textDocument/codeAction', {
        textDocument: { uri },
        range: lockDiagnostic.range,
        context: { diagnostics: [lockDiagnostic], only: [CodeActionKind.QuickFix] },
    });
    const fixes = (answer ?? []).filter(
      (a): a is CodeAction => 'kind' in a && a.kind === CodeActionKind.QuickFix,
    );
    assert.ok(fixes.length > 0, `no quick fix: ${JSON.stringify(answer)}`);
  });

  it('applies changed settings without a restart (didChangeConfiguration)', {
    timeout: 2 * WAIT_MS + 5000,
  }, async () => {
    // What vscode-languageclient sends for `synchronize.configurationSection: 'ckpt-lsp'`.
    const send = (select: string[]) =>
      connection.sendNotification('workspace/didChangeConfiguration', {
        settings: { 'ckpt-lsp': { ...DEFAULT_SETTINGS, select } },
      });
    let since = published.length;
    await send(['CKPT001']);
    await diagnosticsWhere(
      (ds) => !ds.some((d) => codeOf(d) === 'CKPT005'),
      since,
      'publication without CKPT005 once only CKPT001 is selected',
    );
    since = published.length;
    await send([]);
    await diagnosticsWhere(
      (ds) => ds.some((d) => codeOf(d) === 'CKPT005'),
      since,
      'CKPT005 again once every rule is selected',
    );
  });

  it('fixes the whole file with source.fixAll.ckpt-lsp', { timeout: WAIT_MS + 5000 }, async () => {
    const lines = MODEL.split('\n').length;
    const answer = await request<(CodeAction | Command)[] | null>('textDocument/codeAction', {
        textDocument: { uri },
        range: { start: { line: 0, character: 0 }, end: { line: lines, character: 0 } },
        context: { diagnostics: [], only: [FIX_ALL] },
    });
    let action = (answer ?? []).find((a): a is CodeAction => 'kind' in a && a.kind === FIX_ALL);
    assert.ok(action, `no ${FIX_ALL} action: ${JSON.stringify(answer)}`);
    if (!action.edit) {
      action = await request<CodeAction>('codeAction/resolve', action);
    }
    const fixed = applyEdits(MODEL, editsFor(action.edit, uri));
    assert.match(fixed, /def __getstate__\(self\)/);

    const since = published.length;
    await connection.sendNotification('textDocument/didChange', {
      textDocument: { uri, version: 2 },
      contentChanges: [{ text: fixed }],
    });
    await diagnosticsWhere(
      (ds) => !ds.some((d) => codeOf(d) === 'CKPT005'),
      since,
      'publication without CKPT005 after the fix',
    );
  });

  it('checks a notebook\'s cells together and fixes in the cell', { timeout: WAIT_MS + 5000 }, async () => {
    const notebook = pathToFileURL(path.join(workspace, 'train.ipynb')).href;
    const cell = (n: number) => `vscode-notebook-cell:${notebook.slice('file://'.length)}#W${n}sZmlsZQ%3D%3D`;
    const sources = [
      'import threading\nfrom torch import nn\nclass Base(nn.Module):\n    pass',
      '%time x = 1\nclass M(Base):\n    def __init__(self):\n        super().__init__()\n        self.lock = threading.Lock()',
    ];
    await connection.sendNotification('notebookDocument/didOpen', {
      notebookDocument: {
        uri: notebook,
        notebookType: JUPYTER_NOTEBOOK,
        version: 1,
        cells: [
          { kind: 2, document: cell(0) },
          { kind: 1, document: cell(1) },
          { kind: 2, document: cell(2) },
        ],
      },
      cellTextDocuments: [
        { uri: cell(0), languageId: 'python', version: 1, text: sources[0] },
        { uri: cell(1), languageId: 'markdown', version: 1, text: '# notes' },
        { uri: cell(2), languageId: 'python', version: 1, text: sources[1] },
      ],
    });
    const diagnostics = await diagnosticsWhere(
      (ds) => ds.some((d) => codeOf(d) === 'CKPT005'),
      0,
      'CKPT005 in the third cell',
      cell(2),
    );
    const lock = diagnostics.find((d) => codeOf(d) === 'CKPT005');
    assert.ok(lock);
    assert.equal(lock.range.start.line, 4); // counted from the cell's first line
    const answer = await request<(CodeAction | Command)[] | null>('textDocument/codeAction', {
      textDocument: { uri: cell(2) },
      range: lock.range,
      context: { diagnostics: [lock], only: [CodeActionKind.QuickFix] },
    });
    let fix = (answer ?? []).find((a): a is CodeAction => 'isPreferred' in a && a.isPreferred === true);
    assert.ok(fix, JSON.stringify(answer));
    if (!fix.edit) {
      fix = await request<CodeAction>('codeAction/resolve', fix);
    }
    const fixed = applyEdits(sources[1], editsFor(fix.edit, cell(2)));
    assert.match(fixed, /^%time x = 1\n/);
    assert.match(fixed, /def __getstate__\(self\)/);
    assert.deepEqual(editsFor(fix.edit, cell(0)), []);
    await connection.sendNotification('notebookDocument/didClose', {
      notebookDocument: { uri: notebook },
      cellTextDocuments: [{ uri: cell(0) }, { uri: cell(1) }, { uri: cell(2) }],
    });
  });

  it('checks the whole workspace on ckpt-lsp.checkWorkspace', { timeout: WAIT_MS }, async () => {
    const result = await request<Record<string, unknown>>('workspace/executeCommand', {
      command: 'ckpt-lsp.checkWorkspace',
      arguments: [],
    });
    assert.equal(result.files, 1, JSON.stringify(result));
    assert.equal(typeof result.findings, 'number');
  });

  it('shuts down and exits cleanly', { timeout: WAIT_MS }, async () => {
    await request('shutdown');
    await connection.sendNotification('exit');
    assert.equal(await exitCode, 0, stderr);
  });
});
