import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { SUITES_NAMES } from '../../bench/suites';
import { writeReport } from '../../bench/report';
import { ROOT, run } from '../../bench/lib/drover';

describe('the benchmark still works (tiny profile; real numbers come from npm run bench)', () => {
  it('every suite runs, writes results with machine facts, and the report renders', async (t) => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-bench-'));
    const r = await run(process.execPath, [path.join(ROOT, 'dist', 'bench', 'run.js'), '--tiny', '--out', out, '--no-report'], { timeoutMs: 480_000 });
    t.diagnostic(r.stdout.trim().split('\n').slice(-8).join('\n'));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const name of SUITES_NAMES) {
      const file = path.join(out, `${name}.json`);
      assert.ok(fs.existsSync(file), `${name}.json written`);
      const result = JSON.parse(fs.readFileSync(file, 'utf8')) as { machine: { cores: number; node: string }; rows: { failed?: string; values: object }[] };
      assert.ok(result.machine.cores >= 1 && result.machine.node.startsWith('v'));
      assert.ok(result.rows.length > 0);
      assert.deepEqual(result.rows.filter((row) => row.failed), []);
    }
    const md = await writeReport(out, path.join(out, 'benchmarks.md'));
    assert.match(fs.readFileSync(path.join(out, 'benchmarks-workers.svg'), 'utf8'), /^<svg[\s\S]*<\/svg>$/);
    const text = fs.readFileSync(md, 'utf8');
    for (const name of SUITES_NAMES) assert.match(text, new RegExp(`\\*\\*${name}\\*\\*`));
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('a bad flag or unknown suite exits 2', async () => {
    const r = await run(process.execPath, [path.join(ROOT, 'dist', 'bench', 'run.js'), '--suite', 'nope']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown suite nope/);
  });
});
