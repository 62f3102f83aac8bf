/**
 * The extension manifest (package.json) and the code must agree: every setting the code reads is
 * contributed with the same default and documented, the commands exist, the version follows
 * pyproject.toml.
 */

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { DEFAULT_SETTINGS, IMPORT_STRATEGIES, NOTIFICATION_LEVELS, SETTING_KEYS } from '../src/settings';

// Both client/test (sources) and out/test (compiled) sit two levels below the repository root.
const ROOT = path.resolve(__dirname, '..', '..');

interface Property {
  type?: string | string[];
  default?: unknown;
  enum?: string[];
  markdownDescription?: string;
}

interface Manifest {
  name: string;
  publisher: string;
  version: string;
  main: string;
  engines: Record<string, string>;
  activationEvents: string[];
  extensionDependencies?: string[];
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  contributes: {
    configuration: { properties: Record<string, Property> };
    commands: { command: string; title: string; category?: string }[];
  };
}

const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Manifest;
const properties = manifest.contributes.configuration.properties;

describe('package.json', () => {
  it('identifies the extension', () => {
    assert.equal(manifest.name, 'ckpt-lsp');
    assert.equal(manifest.publisher, 'ckpt-lsp');
    assert.equal(manifest.main, './dist/extension.js');
    assert.equal(manifest.engines.vscode, '^1.82.0');
    assert.ok(manifest.activationEvents.includes('onLanguage:python'));
    // a notebook opened before any .py file starts the extension too
    assert.ok(manifest.activationEvents.includes('onNotebook:jupyter-notebook'));
  });

  it('does not depend on the Python extension (it cannot be installed offline)', () => {
    assert.equal(manifest.extensionDependencies, undefined);
  });

  it('has the version of the Python package', () => {
    const pyproject = fs.readFileSync(path.join(ROOT, 'pyproject.toml'), 'utf8');
    const match = /^version\s*=\s*"([^"]+)"/m.exec(pyproject);
    assert.ok(match, 'no version in pyproject.toml');
    assert.equal(manifest.version, match[1]);
  });

  it('pins every npm dependency to one version', () => {
    const all = { ...manifest.dependencies, ...manifest.devDependencies };
    for (const [name, version] of Object.entries(all)) {
      assert.match(version, /^\d+\.\d+\.\d+$/, `${name}@${version} is not pinned`);
    }
    assert.equal(manifest.dependencies['vscode-languageclient'], '9.0.1');
  });

  it('contributes every setting the code reads, with the same default and a description', () => {
    for (const key of SETTING_KEYS) {
      const property = properties[`ckpt-lsp.${key}`];
      assert.ok(property, `ckpt-lsp.${key} is not contributed`);
      assert.deepEqual(property.default, DEFAULT_SETTINGS[key], `default of ckpt-lsp.${key}`);
      assert.ok((property.markdownDescription ?? '').length > 20, `ckpt-lsp.${key} undocumented`);
    }
    const known = new Set([...SETTING_KEYS.map((k) => `ckpt-lsp.${k}`), 'ckpt-lsp.trace.server']);
    for (const name of Object.keys(properties)) {
      assert.ok(known.has(name), `${name} is contributed but never read`);
    }
    assert.deepEqual(properties['ckpt-lsp.importStrategy'].enum, [...IMPORT_STRATEGIES]);
    assert.deepEqual(properties['ckpt-lsp.showNotifications'].enum, [...NOTIFICATION_LEVELS]);
    assert.deepEqual(properties['ckpt-lsp.trace.server'].enum, ['off', 'messages', 'verbose']);
  });

  it('contributes the commands, and the extension registers the client-side ones', () => {
    const commands = manifest.contributes.commands.map((c) => c.command).sort();
    assert.deepEqual(commands, [
      'ckpt-lsp.checkWorkspace',
      'ckpt-lsp.fixAll',
      'ckpt-lsp.restart',
      'ckpt-lsp.showLogs',
    ]);
    const source = fs.readFileSync(path.join(ROOT, 'client', 'src', 'extension.ts'), 'utf8');
    for (const command of ['ckpt-lsp.restart', 'ckpt-lsp.showLogs', 'ckpt-lsp.fixAll']) {
      assert.ok(source.includes(`registerCommand('${command}'`), `${command} is not registered`);
    }
  });
});
