import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { describeCheckResult, describeStatus, lastLine } from '../src/status';

describe('describeStatus', () => {
  it('gives each state its own icon', () => {
    const texts = (['starting', 'running', 'stopped', 'error'] as const).map(
      (s) => describeStatus(s).text,
    );
    assert.equal(new Set(texts).size, 4);
    for (const text of texts) {
      assert.match(text, /^\$\([a-z~-]+\) ckpt-lsp$/);
    }
  });

  it('names the interpreter and where it came from in the tooltip', () => {
    const view = describeStatus('running', {
      interpreter: '/ws/.venv/bin/python',
      interpreterSource: "the Python extension's active environment",
      serverKind: 'bundled',
    });
    assert.equal(view.isError, false);
    assert.match(view.tooltip, /^ckpt-lsp: running$/m);
    assert.match(
      view.tooltip,
      /^Interpreter: \/ws\/\.venv\/bin\/python \(from the Python extension's active environment\)$/m,
    );
    assert.match(view.tooltip, /^Server: the copy bundled with the extension$/m);
  });

  it('marks errors and carries the reason', () => {
    const view = describeStatus('error', { detail: 'The server did not start: no cp38 build' });
    assert.equal(view.isError, true);
    assert.match(view.tooltip, /no cp38 build/);
  });
});

describe('lastLine', () => {
  it('returns the last non-empty line, trimmed', () => {
    assert.equal(lastLine('first\nsecond line  \n\n'), 'second line');
    assert.equal(lastLine('a\r\nb\r\n'), 'b');
    assert.equal(lastLine('\n \n'), undefined);
    assert.equal(lastLine(''), undefined);
  });

  it('shortens a long line', () => {
    const line = lastLine('x'.repeat(500), 10) ?? '';
    assert.equal(line.length, 10);
    assert.ok(line.endsWith('…'));
  });
});

describe('describeCheckResult', () => {
  it("summarises the server's answer", () => {
    assert.equal(
      describeCheckResult({ files: 120, findings: 3, errors: 0 }),
      '3 findings in 120 files',
    );
    assert.equal(
      describeCheckResult({ files: 1, findings: 1, errors: 2 }),
      '1 finding in 1 file, 2 not readable',
    );
  });

  it('copes with an answer of another shape', () => {
    assert.equal(describeCheckResult(null), 'workspace checked');
    assert.equal(describeCheckResult({ files: '3' }), 'workspace checked');
  });
});
