import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';
import { lastLine, ROOT, runCli } from '../helpers/cli.js';

const exec = promisify(execFile);

test('npm run build type-checks and emits a dist/ that runs jobs without the sources', async () => {
  await exec('npm', ['run', 'build'], { cwd: ROOT });
  // Plain node (no tsx, no source condition) resolves the package to dist/.
  const { stdout } = await exec(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      "const m = await import('tidemark'); const t = await import('tidemark/testing'); console.log(import.meta.resolve('tidemark'), typeof m.job, typeof t.ManualClock)",
    ],
    { cwd: ROOT },
  );
  expect(stdout.trim()).toMatch(/\/dist\/runtime\/index\.js function function$/);
  const r = await runCli(['run', 'examples/wordcount.ts', '--parallelism', '2'], {
    env: { TIDEMARK_USE_BUILD: '1' },
  });
  expect(r.code).toBe(0);
  expect(JSON.parse(lastLine(r.stdout))).toEqual({ hello: 2, world: 1, python: 2, is: 1, fun: 1 });
}, 120_000);
