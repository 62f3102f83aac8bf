/**
 * Which Python runs the server.
 *
 * Order: the `ckpt-lsp.interpreter` setting, then the Python extension's active environment
 * (when that extension is installed and answers), then `python3`. The Python extension is
 * optional: every failure of it (missing, activation error, odd API, no environment, hang)
 * falls through to the next choice instead of stopping the server from starting.
 * No `vscode` import: the extension passes a loader for the Python extension's API.
 */

/** The slice of the Python extension's `environments` API used here. */
export interface EnvironmentPath {
  id: string;
  path: string;
}

export interface ResolvedEnvironment {
  executable?: { uri?: { fsPath: string } | undefined; sysPrefix?: string };
  version?: { major?: number; minor?: number; micro?: number } | undefined;
}

export interface PythonEnvironmentsApi {
  getActiveEnvironmentPath(resource?: unknown): EnvironmentPath | undefined;
  resolveEnvironment(
    environment: EnvironmentPath | string,
  ): Promise<ResolvedEnvironment | undefined> | ResolvedEnvironment | undefined;
}

export interface PythonExtensionApi {
  environments?: PythonEnvironmentsApi;
}

export type InterpreterSource = 'setting' | 'python-extension' | 'default';

export interface InterpreterChoice {
  /** The interpreter as a command line: the executable, then any arguments it needs. */
  command: string[];
  source: InterpreterSource;
  /** "3.11.7" when the Python extension told us. */
  version?: string;
  /** Why the Python extension was not used, when it was asked and did not help. */
  note?: string;
}

export const MIN_PYTHON: readonly [number, number] = [3, 9];

export function defaultPython(platform: NodeJS.Platform = process.platform): string {
  return platform === 'win32' ? 'python' : 'python3';
}

export function describeSource(source: InterpreterSource): string {
  switch (source) {
    case 'setting':
      return 'the ckpt-lsp.interpreter setting';
    case 'python-extension':
      return "the Python extension's active environment";
    default:
      return 'the default';
  }
}

/** Whether a version the Python extension reported can run the server (unknown: assume so). */
export function isSupportedVersion(version: ResolvedEnvironment['version']): boolean {
  if (!version || typeof version.major !== 'number' || typeof version.minor !== 'number') {
    return true;
  }
  const [major, minor] = MIN_PYTHON;
  return version.major > major || (version.major === major && version.minor >= minor);
}

function formatVersion(version: ResolvedEnvironment['version']): string | undefined {
  if (!version || typeof version.major !== 'number' || typeof version.minor !== 'number') {
    return undefined;
  }
  const micro = typeof version.micro === 'number' ? `.${version.micro}` : '';
  return `${version.major}.${version.minor}${micro}`;
}

class Timeout extends Error {}

async function withTimeout<T>(work: Promise<T> | T, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(`${what} did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([Promise.resolve(work), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export interface ChooseOptions {
  /** `ckpt-lsp.interpreter`, already validated and expanded. */
  setting: readonly string[];
  /** Loads (and activates) the Python extension; undefined when it is not installed. */
  loadPythonApi: () => Promise<PythonExtensionApi | undefined>;
  /** The workspace folder the environment is asked for. */
  resource?: unknown;
  timeoutMs?: number;
  platform?: NodeJS.Platform;
}

/** Ask the Python extension for its active interpreter; a reason string when it cannot help. */
export async function interpreterFromPythonExtension(
  loadPythonApi: () => Promise<PythonExtensionApi | undefined>,
  resource: unknown,
  timeoutMs: number,
): Promise<{ command: string[]; version?: string } | string> {
  try {
    const api = await withTimeout(loadPythonApi(), timeoutMs, 'the Python extension');
    if (!api) {
      return 'the Python extension is not installed';
    }
    const environments = api.environments;
    if (
      !environments ||
      typeof environments.getActiveEnvironmentPath !== 'function' ||
      typeof environments.resolveEnvironment !== 'function'
    ) {
      return 'the Python extension has no environments API';
    }
    const active = environments.getActiveEnvironmentPath(resource);
    if (!active || typeof active.path !== 'string' || active.path === '') {
      return 'the Python extension has no active environment';
    }
    const resolved = await withTimeout(
      environments.resolveEnvironment(active),
      timeoutMs,
      'resolving the active environment',
    );
    const executable = resolved?.executable?.uri?.fsPath;
    if (!executable) {
      return `the Python extension could not resolve ${active.path}`;
    }
    if (!isSupportedVersion(resolved?.version)) {
      return `its active environment is Python ${formatVersion(resolved?.version) ?? '?'} (${executable}); ckpt-lsp needs ${MIN_PYTHON.join('.')} or newer`;
    }
    return { command: [executable], version: formatVersion(resolved?.version) };
  } catch (error) {
    return `asking the Python extension failed: ${message(error)}`;
  }
}

export async function chooseInterpreter(options: ChooseOptions): Promise<InterpreterChoice> {
  if (options.setting.length > 0) {
    return { command: [...options.setting], source: 'setting' };
  }
  const found = await interpreterFromPythonExtension(
    options.loadPythonApi,
    options.resource,
    options.timeoutMs ?? 15000,
  );
  if (typeof found !== 'string') {
    return { command: found.command, source: 'python-extension', version: found.version };
  }
  return { command: [defaultPython(options.platform)], source: 'default', note: found };
}
