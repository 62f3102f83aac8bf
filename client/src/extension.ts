/**
 * Entry point: activate/deactivate, the commands, and the events that restart the server
 * (a process setting changed, the Python extension switched environments, folders changed).
 */

import * as vscode from 'vscode';

import { fixAllInEditor } from './fixAll';
import { ServerManager } from './manager';
import { onActiveEnvironmentChanged } from './pythonExtension';
import { SECTION, needsRestart, readSettings } from './settings';
import type { ServerState } from './status';

const RESTART_DELAY_MS = 300;

let manager: ServerManager | undefined;

/** Several events in a row (a settings file saved, then the environment) give one restart. */
function debounced(action: (reason: string) => void): (reason: string) => void {
  let timer: NodeJS.Timeout | undefined;
  const reasons = new Set<string>();
  return (reason: string) => {
    reasons.add(reason);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const all = [...reasons].join(', ');
      reasons.clear();
      action(all);
    }, RESTART_DELAY_MS);
  };
}

/** What `activate` returns to other extensions (tests read the server's state through it). */
export interface CkptLspApi {
  /** starting, running, stopped or error. */
  serverState(): ServerState;
  /** The status bar item's tooltip: the state, why, the interpreter. */
  statusTooltip(): string;
}

export async function activate(context: vscode.ExtensionContext): Promise<CkptLspApi> {
  const log = vscode.window.createOutputChannel('ckpt-lsp', { log: true });
  context.subscriptions.push(log);
  const servers = new ServerManager(context, log);
  manager = servers;
  context.subscriptions.push(servers);

  const scheduleRestart = debounced((reason) => void servers.restart(reason));

  context.subscriptions.push(
    vscode.commands.registerCommand('ckpt-lsp.restart', () =>
      servers.restart('asked by the Restart Server command'),
    ),
    vscode.commands.registerCommand('ckpt-lsp.showLogs', () => log.show()),
    vscode.commands.registerCommand('ckpt-lsp.fixAll', () =>
      fixAllInEditor(servers.client, vscode.window.activeTextEditor, log),
    ),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!event.affectsConfiguration(SECTION)) {
        return;
      }
      const folder = vscode.workspace.workspaceFolders?.[0];
      if (needsRestart((section) => event.affectsConfiguration(section, folder?.uri))) {
        scheduleRestart('a ckpt-lsp setting that starts the server changed');
        return;
      }
      // The rest reaches the server through workspace/didChangeConfiguration; report bad values.
      const config = vscode.workspace.getConfiguration(SECTION, folder?.uri);
      for (const problem of readSettings(config, { workspaceFolder: folder?.uri.fsPath }).problems) {
        log.warn(problem);
      }
    }),
    vscode.workspace.onDidChangeWorkspaceFolders(() =>
      scheduleRestart('the workspace folders changed'),
    ),
  );

  await servers.start();

  // After the first start, so that looking up the Python extension never delays it twice.
  const subscription = await onActiveEnvironmentChanged(() => {
    const folder = vscode.workspace.workspaceFolders?.[0];
    const { settings } = readSettings(vscode.workspace.getConfiguration(SECTION, folder?.uri));
    if (settings.interpreter.length === 0 && settings.path.length === 0) {
      scheduleRestart("the Python extension's active environment changed");
    }
  });
  if (subscription) {
    context.subscriptions.push(subscription);
  }
  return {
    serverState: () => servers.serverState,
    statusTooltip: () => servers.statusTooltip,
  };
}

export async function deactivate(): Promise<void> {
  const servers = manager;
  manager = undefined;
  await servers?.stop();
}
