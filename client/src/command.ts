/**
 * The command line that starts the server, from the settings and the chosen interpreter.
 *
 *   ckpt-lsp.path set  -> <path...> --stdio <args...>
 *   useBundled         -> <python...> <extension>/bundled/tool/server.py --stdio <args...>
 *   fromEnvironment    -> <python...> -m ckpt_lsp --stdio <args...>
 *
 * No `vscode` import, so it is unit-tested under plain Node.
 */

import * as path from 'node:path';

import type { ExtensionSettings } from './settings';

export type ServerKind = 'path' | 'bundled' | 'environment';

export interface ServerCommand {
  command: string;
  args: string[];
  kind: ServerKind;
}

export interface CommandOptions {
  settings: Pick<ExtensionSettings, 'path' | 'importStrategy' | 'args'>;
  /** The interpreter command line; unused when `ckpt-lsp.path` is set. */
  interpreter: readonly string[];
  /** The extension's install folder (`context.extensionPath`). */
  extensionDir: string;
}

export function bundledLauncher(extensionDir: string): string {
  return path.join(extensionDir, 'bundled', 'tool', 'server.py');
}

/** `--stdio` is how the client talks to the server; drop a duplicate a user put into `args`. */
function extraArgs(args: readonly string[]): string[] {
  return args.filter((a) => a !== '--stdio');
}

export function buildServerCommand(options: CommandOptions): ServerCommand {
  const { settings, interpreter, extensionDir } = options;
  const extra = extraArgs(settings.args);
  if (settings.path.length > 0) {
    const [command, ...rest] = settings.path;
    return { command, args: [...rest, '--stdio', ...extra], kind: 'path' };
  }
  if (interpreter.length === 0) {
    throw new Error('no Python interpreter to run the ckpt-lsp server');
  }
  const [python, ...pythonArgs] = interpreter;
  if (settings.importStrategy === 'fromEnvironment') {
    return {
      command: python,
      args: [...pythonArgs, '-m', 'ckpt_lsp', '--stdio', ...extra],
      kind: 'environment',
    };
  }
  return {
    command: python,
    args: [...pythonArgs, bundledLauncher(extensionDir), '--stdio', ...extra],
    kind: 'bundled',
  };
}

/** A copy-pasteable rendering for the log (POSIX shell quoting). */
export function formatCommandLine(cmd: Pick<ServerCommand, 'command' | 'args'>): string {
  return [cmd.command, ...cmd.args]
    .map((part) => (/^[\w@%+=:,./-]+$/.test(part) ? part : `'${part.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}
