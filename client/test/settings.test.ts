import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  DEFAULT_SETTINGS,
  buildInitializationOptions,
  expandVariables,
  needsRestart,
  readGlobalSettings,
  readSettings,
  shouldNotify,
  validateSettings,
  type ConfigReader,
} from '../src/settings';

const CTX = { workspaceFolder: '/ws', userHome: '/home/u', env: { VENV: '/venvs/a' } };

function reader(values: Record<string, unknown>, globals: Record<string, unknown> = {}): ConfigReader {
  return {
    get: <T>(key: string) => values[key] as T | undefined,
    inspect: <T>(key: string) => ({
      defaultValue: (DEFAULT_SETTINGS as unknown as Record<string, unknown>)[key] as T,
      globalValue: globals[key] as T | undefined,
    }),
  };
}

describe('validateSettings', () => {
  it('gives the defaults when nothing is set', () => {
    const { settings, problems } = validateSettings({});
    assert.deepEqual(settings, DEFAULT_SETTINGS);
    assert.deepEqual(problems, []);
  });

  it('keeps valid values and normalises rule codes', () => {
    const { settings, problems } = validateSettings(
      {
        enable: false,
        interpreter: ['/usr/bin/python3.12', '-X', 'utf8'],
        importStrategy: 'fromEnvironment',
        args: ['--log-level', 'debug'],
        select: ['ckpt001', 'CKPT005', 'CKPT001'],
        ignore: [' CKPT004 '],
        severity: { ckpt004: 'hint', CKPT001: 'warning' },
        extendModelBases: ['mylib.Base '],
        showNotifications: 'onWarning',
      },
      CTX,
    );
    assert.deepEqual(problems, []);
    assert.equal(settings.enable, false);
    assert.deepEqual(settings.interpreter, ['/usr/bin/python3.12', '-X', 'utf8']);
    assert.equal(settings.importStrategy, 'fromEnvironment');
    assert.deepEqual(settings.args, ['--log-level', 'debug']);
    assert.deepEqual(settings.select, ['CKPT001', 'CKPT005']);
    assert.deepEqual(settings.ignore, ['CKPT004']);
    assert.deepEqual(settings.severity, { CKPT004: 'hint', CKPT001: 'warning' });
    assert.deepEqual(settings.extendModelBases, ['mylib.Base']);
    assert.equal(settings.showNotifications, 'onWarning');
  });

  it('falls back to the default for each bad value and says why', () => {
    const { settings, problems } = validateSettings({
      enable: 'yes',
      importStrategy: 'bundled',
      showNotifications: true,
      select: ['CKPT1', 42, 'CKPT002'],
      severity: { CKPT001: 'fatal', nope: 'error', CKPT003: 'hint' },
      args: 'not-a-list-but-a-string',
      extendModelBases: { a: 1 },
    });
    assert.equal(settings.enable, true);
    assert.equal(settings.importStrategy, 'useBundled');
    assert.equal(settings.showNotifications, 'off');
    assert.deepEqual(settings.select, ['CKPT002']);
    assert.deepEqual(settings.severity, { CKPT003: 'hint' });
    assert.deepEqual(settings.args, ['not-a-list-but-a-string']);
    assert.deepEqual(settings.extendModelBases, []);
    const text = problems.join('\n');
    for (const key of [
      'ckpt-lsp.enable',
      'ckpt-lsp.importStrategy',
      'ckpt-lsp.showNotifications',
      'ckpt-lsp.select: ignored "CKPT1"',
      'ckpt-lsp.select: ignored the item 42',
      'ckpt-lsp.severity: ignored CKPT001',
      'ckpt-lsp.severity: ignored "nope"',
      'ckpt-lsp.extendModelBases',
    ]) {
      assert.ok(text.includes(key), `no problem mentions ${key}:\n${text}`);
    }
    assert.equal(problems.length, 8);
  });

  it('rejects a severity that is not an object', () => {
    const { settings, problems } = validateSettings({ severity: ['CKPT001'] });
    assert.deepEqual(settings.severity, {});
    assert.equal(problems.length, 1);
  });

  it('takes a lone string path as a one-item command line and expands variables in it', () => {
    const { settings } = validateSettings(
      { path: '${env:VENV}/bin/ckpt-lsp', interpreter: ['${workspaceFolder}/.venv/bin/python'] },
      CTX,
    );
    assert.deepEqual(settings.path, ['/venvs/a/bin/ckpt-lsp']);
    assert.deepEqual(settings.interpreter, ['/ws/.venv/bin/python']);
  });

  it('drops empty strings', () => {
    const { settings } = validateSettings({ path: '', interpreter: ['', '  '] });
    assert.deepEqual(settings.path, []);
    assert.deepEqual(settings.interpreter, []);
  });
});

describe('expandVariables', () => {
  it('expands the known variables', () => {
    assert.equal(expandVariables('${workspaceFolder}/x', CTX), '/ws/x');
    assert.equal(expandVariables('${userHome}/x', CTX), '/home/u/x');
    assert.equal(expandVariables('${env:VENV}/bin', CTX), '/venvs/a/bin');
    assert.equal(expandVariables('~/bin/python', CTX), '/home/u/bin/python');
    assert.equal(expandVariables('~', CTX), '/home/u');
  });

  it('leaves what it cannot expand', () => {
    assert.equal(expandVariables('${unknown}/x', CTX), '${unknown}/x');
    assert.equal(expandVariables('${workspaceFolder}/x', { userHome: '/h' }), '${workspaceFolder}/x');
    assert.equal(expandVariables('a~b', CTX), 'a~b');
    assert.equal(expandVariables('${env:MISSING}x', CTX), 'x');
  });
});

describe('readSettings and readGlobalSettings', () => {
  it('reads every key through the reader', () => {
    const { settings } = readSettings(reader({ select: ['CKPT003'], enable: false }), CTX);
    assert.deepEqual(settings.select, ['CKPT003']);
    assert.equal(settings.enable, false);
    assert.equal(settings.importStrategy, 'useBundled');
  });

  it('takes user-level values, not workspace ones, for the global settings', () => {
    const config = reader({ select: ['CKPT003'] }, { select: ['CKPT009'] });
    assert.deepEqual(readGlobalSettings(config, CTX).settings.select, ['CKPT009']);
    assert.deepEqual(readGlobalSettings(reader({ select: ['CKPT003'] }), CTX).settings.select, []);
  });

  it('does not expand ${workspaceFolder} at user level', () => {
    const config = reader({}, { interpreter: ['${workspaceFolder}/py'] });
    assert.deepEqual(readGlobalSettings(config, CTX).settings.interpreter, ['${workspaceFolder}/py']);
  });
});

describe('buildInitializationOptions', () => {
  it('sends exactly the server-side keys', () => {
    const ws = validateSettings({ select: ['CKPT001'], interpreter: ['/py'] }).settings;
    const options = buildInitializationOptions(ws, DEFAULT_SETTINGS);
    const keys = ['enable', 'extendModelBases', 'ignore', 'select', 'severity', 'showNotifications'];
    assert.deepEqual(Object.keys(options.settings).sort(), keys);
    assert.deepEqual(Object.keys(options.globalSettings).sort(), keys);
    assert.deepEqual(options.settings.select, ['CKPT001']);
    assert.deepEqual(options.globalSettings.select, []);
    // A copy: changing the options must not change the settings they came from.
    options.settings.select.push('CKPT002');
    assert.deepEqual(ws.select, ['CKPT001']);
  });
});

describe('needsRestart', () => {
  const changed = (...keys: string[]) => (section: string) =>
    keys.some((k) => k === section || k.startsWith(`${section}.`));

  it('restarts for settings that shape the process', () => {
    for (const key of ['enable', 'interpreter', 'importStrategy', 'args', 'path']) {
      assert.equal(needsRestart(changed(`ckpt-lsp.${key}`)), true, key);
    }
  });

  it('does not restart for settings the running server takes', () => {
    for (const key of ['select', 'ignore', 'severity', 'extendModelBases', 'showNotifications']) {
      assert.equal(needsRestart(changed(`ckpt-lsp.${key}`)), false, key);
    }
    assert.equal(needsRestart(changed('ckpt-lsp.trace.server')), false);
  });
});

describe('shouldNotify', () => {
  it('follows the levels', () => {
    const table: [Parameters<typeof shouldNotify>[0], boolean, boolean, boolean][] = [
      ['off', false, false, false],
      ['onError', true, false, false],
      ['onWarning', true, true, false],
      ['always', true, true, true],
    ];
    for (const [level, error, warning, information] of table) {
      assert.equal(shouldNotify(level, 'error'), error, `${level} error`);
      assert.equal(shouldNotify(level, 'warning'), warning, `${level} warning`);
      assert.equal(shouldNotify(level, 'information'), information, `${level} information`);
    }
  });
});
