import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { defaults, envName, optionSpecs } from '../../src/options';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

function formatDefault(spec: (typeof optionSpecs)[number]): string | undefined {
  const v = (defaults as Record<string, unknown>)[spec.key];
  if (v === undefined || Array.isArray(v)) return undefined;
  if (spec.kind === 'duration') {
    const ms = v as number;
    return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
  }
  return String(v);
}

describe('README documents every option', () => {
  for (const spec of optionSpecs) {
    it(`--${spec.flag}`, () => {
      const row = readme.split('\n').find((l) => l.startsWith(`| \`--${spec.flag}\` |`));
      assert.ok(row, `README has a row for --${spec.flag}`);
      assert.ok(row.includes(`\`${envName(spec)}\``), `row names ${envName(spec)}`);
      for (const extra of spec.env ?? []) assert.ok(row.includes(`\`${extra}\``), `row names ${extra}`);
      const def = formatDefault(spec);
      if (def !== undefined) assert.ok(row.includes(`\`${def}\``), `row shows the default ${def}: ${row}`);
    });
  }

  it('shows the two set-up commands', () => {
    assert.match(readme, /npm ci && npm start/);
    assert.match(readme, /npm test/);
  });
});
