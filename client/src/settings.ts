/**
 * Reading, validating and shaping the `ckpt-lsp.*` settings.
 *
 * No `vscode` import here: the extension passes a `WorkspaceConfiguration`, which fits the small
 * `ConfigReader` shape below, so the logic runs (and is tested) under plain Node.
 */

import * as os from 'node:os';

export const SECTION = 'ckpt-lsp';

export type ImportStrategy = 'useBundled' | 'fromEnvironment';
export type NotificationLevel = 'off' | 'onError' | 'onWarning' | 'always';
export type Severity = 'error' | 'warning' | 'information' | 'hint';

export const IMPORT_STRATEGIES: readonly ImportStrategy[] = ['useBundled', 'fromEnvironment'];
export const NOTIFICATION_LEVELS: readonly NotificationLevel[] = [
  'off',
  'onError',
  'onWarning',
  'always',
];
export const SEVERITIES: readonly Severity[] = ['error', 'warning', 'information', 'hint'];

/** Everything the extension reads from `ckpt-lsp.*`, after validation. */
export interface ExtensionSettings {
  enable: boolean;
  interpreter: string[];
  importStrategy: ImportStrategy;
  args: string[];
  path: string[];
  select: string[];
  ignore: string[];
  severity: Record<string, Severity>;
  extendModelBases: string[];
  showNotifications: NotificationLevel;
}

/** The part of the settings the server acts on (the `settings` of `initializationOptions`). */
export interface ServerSettings {
  enable: boolean;
  select: string[];
  ignore: string[];
  severity: Record<string, Severity>;
  extendModelBases: string[];
  showNotifications: NotificationLevel;
}

export interface InitializationOptions {
  settings: ServerSettings;
  globalSettings: ServerSettings;
}

export const DEFAULT_SETTINGS: Readonly<ExtensionSettings> = Object.freeze({
  enable: true,
  interpreter: [],
  importStrategy: 'useBundled',
  args: [],
  path: [],
  select: [],
  ignore: [],
  severity: {},
  extendModelBases: [],
  showNotifications: 'off',
});

export const SETTING_KEYS = Object.keys(DEFAULT_SETTINGS) as (keyof ExtensionSettings)[];

/**
 * Settings that change the server process itself; a change to any of them needs a restart.
 * The others reach the running server through `workspace/didChangeConfiguration`.
 */
export const RESTART_KEYS: readonly (keyof ExtensionSettings)[] = [
  'enable',
  'interpreter',
  'importStrategy',
  'args',
  'path',
];

/** The subset of `vscode.WorkspaceConfiguration` this module uses. */
export interface ConfigReader {
  get<T>(key: string): T | undefined;
  inspect?<T>(key: string): { defaultValue?: T; globalValue?: T } | undefined;
}

/** What `${...}` variables expand to. */
export interface VariableContext {
  workspaceFolder?: string;
  userHome?: string;
  env?: Record<string, string | undefined>;
}

export interface SettingsResult {
  settings: ExtensionSettings;
  /** One line per value that was ignored, for the log. */
  problems: string[];
}

const RULE_CODE = /^CKPT\d{3}$/;

/** Expand `${workspaceFolder}`, `${userHome}`, `${env:NAME}` and a leading `~` in one value. */
export function expandVariables(value: string, ctx: VariableContext = {}): string {
  const home = ctx.userHome ?? os.homedir();
  const env = ctx.env ?? process.env;
  let out = value.replace(/\$\{([^}]+)\}/g, (whole: string, name: string) => {
    if (name === 'userHome') {
      return home;
    }
    if (name === 'workspaceFolder') {
      return ctx.workspaceFolder ?? whole;
    }
    if (name.startsWith('env:')) {
      return env[name.slice(4)] ?? '';
    }
    return whole;
  });
  if (out === '~' || out.startsWith('~/') || out.startsWith('~\\')) {
    out = home + out.slice(1);
  }
  return out;
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

class Validator {
  readonly problems: string[] = [];

  private problem(key: string, message: string): void {
    this.problems.push(`${SECTION}.${key}: ${message}`);
  }

  boolean(key: string, value: unknown, fallback: boolean): boolean {
    if (value === undefined || value === null) {
      return fallback;
    }
    if (typeof value === 'boolean') {
      return value;
    }
    this.problem(key, `expected true or false, got ${describe(value)}; using ${fallback}`);
    return fallback;
  }

  choice<T extends string>(key: string, value: unknown, allowed: readonly T[], fallback: T): T {
    if (value === undefined || value === null) {
      return fallback;
    }
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) {
      return value as T;
    }
    this.problem(
      key,
      `expected one of ${allowed.join(', ')}, got ${describe(value)}; using ${fallback}`,
    );
    return fallback;
  }

  /** A list of non-empty strings; a lone string is taken as a one-item list. */
  strings(key: string, value: unknown): string[] {
    if (value === undefined || value === null) {
      return [];
    }
    if (typeof value === 'string') {
      return value.trim() === '' ? [] : [value];
    }
    if (!Array.isArray(value)) {
      this.problem(key, `expected a list of strings, got ${describe(value)}; ignored`);
      return [];
    }
    const out: string[] = [];
    for (const item of value) {
      if (typeof item === 'string' && item.trim() !== '') {
        out.push(item);
      } else {
        this.problem(key, `ignored the item ${describe(item)}: not a non-empty string`);
      }
    }
    return out;
  }

  codes(key: string, value: unknown): string[] {
    const out: string[] = [];
    for (const item of this.strings(key, value)) {
      const code = item.trim().toUpperCase();
      if (!RULE_CODE.test(code)) {
        this.problem(key, `ignored ${describe(item)}: not a rule code like CKPT001`);
      } else if (!out.includes(code)) {
        out.push(code);
      }
    }
    return out;
  }

  severities(key: string, value: unknown): Record<string, Severity> {
    if (value === undefined || value === null) {
      return {};
    }
    if (typeof value !== 'object' || Array.isArray(value)) {
      this.problem(key, `expected an object such as {"CKPT004": "hint"}, got ${describe(value)}`);
      return {};
    }
    const out: Record<string, Severity> = {};
    for (const [rawCode, level] of Object.entries(value as Record<string, unknown>)) {
      const code = rawCode.trim().toUpperCase();
      if (!RULE_CODE.test(code)) {
        this.problem(key, `ignored ${describe(rawCode)}: not a rule code like CKPT001`);
        continue;
      }
      if (typeof level !== 'string' || !(SEVERITIES as readonly string[]).includes(level)) {
        this.problem(
          key,
          `ignored ${code}: severity must be one of ${SEVERITIES.join(', ')}, got ${describe(level)}`,
        );
        continue;
      }
      out[code] = level as Severity;
    }
    return out;
  }
}

/** Validate raw values (as settings.json holds them); bad values fall back to defaults. */
export function validateSettings(
  raw: Partial<Record<keyof ExtensionSettings, unknown>>,
  ctx: VariableContext = {},
): SettingsResult {
  const v = new Validator();
  const expand = (values: string[]): string[] => values.map((s) => expandVariables(s, ctx));
  const settings: ExtensionSettings = {
    enable: v.boolean('enable', raw.enable, DEFAULT_SETTINGS.enable),
    interpreter: expand(v.strings('interpreter', raw.interpreter)),
    importStrategy: v.choice(
      'importStrategy',
      raw.importStrategy,
      IMPORT_STRATEGIES,
      DEFAULT_SETTINGS.importStrategy,
    ),
    args: expand(v.strings('args', raw.args)),
    path: expand(v.strings('path', raw.path)),
    select: v.codes('select', raw.select),
    ignore: v.codes('ignore', raw.ignore),
    severity: v.severities('severity', raw.severity),
    extendModelBases: v.strings('extendModelBases', raw.extendModelBases).map((s) => s.trim()),
    showNotifications: v.choice(
      'showNotifications',
      raw.showNotifications,
      NOTIFICATION_LEVELS,
      DEFAULT_SETTINGS.showNotifications,
    ),
  };
  return { settings, problems: v.problems };
}

/** The effective settings of one scope (a workspace folder, or the window). */
export function readSettings(config: ConfigReader, ctx: VariableContext = {}): SettingsResult {
  const raw: Partial<Record<keyof ExtensionSettings, unknown>> = {};
  for (const key of SETTING_KEYS) {
    raw[key] = config.get<unknown>(key);
  }
  return validateSettings(raw, ctx);
}

/** The user-level settings (defaults where the user set nothing), ignoring workspace overrides. */
export function readGlobalSettings(config: ConfigReader, ctx: VariableContext = {}): SettingsResult {
  const raw: Partial<Record<keyof ExtensionSettings, unknown>> = {};
  for (const key of SETTING_KEYS) {
    const info = config.inspect?.<unknown>(key);
    raw[key] = info === undefined ? config.get<unknown>(key) : (info.globalValue ?? info.defaultValue);
  }
  return validateSettings(raw, { ...ctx, workspaceFolder: undefined });
}

export function toServerSettings(s: ExtensionSettings): ServerSettings {
  return {
    enable: s.enable,
    select: [...s.select],
    ignore: [...s.ignore],
    severity: { ...s.severity },
    extendModelBases: [...s.extendModelBases],
    showNotifications: s.showNotifications,
  };
}

export function buildInitializationOptions(
  workspace: ExtensionSettings,
  global: ExtensionSettings,
): InitializationOptions {
  return { settings: toServerSettings(workspace), globalSettings: toServerSettings(global) };
}

/**
 * Whether a configuration change needs a new server process.
 * `affects` is `ConfigurationChangeEvent.affectsConfiguration` (bound to a scope by the caller).
 */
export function needsRestart(affects: (section: string) => boolean): boolean {
  return RESTART_KEYS.some((key) => affects(`${SECTION}.${key}`));
}

/** Whether a message of this kind may pop up, given `ckpt-lsp.showNotifications`. */
export function shouldNotify(
  setting: NotificationLevel,
  kind: 'error' | 'warning' | 'information',
): boolean {
  switch (setting) {
    case 'always':
      return true;
    case 'onWarning':
      return kind !== 'information';
    case 'onError':
      return kind === 'error';
    default:
      return false;
  }
}
