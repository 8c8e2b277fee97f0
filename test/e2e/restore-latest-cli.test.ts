// `tidemark run --restore latest` as a supervisor (systemd, Kubernetes) uses it: always. A job killed
// (SIGKILL) before its first checkpoint completed has published nothing through its exactly-once
// sinks (FileSink, RedisSink), and `--restore latest` starts it from the beginning, saying so, with
// exactly-once output. A job id the storage has never seen is an error unless `latest-or-fresh`.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, test } from 'vitest';
import { BIN, runCli } from '../helpers/cli.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const COUNT = 4000;

/** A bounded, rate-limited job writing each record to a FileSink and to a RedisSink stream. */
function writeJob(dir: string, prefix: string): string {
  const file = join(dir, 'twosinks.mts');
  writeFileSync(
    file,
    `import { FileSink, RedisSink, job } from 'tidemark';
export default job((env) => {
  const counted = env
    .fromGenerator((i) => ({ k: 'k' + (i % 4), i }), { count: ${COUNT}, ratePerSecond: 1500 })
    .uid('numbers')
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, i: b.i, n: (a.n ?? 1) + 1 }))
    .uid('counts');
  counted.sinkTo(FileSink.jsonLines(${JSON.stringify(join(dir, 'out'))})).uid('file-sink');
  counted
    .sinkTo(RedisSink.stream('counts', {
      connection: { url: process.env.SINK_URL },
      markerPrefix: ${JSON.stringify(`${prefix}:m`)},
      key: (e) => ${JSON.stringify(`${prefix}:out:`)} + e.k,
      fields: (e) => ({ i: e.i, n: e.n ?? 1 }),
    }))
    .uid('redis-sink');
}, { parallelism: 2 });
`,
  );
  return file;
}

function visibleLines(dir: string): { k: string; i: number; n?: number }[] {
  let files: string[];
  try {
    files = readdirSync(join(dir, 'out'));
  } catch {
    return [];
  }
  return files
    .filter((f) => !f.startsWith('.'))
    .flatMap((f) =>
      readFileSync(join(dir, 'out', f), 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean),
    )
    .map((l) => JSON.parse(l) as { k: string; i: number; n?: number });
}

/** Bytes written so far to hidden in-progress part files (records the sink has, unpublished). */
function inProgressBytes(dir: string): number {
  let files: string[];
  try {
    files = readdirSync(join(dir, 'out'));
  } catch {
    return 0;
  }
  return files
    .filter((f) => f.endsWith('.inprogress'))
    .reduce((n, f) => n + statSync(join(dir, 'out', f)).size, 0);
}

/** Each key's running counts 1..n once, and every index once: exactly once. */
function expectExactlyOnce(rows: { k: string; i: number; n?: number }[]): void {
  expect(rows.length).toBe(COUNT);
  expect(new Set(rows.map((r) => r.i)).size).toBe(COUNT);
  const perKey = new Map<string, number[]>();
  for (const r of rows) perKey.set(r.k, [...(perKey.get(r.k) ?? []), r.n ?? 1]);
  for (const ns of perKey.values())
    expect(ns.sort((a, b) => a - b)).toEqual(Array.from({ length: ns.length }, (_x, j) => j + 1));
}

describe('--restore latest for a job killed before its first checkpoint', () => {
  test('nothing published before the kill; resumed from the beginning, exactly once, in files and in Redis', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-restore-latest-'));
    dirs.push(dir);
    const prefix = `rl-${randomUUID()}`;
    const job = writeJob(dir, prefix);
    const env = { SINK_URL: inject('redisUrl') };
    // A checkpoint interval of an hour: the job is killed long before its first checkpoint.
    const args = ['run', job, '--checkpoint-interval', '1h'];
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Killed once its sinks have records (written to hidden in-progress parts).
    const deadline = Date.now() + 30_000;
    while (inProgressBytes(dir) === 0) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`no records reached the sink: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(inProgressBytes(dir)).toBeGreaterThan(0);
    // Nothing was published: no visible part file, no stream entry, no commit marker in Redis.
    expect(visibleLines(dir)).toEqual([]);
    const redis = new Redis(inject('redisUrl'));
    try {
      expect(await redis.keys(`${prefix}:*`)).toEqual([]);

      const resumed = await runCli([...args, '--restore', 'latest'], { cwd: dir, env, timeoutMs: 60_000 });
      expect(resumed.stderr).toMatch(
        /\[twosinks\] job 'twosinks' was started before but none of its checkpoints completed \(file:\/\/.*\): starting from the beginning\n/,
      );
      expect(resumed.code).toBe(0);
      expectExactlyOnce(visibleLines(dir));
      const rows: { k: string; i: number; n: number }[] = [];
      for (let k = 0; k < 4; k++)
        for (const [, fields] of await redis.xrange(`${prefix}:out:k${k}`, '-', '+'))
          rows.push({ k: `k${k}`, i: Number(fields[1]), n: Number(fields[3]) });
      expectExactlyOnce(rows);
    } finally {
      await redis.keys(`${prefix}:*`).then((keys) => (keys.length > 0 ? redis.del(...keys) : 0));
      redis.disconnect();
    }
  }, 120_000);

  test('a job id the storage never saw: exit 1 with a clear error; latest-or-fresh starts it, saying so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-restore-latest-'));
    dirs.push(dir);
    const job = join(dir, 'small.mts');
    writeFileSync(
      job,
      `import { job } from 'tidemark';
export default job((env) => { env.fromElements(1, 2, 3).map((x) => x * 2).print(); });
`,
    );
    const unknown = await runCli(
      ['run', job, '--checkpoint-interval', '1s', '--restore', 'latest', '--job-id', 'typo'],
      {
        cwd: dir,
      },
    );
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(
      /^tidemark: job 'typo' has no completed checkpoint in file:\/\/.* to restore, and was never started with this storage/,
    );
    const fresh = await runCli(
      ['run', job, '--checkpoint-interval', '1s', '--restore', 'latest-or-fresh', '--job-id', 'typo'],
      { cwd: dir },
    );
    expect(fresh.stderr).toMatch(
      /\[typo\] job 'typo' has no checkpoint in file:\/\/.*: starting from the beginning \(restore latest-or-fresh\)\n/,
    );
    expect(fresh.code).toBe(0);
    expect(fresh.stdout.trim().split('\n').sort()).toEqual(['2', '4', '6']);
  }, 60_000);
});
