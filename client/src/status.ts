/**
 * What the status bar item says for each server state. Kept apart from the `vscode` glue so
 * the wording is unit-tested.
 */

export type ServerState = 'starting' | 'running' | 'stopped' | 'error';

export interface StatusInfo {
  /** The interpreter command line, when one was chosen. */
  interpreter?: string;
  /** Where the interpreter came from ("the Python extension's active environment"). */
  interpreterSource?: string;
  /** "bundled", "environment" or "path". */
  serverKind?: string;
  /** Why the server stopped or failed (one line). */
  detail?: string;
}

export interface StatusView {
  text: string;
  tooltip: string;
  isError: boolean;
}

const ICONS: Record<ServerState, string> = {
  starting: '$(loading~spin)',
  running: '$(check)',
  stopped: '$(circle-slash)',
  error: '$(error)',
};

const SERVER_KINDS: Record<string, string> = {
  bundled: 'the copy bundled with the extension',
  environment: "the interpreter's environment (python -m ckpt_lsp)",
  path: 'the ckpt-lsp.path setting',
};

export function describeStatus(state: ServerState, info: StatusInfo = {}): StatusView {
  const lines = [`ckpt-lsp: ${state}`];
  if (info.detail) {
    lines.push(info.detail);
  }
  if (info.interpreter) {
    const from = info.interpreterSource ? ` (from ${info.interpreterSource})` : '';
    lines.push(`Interpreter: ${info.interpreter}${from}`);
  }
  if (info.serverKind) {
    lines.push(`Server: ${SERVER_KINDS[info.serverKind] ?? info.serverKind}`);
  }
  lines.push('Click to show the logs.');
  return {
    text: `${ICONS[state]} ckpt-lsp`,
    tooltip: lines.join('\n'),
    isError: state === 'error',
  };
}

/** The last non-empty line of what a process wrote to stderr, trimmed for a tooltip. */
export function lastLine(text: string, max = 600): string | undefined {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  const last = lines.reverse().find((l) => l !== '');
  if (last === undefined) {
    return undefined;
  }
  return last.length > max ? `${last.slice(0, max - 1)}…` : last;
}

/** "3 findings in 120 files" from the checkWorkspace command's answer, whatever its shape. */
export function describeCheckResult(result: unknown): string {
  if (result && typeof result === 'object') {
    const { files, findings, errors } = result as Record<string, unknown>;
    if (typeof files === 'number' && typeof findings === 'number') {
      const unread = typeof errors === 'number' && errors > 0 ? `, ${errors} not readable` : '';
      const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
      return `${plural(findings, 'finding')} in ${plural(files, 'file')}${unread}`;
    }
  }
  return 'workspace checked';
}
