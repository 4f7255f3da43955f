import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { detectCpuLimit } from '../../src/cpus';

function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-cgroup-'));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}

describe('container-aware CPU count', () => {
  it('cgroup v2 cpu.max 150000 100000 (1.5 CPUs) gives 2', () => {
    const root = tree({ 'cpu.max': '150000 100000\n', 'proc-self-cgroup': '0::/\n' });
    const l = detectCpuLimit(root, path.join(root, 'proc-self-cgroup'), 16);
    assert.equal(l.count, 2);
    assert.equal(l.source, 'cgroup');
    assert.match(l.detail, /cpu\.max: 150000\/100000 = 1\.5 CPUs/);
  });

  it('cgroup v2 `max` means no quota: the core count', () => {
    const root = tree({ 'cpu.max': 'max 100000\n', 'proc-self-cgroup': '0::/\n' });
    const l = detectCpuLimit(root, path.join(root, 'proc-self-cgroup'), 6);
    assert.deepEqual([l.count, l.source], [6, 'cpus']);
  });

  it("reads the process's own cgroup first (nested path)", () => {
    const root = tree({ 'kubepods/pod1/cpu.max': '50000 100000', 'cpu.max': 'max 100000', 'self': '0::/kubepods/pod1\n' });
    assert.equal(detectCpuLimit(root, path.join(root, 'self'), 8).count, 1);
  });

  it('a quota above the core count is capped at the cores', () => {
    const root = tree({ 'cpu.max': '800000 100000', 'self': '0::/' });
    assert.equal(detectCpuLimit(root, path.join(root, 'self'), 2).count, 2);
  });

  it('cgroup v1 quota and period; -1 = unlimited', () => {
    const v1 = tree({ 'cpu/cpu.cfs_quota_us': '250000', 'cpu/cpu.cfs_period_us': '100000', 'self': '1:cpu,cpuacct:/\n' });
    assert.equal(detectCpuLimit(v1, path.join(v1, 'self'), 8).count, 3);
    const unlimited = tree({ 'cpu/cpu.cfs_quota_us': '-1', 'cpu/cpu.cfs_period_us': '100000', 'self': '1:cpu:/\n' });
    assert.deepEqual(detectCpuLimit(unlimited, path.join(unlimited, 'self'), 4).count, 4);
  });

  it('no cgroup files at all: the core count', () => {
    const root = tree({});
    const l = detectCpuLimit(root, path.join(root, 'missing'), 3);
    assert.deepEqual([l.count, l.source], [3, 'cpus']);
  });
});
