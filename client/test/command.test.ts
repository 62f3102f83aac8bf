import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { buildServerCommand, bundledLauncher, formatCommandLine } from '../src/command';

const EXT = path.join(path.sep, 'ext', 'ckpt-lsp');
const LAUNCHER = path.join(EXT, 'bundled', 'tool', 'server.py');

describe('buildServerCommand', () => {
  it('runs the bundled launcher with the interpreter by default', () => {
    const cmd = buildServerCommand({
      settings: { path: [], importStrategy: 'useBundled', args: ['--log-level', 'debug'] },
      interpreter: ['/usr/bin/python3'],
      extensionDir: EXT,
    });
    assert.deepEqual(cmd, {
      command: '/usr/bin/python3',
      args: [LAUNCHER, '--stdio', '--log-level', 'debug'],
      kind: 'bundled',
    });
    assert.equal(bundledLauncher(EXT), LAUNCHER);
  });

  it('keeps the interpreter arguments before the script', () => {
    const cmd = buildServerCommand({
      settings: { path: [], importStrategy: 'useBundled', args: [] },
      interpreter: ['conda', 'run', '-n', 'ml', 'python'],
      extensionDir: EXT,
    });
    assert.equal(cmd.command, 'conda');
    assert.deepEqual(cmd.args, ['run', '-n', 'ml', 'python', LAUNCHER, '--stdio']);
  });

  it('runs the installed module for fromEnvironment', () => {
    const cmd = buildServerCommand({
      settings: { path: [], importStrategy: 'fromEnvironment', args: ['-v'] },
      interpreter: ['/venv/bin/python'],
      extensionDir: EXT,
    });
    assert.deepEqual(cmd, {
      command: '/venv/bin/python',
      args: ['-m', 'ckpt_lsp', '--stdio', '-v'],
      kind: 'environment',
    });
  });

  it('runs the path setting as is, whatever the strategy', () => {
    const cmd = buildServerCommand({
      settings: { path: ['/opt/bin/ckpt-lsp'], importStrategy: 'fromEnvironment', args: ['-v'] },
      interpreter: [],
      extensionDir: EXT,
    });
    assert.deepEqual(cmd, { command: '/opt/bin/ckpt-lsp', args: ['--stdio', '-v'], kind: 'path' });
  });

  it('does not pass --stdio twice', () => {
    const cmd = buildServerCommand({
      settings: { path: [], importStrategy: 'fromEnvironment', args: ['--stdio', '-v'] },
      interpreter: ['python3'],
      extensionDir: EXT,
    });
    assert.deepEqual(cmd.args, ['-m', 'ckpt_lsp', '--stdio', '-v']);
  });

  it('refuses to build a command without an interpreter', () => {
    assert.throws(
      () =>
        buildServerCommand({
          settings: { path: [], importStrategy: 'useBundled', args: [] },
          interpreter: [],
          extensionDir: EXT,
        }),
      /no Python interpreter/,
    );
  });
});

describe('formatCommandLine', () => {
  it('quotes only what a shell would split', () => {
    assert.equal(
      formatCommandLine({ command: '/usr/bin/python3', args: ['-m', 'ckpt_lsp', '--stdio'] }),
      '/usr/bin/python3 -m ckpt_lsp --stdio',
    );
    assert.equal(
      formatCommandLine({ command: '/My Py/python', args: ["it's"] }),
      `'/My Py/python' 'it'\\''s'`,
    );
  });
});
