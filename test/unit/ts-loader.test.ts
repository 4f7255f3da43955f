import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { DroverError } from '../../src/errors';
import { typeScriptExecArgv } from '../../src/primary/ts-loader';

const ROOT = path.resolve(__dirname, '..', '..', '..');

describe('typeScriptExecArgv: workers get tsx for a TypeScript entry', () => {
  const found = () => '/srv/app/node_modules/tsx/dist/loader.mjs';
  const missing = () => {
    throw Object.assign(new Error("Cannot find module 'tsx'"), { code: 'MODULE_NOT_FOUND' });
  };

  it('JavaScript entries get nothing', () => {
    for (const app of ['/srv/app/index.js', '/srv/app/index.mjs', '/srv/app/index.cjs']) assert.deepEqual(typeScriptExecArgv(app, [], missing), []);
  });

  it('.ts, .mts and .cts get --import of tsx resolved from the app folder', () => {
    const seen: string[] = [];
    for (const app of ['/srv/app/index.ts', '/srv/app/index.mts', '/srv/app/index.cts']) {
      const argv = typeScriptExecArgv(app, [], (id, dir) => (seen.push(`${id}@${dir}`), found()));
      assert.deepEqual(argv, ['--import', 'file:///srv/app/node_modules/tsx/dist/loader.mjs']);
    }
    assert.deepEqual(seen, ['tsx@/srv/app', 'tsx@/srv/app', 'tsx@/srv/app']);
  });

  it('nothing is added when drover itself runs with tsx (workers inherit its flags)', () => {
    assert.deepEqual(typeScriptExecArgv('/srv/app/index.ts', ['--import', 'tsx'], missing), []);
    assert.deepEqual(typeScriptExecArgv('/srv/app/index.ts', ['--import=tsx/esm'], missing), []);
  });

  it('tsx not found: a usage error (exit 2) naming the fix', () => {
    assert.throws(
      () => typeScriptExecArgv('/srv/app/index.ts', [], missing),
      (err: unknown) =>
        err instanceof DroverError &&
        err.exitCode === 2 &&
        /index\.ts is TypeScript; drover runs it through tsx, which cannot be found from \/srv\/app\. Install it next to the app \(npm install --save-dev tsx\)/.test(err.message),
    );
  });

  it("the real resolution finds tsx's package entry, which hooks both import and require", () => {
    const [flag, url] = typeScriptExecArgv(path.join(ROOT, 'test', 'fixtures', 'apps', 'ts-app.ts'), []);
    assert.equal(flag, '--import');
    assert.match(url!, /^file:\/\/.*\/node_modules\/tsx\/dist\/loader\.mjs$/);
  });
});
