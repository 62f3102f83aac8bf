/**
 * "Fix All in File": ask the server for its `source.fixAll.ckpt-lsp` action on the whole document
 * and apply it. The request goes straight to our server (not through every code action
 * provider) so only ckpt-lsp's edit is applied.
 */

import * as vscode from 'vscode';
import {
  CodeActionRequest,
  CodeActionResolveRequest,
  CodeActionTriggerKind,
  type CodeAction,
  type Command,
  type LanguageClient,
} from 'vscode-languageclient/node';

import { FIX_ALL_KIND } from './server';

function isCodeAction(item: Command | CodeAction): item is CodeAction {
  return typeof (item as Command).command !== 'string';
}

/** Apply the server's fix-all to `editor`; true when the document changed. */
export async function fixAllInEditor(
  client: LanguageClient | undefined,
  editor: vscode.TextEditor | undefined,
  log: vscode.LogOutputChannel,
): Promise<boolean> {
  if (!editor || editor.document.languageId !== 'python') {
    log.info('Fix all: the active editor is not a Python file.');
    void vscode.window.showInformationMessage('ckpt-lsp: open a Python file to fix.');
    return false;
  }
  if (!client) {
    log.info('Fix all: the server is not running.');
    void vscode.window.showWarningMessage('ckpt-lsp: the server is not running.');
    return false;
  }
  const document = editor.document;
  const version = document.version;
  const whole = new vscode.Range(0, 0, document.lineCount, 0);
  const c2p = client.code2ProtocolConverter;
  const answer = await client.sendRequest(CodeActionRequest.type, {
    textDocument: c2p.asTextDocumentIdentifier(document),
    range: c2p.asRange(document.validateRange(whole)),
    context: { diagnostics: [], only: [FIX_ALL_KIND], triggerKind: CodeActionTriggerKind.Invoked },
  });
  let action = (answer ?? [])
    .filter(isCodeAction)
    .find((item) => item.kind === undefined || item.kind.startsWith(FIX_ALL_KIND));
  if (!action) {
    log.info(`Fix all: the server offers no ${FIX_ALL_KIND} action for ${document.uri.fsPath}.`);
    void vscode.window.setStatusBarMessage('ckpt-lsp: nothing to fix in this file', 5000);
    return false;
  }
  if (!action.edit && action.data !== undefined) {
    action = await client.sendRequest(CodeActionResolveRequest.type, action);
  }
  if (document.version !== version) {
    log.info('Fix all: the document changed while the fix was computed; not applied.');
    return false;
  }
  let changed = false;
  if (action.edit) {
    const edit = await client.protocol2CodeConverter.asWorkspaceEdit(action.edit);
    changed = await vscode.workspace.applyEdit(edit);
    log.info(changed ? `Fix all: applied "${action.title}".` : 'Fix all: VS Code refused the edit.');
  }
  if (action.command) {
    const args: unknown[] = action.command.arguments ?? [];
    await vscode.commands.executeCommand(action.command.command, ...args);
  }
  return changed;
}
