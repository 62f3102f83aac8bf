import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  chooseInterpreter,
  defaultPython,
  isSupportedVersion,
  type PythonExtensionApi,
  type ResolvedEnvironment,
} from '../src/python';

function api(
  active: { id: string; path: string } | undefined,
  resolved: ResolvedEnvironment | undefined | (() => Promise<ResolvedEnvironment | undefined>),
): PythonExtensionApi {
  return {
    environments: {
      getActiveEnvironmentPath: () => active,
      resolveEnvironment: async () => (typeof resolved === 'function' ? resolved() : resolved),
    },
  };
}

const VENV = { id: 'venv', path: '/ws/.venv/bin/python' };
const RESOLVED: ResolvedEnvironment = {
  executable: { uri: { fsPath: '/ws/.venv/bin/python' } },
  version: { major: 3, minor: 11, micro: 7 },
};

describe('chooseInterpreter', () => {
  it('takes the setting first and does not ask the Python extension', async () => {
    let asked = false;
    const choice = await chooseInterpreter({
      setting: ['/opt/py/bin/python', '-X', 'utf8'],
      loadPythonApi: async () => {
        asked = true;
        return api(VENV, RESOLVED);
      },
    });
    assert.deepEqual(choice, { command: ['/opt/py/bin/python', '-X', 'utf8'], source: 'setting' });
    assert.equal(asked, false);
  });

  it("uses the Python extension's active environment", async () => {
    let askedFor: unknown;
    const choice = await chooseInterpreter({
      setting: [],
      resource: 'folder-uri',
      loadPythonApi: async () => ({
        environments: {
          getActiveEnvironmentPath: (resource?: unknown) => {
            askedFor = resource;
            return VENV;
          },
          resolveEnvironment: async () => RESOLVED,
        },
      }),
    });
    assert.deepEqual(choice, {
      command: ['/ws/.venv/bin/python'],
      source: 'python-extension',
      version: '3.11.7',
    });
    assert.equal(askedFor, 'folder-uri');
  });

  const fallbacks: [string, () => Promise<PythonExtensionApi | undefined>, RegExp][] = [
    ['the extension is missing', async () => undefined, /not installed/],
    [
      'activation throws',
      async () => {
        throw new Error('boom');
      },
      /failed: boom/,
    ],
    ['the API has no environments', async () => ({}), /no environments API/],
    ['there is no active environment', async () => api(undefined, RESOLVED), /no active environment/],
    ['the environment does not resolve', async () => api(VENV, undefined), /could not resolve/],
    [
      'resolving throws',
      async () =>
        api(VENV, async () => {
          throw new Error('gone');
        }),
      /failed: gone/,
    ],
    [
      'the environment is too old',
      async () =>
        api(VENV, {
          executable: { uri: { fsPath: '/usr/bin/python3.8' } },
          version: { major: 3, minor: 8, micro: 18 },
        }),
      /3\.8\.18.*needs 3\.9/,
    ],
    ['loading hangs', () => new Promise<undefined>(() => undefined), /did not answer/],
  ];
  for (const [what, loadPythonApi, note] of fallbacks) {
    it(`falls back to python3 when ${what}`, async () => {
      const choice = await chooseInterpreter({
        setting: [],
        loadPythonApi,
        timeoutMs: 50,
        platform: 'linux',
      });
      assert.deepEqual(choice.command, ['python3']);
      assert.equal(choice.source, 'default');
      assert.match(choice.note ?? '', note);
    });
  }
});

describe('defaultPython', () => {
  it('is python on Windows and python3 elsewhere', () => {
    assert.equal(defaultPython('win32'), 'python');
    assert.equal(defaultPython('linux'), 'python3');
    assert.equal(defaultPython('darwin'), 'python3');
  });
});

describe('isSupportedVersion', () => {
  it('needs 3.9 or newer and trusts an unknown version', () => {
    assert.equal(isSupportedVersion({ major: 3, minor: 9 }), true);
    assert.equal(isSupportedVersion({ major: 3, minor: 13 }), true);
    assert.equal(isSupportedVersion({ major: 3, minor: 8 }), false);
    assert.equal(isSupportedVersion({ major: 2, minor: 7 }), false);
    assert.equal(isSupportedVersion({ major: 4, minor: 0 }), true);
    assert.equal(isSupportedVersion(undefined), true);
  });
});
