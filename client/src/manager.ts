/**
 * The server's life cycle: start, stop and restart (one at a time, in order), and the status
 * bar item that shows where it is.
 */

import * as vscode from 'vscode';
import { ExecuteCommandRequest, State, type LanguageClient } from 'vscode-languageclient/node';

import { buildServerCommand, formatCommandLine } from './command';
import { chooseInterpreter, describeSource, type InterpreterChoice } from './python';
import { loadPythonApi } from './pythonExtension';
import { CHECK_WORKSPACE_COMMAND, createLanguageClient } from './server';
import {
  SECTION,
  buildInitializationOptions,
  readGlobalSettings,
  readSettings,
  shouldNotify,
  type ExtensionSettings,
} from './settings';
import { describeStatus, lastLine, type ServerState, type StatusInfo } from './status';

export const RUNNING_CONTEXT_KEY = 'ckpt-lsp.serverRunning';
const MAX_STDERR = 64 * 1024;

interface Running {
  client: LanguageClient;
  kill: () => void;
  exited: (ms: number) => Promise<void>;
  disposables: vscode.Disposable[];
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class ServerManager implements vscode.Disposable {
  private current: Running | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly statusItem: vscode.StatusBarItem;
  private stderr = '';
  private state: ServerState = 'stopped';

  constructor(
    private readonly context: vscode.ExtensionContext,
    readonly log: vscode.LogOutputChannel,
  ) {
    this.statusItem = vscode.window.createStatusBarItem(
      'ckpt-lsp.status',
      vscode.StatusBarAlignment.Right,
      100,
    );
    this.statusItem.name = 'ckpt-lsp';
    this.statusItem.command = 'ckpt-lsp.showLogs';
    this.setState('stopped', {});
    this.statusItem.show();
  }

  /** The client, only while the server is running. */
  get client(): LanguageClient | undefined {
    const client = this.current?.client;
    return client?.isRunning() ? client : undefined;
  }

  get serverState(): ServerState {
    return this.state;
  }

  get statusTooltip(): string {
    const tooltip = this.statusItem.tooltip;
    return typeof tooltip === 'string' ? tooltip : (tooltip?.value ?? '');
  }

  start(): Promise<void> {
    return this.enqueue(() => this.doStart());
  }

  restart(reason: string): Promise<void> {
    return this.enqueue(async () => {
      this.log.info(`Restarting the server: ${reason}.`);
      await this.doStop();
      await this.doStart();
    });
  }

  stop(): Promise<void> {
    return this.enqueue(() => this.doStop());
  }

  dispose(): void {
    void this.stop();
    this.statusItem.dispose();
  }

  /** Run life-cycle steps one after another, so two restarts never overlap. */
  private enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.queue.then(work).catch((error: unknown) => {
      this.log.error(`ckpt-lsp: ${message(error)}`);
    });
    this.queue = next;
    return next;
  }

  private setState(state: ServerState, info: StatusInfo): void {
    this.state = state;
    const view = describeStatus(state, info);
    this.statusItem.text = view.text;
    this.statusItem.tooltip = view.tooltip;
    this.statusItem.backgroundColor = view.isError
      ? new vscode.ThemeColor('statusBarItem.errorBackground')
      : undefined;
    void vscode.commands.executeCommand('setContext', RUNNING_CONTEXT_KEY, state === 'running');
  }

  private notifyError(text: string, settings: ExtensionSettings): void {
    if (!shouldNotify(settings.showNotifications, 'error')) {
      return;
    }
    void vscode.window.showErrorMessage(text, 'Show Logs').then((choice) => {
      if (choice) {
        this.log.show();
      }
    });
  }

  private collectStderr(chunk: string): void {
    this.stderr = (this.stderr + chunk).slice(-MAX_STDERR);
  }

  private async doStart(): Promise<void> {
    const folder = vscode.workspace.workspaceFolders?.[0];
    const config = vscode.workspace.getConfiguration(SECTION, folder?.uri);
    const ctx = { workspaceFolder: folder?.uri.fsPath };
    const { settings, problems } = readSettings(config, ctx);
    for (const problem of problems) {
      this.log.warn(problem);
    }
    if (!settings.enable) {
      this.log.info('ckpt-lsp.enable is false: the server is not started.');
      this.setState('stopped', { detail: 'Disabled by the ckpt-lsp.enable setting.' });
      return;
    }
    this.setState('starting', {});

    let interpreter: InterpreterChoice | undefined;
    if (settings.path.length === 0) {
      interpreter = await chooseInterpreter({
        setting: settings.interpreter,
        loadPythonApi,
        resource: folder?.uri,
      });
      if (interpreter.note) {
        this.log.info(`Not using the Python extension's interpreter: ${interpreter.note}.`);
      }
      const version = interpreter.version ? `, Python ${interpreter.version}` : '';
      this.log.info(
        `Interpreter: ${interpreter.command.join(' ')} (from ${describeSource(interpreter.source)}${version}).`,
      );
    }
    const command = buildServerCommand({
      settings,
      interpreter: interpreter?.command ?? [],
      extensionDir: this.context.extensionPath,
    });
    const info: StatusInfo = {
      interpreter: interpreter
        ? formatCommandLine({ command: interpreter.command[0], args: interpreter.command.slice(1) })
        : undefined,
      interpreterSource: interpreter ? describeSource(interpreter.source) : undefined,
      serverKind: command.kind,
    };
    this.setState('starting', info);

    this.stderr = '';
    const global = readGlobalSettings(config, ctx).settings;
    const { client, markStarted, kill, exited } = createLanguageClient({
      command,
      cwd: folder?.uri.fsPath,
      initializationOptions: buildInitializationOptions(settings, global),
      log: this.log,
      notifications: settings.showNotifications,
      onStderr: (chunk) => this.collectStderr(chunk),
      onGaveUp: (reason) => {
        const why = lastLine(this.stderr);
        const detail = why ? `${reason}: ${why}` : reason;
        this.log.error(`ckpt-lsp: ${detail}`);
        this.notifyError(`ckpt-lsp: ${detail}`, settings);
      },
    });
    const running: Running = { client, kill, exited, disposables: [] };
    running.disposables.push(
      client.onDidChangeState((event) => {
        if (this.current !== running) {
          return;
        }
        if (event.newState === State.Running) {
          this.setState('running', info);
        } else if (event.newState === State.Starting) {
          this.setState('starting', info);
        } else if (this.state === 'running') {
          const why = lastLine(this.stderr);
          this.setState('error', {
            ...info,
            detail: `The server stopped${why ? `: ${why}` : '.'}`,
          });
        }
      }),
    );
    this.current = running;

    let failure: unknown;
    try {
      await client.start();
    } catch (error) {
      failure = error;
    }
    // start() can resolve although the server died during initialize (the library then
    // forgets its start promise), so the state decides, not the promise.
    if (failure !== undefined || !client.isRunning()) {
      await exited(2000);
      const why = lastLine(this.stderr) ?? message(failure ?? 'the server closed the connection');
      this.log.error(`The server did not start: ${why}`);
      this.setState('error', { ...info, detail: `The server did not start: ${why}` });
      this.notifyError(`ckpt-lsp: the server did not start: ${why}`, settings);
      this.current = undefined;
      await this.release(running);
      return;
    }
    markStarted();
    this.addFallbackCommands(running);
    this.setState('running', info);
    this.log.info('The server is running.');
  }

  /**
   * `ckpt-lsp.checkWorkspace` is a server command: the client library registers it when the server
   * announces it. Register it here only when the server did not, so the palette entry still works.
   */
  private addFallbackCommands(running: Running): void {
    const announced =
      running.client.initializeResult?.capabilities.executeCommandProvider?.commands ?? [];
    if (announced.includes(CHECK_WORKSPACE_COMMAND)) {
      return;
    }
    running.disposables.push(
      vscode.commands.registerCommand(CHECK_WORKSPACE_COMMAND, () =>
        running.client.sendRequest(ExecuteCommandRequest.type, {
          command: CHECK_WORKSPACE_COMMAND,
          arguments: [],
        }),
      ),
    );
  }

  private async doStop(): Promise<void> {
    const running = this.current;
    this.current = undefined;
    if (running) {
      await this.release(running);
    }
    this.setState('stopped', {});
  }

  private async release(running: Running): Promise<void> {
    for (const disposable of running.disposables) {
      disposable.dispose();
    }
    try {
      await running.client.dispose(2000);
    } catch (error) {
      // A client that never started cannot be stopped; its process is gone already.
      this.log.debug(`Stopping the client: ${message(error)}`);
    }
    // After `exit` the server ends by itself; only one that hangs gets a signal.
    await running.exited(1000);
    running.kill();
  }
}
