/**
 * Builds the LanguageClient (vscode-languageclient 9) that runs the server over stdio.
 *
 * The process is spawned here rather than by the library so that (a) a missing executable is a
 * clear error before any LSP traffic, and (b) the server's stderr is kept: its last line is what
 * the status bar and the notification show when the server cannot start (the bundled launcher
 * writes one line there when the interpreter is unsupported).
 */

import { spawn, type ChildProcess } from 'node:child_process';

import * as vscode from 'vscode';
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  RevealOutputChannelOn,
  type CloseHandlerResult,
  type ErrorHandler,
  type ErrorHandlerResult,
  type LanguageClientOptions,
  type ServerOptions,
} from 'vscode-languageclient/node';

import { formatCommandLine, type ServerCommand } from './command';
import { DOCUMENT_SELECTOR } from './selector';
import { describeCheckResult } from './status';
import {
  SECTION,
  shouldNotify,
  type InitializationOptions,
  type NotificationLevel,
} from './settings';

/** The client id; VS Code reads `ckpt-lsp.trace.server` because of it. */
export const CLIENT_ID = 'ckpt-lsp';
export const CLIENT_NAME = 'ckpt-lsp';
export const CHECK_WORKSPACE_COMMAND = 'ckpt-lsp.checkWorkspace';
export { FIX_ALL_KIND } from './selector';

const RESTART_WINDOW_MS = 3 * 60 * 1000;
const MAX_RESTARTS = 4;

export interface ClientParts {
  command: ServerCommand;
  cwd: string | undefined;
  initializationOptions: InitializationOptions;
  log: vscode.LogOutputChannel;
  notifications: NotificationLevel;
  /** Called with each chunk the server writes to stderr. */
  onStderr: (text: string) => void;
  /** Called when the server died after it had been running and will not be restarted. */
  onGaveUp: (reason: string) => void;
}

/** A LanguageClient whose pop-ups follow `ckpt-lsp.showNotifications`. */
class CkptLanguageClient extends LanguageClient {
  constructor(
    serverOptions: ServerOptions,
    clientOptions: LanguageClientOptions,
    private readonly notifications: NotificationLevel,
  ) {
    super(CLIENT_ID, CLIENT_NAME, serverOptions, clientOptions);
  }

  override error(message: string, data?: unknown, showNotification: boolean | 'force' = true): void {
    // The library forces a pop-up on start failures; the extension reports those itself
    // (once, with the server's own words), so only the user's setting decides here.
    super.error(message, data, showNotification && shouldNotify(this.notifications, 'error'));
  }

  override warn(message: string, data?: unknown, showNotification = true): void {
    super.warn(message, data, showNotification && shouldNotify(this.notifications, 'warning'));
  }

  override info(message: string, data?: unknown, showNotification = true): void {
    super.info(message, data, showNotification && shouldNotify(this.notifications, 'information'));
  }
}

/**
 * Restart a crashed server a few times; never restart one that did not get through start-up
 * (an unsupported interpreter fails the same way every time).
 */
class RestartPolicy implements ErrorHandler {
  private readonly restarts: number[] = [];
  private started = false;

  constructor(private readonly onGaveUp: (reason: string) => void) {}

  markStarted(): void {
    this.started = true;
  }

  error(_error: Error, _message: unknown, count: number | undefined): ErrorHandlerResult {
    if (count !== undefined && count <= 3) {
      return { action: ErrorAction.Continue, handled: true };
    }
    return { action: ErrorAction.Shutdown, handled: true };
  }

  closed(): CloseHandlerResult {
    if (!this.started) {
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    const now = Date.now();
    this.restarts.push(now);
    while (this.restarts.length > 0 && now - this.restarts[0] > RESTART_WINDOW_MS) {
      this.restarts.shift();
    }
    if (this.restarts.length > MAX_RESTARTS) {
      const reason = `the server stopped ${this.restarts.length} times in 3 minutes and was not restarted`;
      this.onGaveUp(reason);
      return { action: CloseAction.DoNotRestart, handled: true, message: reason };
    }
    return { action: CloseAction.Restart, handled: true };
  }
}

function spawnServer(parts: ClientParts): Promise<ChildProcess> {
  const { command, cwd, log, onStderr } = parts;
  log.info(`Starting the server: ${formatCommandLine(command)}${cwd ? ` (in ${cwd})` : ''}`);
  return new Promise<ChildProcess>((resolve, reject) => {
    const child = spawn(command.command, command.args, {
      cwd,
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
      stdio: 'pipe',
      windowsHide: true,
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => onStderr(chunk));
    child.once('spawn', () => resolve(child));
    child.once('error', (error: NodeJS.ErrnoException) => {
      const why = error.code === 'ENOENT' ? 'not found' : error.message;
      reject(new Error(`could not run ${command.command}: ${why}`));
    });
    child.once('exit', (code, signal) => {
      log.info(`The server exited (${signal ? `signal ${signal}` : `code ${code}`}).`);
    });
  });
}

export interface ServerClient {
  client: LanguageClient;
  /** Tell the restart policy that start-up succeeded. */
  markStarted: () => void;
  /** End the server process if it is still there (after a start-up that failed half-way). */
  kill: () => void;
  /** Wait (at most `ms`) for the server process to end, so all its stderr has been read. */
  exited: (ms: number) => Promise<void>;
}

export function createLanguageClient(parts: ClientParts): ServerClient {
  const policy = new RestartPolicy(parts.onGaveUp);
  let child: ChildProcess | undefined;
  const serverOptions: ServerOptions = async () => {
    child = await spawnServer(parts);
    return child;
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: DOCUMENT_SELECTOR,
    outputChannel: parts.log,
    traceOutputChannel: parts.log,
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    initializationOptions: parts.initializationOptions,
    synchronize: { configurationSection: SECTION },
    errorHandler: policy,
    // No retry and no pop-up of the library's own: the manager reports a failed start once.
    initializationFailedHandler: () => false,
    middleware: {
      executeCommand: async (command, args, next) => {
        const result = (await next(command, args)) as unknown;
        if (command === CHECK_WORKSPACE_COMMAND) {
          // The server reports progress itself; say what it found once it is done.
          const summary = describeCheckResult(result);
          parts.log.info(`Checked the workspace: ${summary}.`);
          vscode.window.setStatusBarMessage(`ckpt-lsp: ${summary}`, 10000);
        }
        return result;
      },
    },
  };
  const client = new CkptLanguageClient(serverOptions, clientOptions, parts.notifications);
  return {
    client,
    markStarted: () => policy.markStarted(),
    kill: () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill();
      }
    },
    exited: (ms) =>
      new Promise<void>((resolve) => {
        if (!child || child.exitCode !== null || child.signalCode !== null) {
          resolve();
          return;
        }
        const timer = setTimeout(resolve, ms);
        child.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
