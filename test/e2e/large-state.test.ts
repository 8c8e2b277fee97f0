// The large-state demonstration (bench/large-state.ts) at a small size, as a user runs it with the
// CLI: a deduplication job over 200 000 distinct keys on the LMDB state backend, under
// `node --max-old-space-size=256`, checkpointing to a directory, killed with SIGKILL after two
// checkpoints and restarted with `--restore latest`: every key in the committed output exactly
// once. Also the CLI's state-backend flags and their errors.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { runLargeState } from '../../bench/large-state.js';
import { runCli } from '../helpers/cli.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'tidemark-large-state-'));
  dirs.push(d);
  return d;
};

describe('the LMDB state backend from the CLI', () => {
  test('200 000 keys under a 256 MiB heap: killed after two checkpoints, restored, exactly once', async () => {
    const dir = tempDir();
    const r = await runLargeState({
      keys: 200_000,
      heapMiB: 256,
      interval: '300ms',
      killAfter: 2,
      stateBackend: 'lmdb',
      dir,
      // NOTE: paced (250 000 records in about 2 s), so that two checkpoints complete before the
      // source ends however fast the machine: unpaced, a run once ended after 0.6 s, before them.
      ratePerSecond: 125_000,
    });
    expect(r.first.signal).toBe('SIGKILL');
    expect(r.first.checkpoints.length).toBeGreaterThanOrEqual(2);
    expect(r.second.exitCode).toBe(0);
    expect(r.outputLines).toBe(200_000);
    expect(r.exactlyOnce).toBe(true);
  }, 240_000);

  test('--state-dir without --state-backend lmdb, and an unusable state directory, are clear errors', async () => {
    const dir = tempDir();
    const job = join(dir, 'small.mts');
    writeFileSync(
      job,
      `import { job } from 'tidemark';
export default job((env) => { env.fromElements(1, 2, 3).keyBy((x) => x).map((x) => x * 2).print(); });
`,
    );
    const noBackend = await runCli(['run', job, '--state-dir', join(dir, 'state')], { cwd: dir });
    expect(noBackend.code).toBe(2);
    expect(noBackend.stderr).toMatch(
      /--state-dir is the directory of the lmdb state backend: it needs --state-backend lmdb/,
    );
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const unusable = await runCli(
      ['run', job, '--state-backend', 'lmdb', '--state-dir', join(file, 'state')],
      {
        cwd: dir,
      },
    );
    expect(unusable.code).toBe(2);
    expect(unusable.stderr).toMatch(
      /the lmdb state backend cannot use the state directory '.*a-file\/state' \(--state-dir\)/,
    );
    const wrong = await runCli(['run', job, '--state-backend', 'rocksdb'], { cwd: dir });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/--state-backend.*Allowed choices are heap, lmdb/);
    const ok = await runCli(['run', job, '--state-backend', 'lmdb', '--state-dir', join(dir, 'state')], {
      cwd: dir,
    });
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim().split('\n').sort()).toEqual(['2', '4', '6']);
    // On two slots (worker threads), each keyed subtask opens its database in the state directory
    // while the job runs, and deletes it at the end.
    const slow = join(dir, 'slow.mts');
    writeFileSync(
      slow,
      `import { job } from 'tidemark';
export default job((env) => {
  env.fromGenerator((i) => i % 1000, { count: 3000, ratePerSecond: 1000 }).keyBy((x) => x).reduce((a, b) => a + b).print();
}, { parallelism: 2 });
`,
    );
    const stateDir = join(dir, 'slot-state');
    const seen = new Set<string>();
    const poll = setInterval(() => {
      try {
        for (const d of readdirSync(stateDir)) seen.add(d);
      } catch {}
    }, 50);
    const slots = await runCli(
      ['run', slow, '--slots', '2', '--state-backend', 'lmdb', '--state-dir', stateDir],
      {
        cwd: dir,
      },
    );
    clearInterval(poll);
    expect(slots.code).toBe(0);
    expect(slots.stdout.trim().split('\n')).toHaveLength(3000);
    expect([...seen].filter((d) => /^p\d+-[0-9a-f]+-.*reduce/.test(d))).toHaveLength(2);
    expect(readdirSync(stateDir)).toEqual([]);
    const help = await runCli(['run', '--help']);
    expect(help.stdout).toMatch(/--state-backend <backend>/);
    expect(help.stdout).toMatch(/--state-dir <dir>/);
  }, 120_000);
});
