import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import { BIN, runCli } from '../helpers/cli.js';
import { freePort, type RedisTestServer, startRedis } from '../setup/redis.js';

const dirs: string[] = [];
const servers: RedisTestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function workDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tidemark-cp-cli-'));
  dirs.push(d);
  return d;
}

/** A job module in `dir`: an unbounded (or bounded) rate-limited count per key into a file sink. */
function writeJob(dir: string, count: number | undefined): string {
  const file = join(dir, 'counter.mts');
  writeFileSync(
    file,
    `import { FileSink, job } from 'tidemark';
export default job((env) => {
  env.fromGenerator((i) => ({ k: 'k' + (i % 5), i }), { ${count === undefined ? '' : `count: ${count}, `}ratePerSecond: 4000 })
    .uid('numbers')
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, i: b.i, n: (a.n ?? 1) + 1 }))
    .uid('counts')
    .sinkTo(FileSink.jsonLines(${JSON.stringify(join(dir, 'out'))}));
});
`,
  );
  return file;
}

function readOut(dir: string): { k: string; i: number; n?: number }[] {
  const out = join(dir, 'out');
  return readdirSync(out)
    .filter((f) => !f.startsWith('.'))
    .flatMap((f) => readFileSync(join(out, f), 'utf8').trim().split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as { k: string; i: number; n?: number });
}

describe('checkpoints from the command line', () => {
  test('bad Redis configuration: one clear error at start, non-zero exit, nothing written', async () => {
    const dir = workDir();
    const job = writeJob(dir, 100);
    const closed = await freePort();
    const unreachable = await runCli(
      ['run', job, '--checkpoint-interval', '1s', '--checkpoint-storage', `redis://127.0.0.1:${closed}`],
      { cwd: dir },
    );
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(
      new RegExp(
        `^tidemark: cannot open Redis checkpoint storage redis://127\\.0\\.0\\.1:${closed} .*connection refused`,
      ),
    );

    const secured = await startRedis({ password: 'right-password' });
    servers.push(secured);
    const wrong = await runCli(
      [
        'run',
        job,
        '--checkpoint-interval',
        '1s',
        '--checkpoint-storage',
        `redis://:wrong-password@127.0.0.1:${secured.port}`,
      ],
      { cwd: dir },
    );
    expect(wrong.code).toBe(1);
    // (after a warning: a password in a flag is visible in ps)
    expect(wrong.stderr).toMatch(/^tidemark: warning: the storage URL on the command line holds a password/);
    expect(wrong.stderr).toMatch(
      /^tidemark: cannot open Redis checkpoint storage redis:\/\/127\.0\.0\.1:\d+ .*authentication failed/m,
    );
    expect(wrong.stderr).not.toContain('wrong-password');
    const tls = await runCli(
      [
        'run',
        job,
        '--checkpoint-interval',
        '1s',
        '--checkpoint-storage',
        `rediss://:right-password@127.0.0.1:${secured.port}`,
      ],
      {
        cwd: dir,
      },
    );
    expect(tls.code).toBe(1);
    expect(tls.stderr).toMatch(/^tidemark: cannot open Redis checkpoint storage rediss:\/\/.*TLS/m);
    const redis = new Redis({ port: secured.port, password: 'right-password' });
    expect(await redis.dbsize()).toBe(0);
    redis.disconnect();
    // Nothing ran: no output was written either.
    expect(() => readdirSync(join(dir, 'out'))).toThrow();
  }, 60_000);

  test('killed at any moment and resumed with --restore latest (at another parallelism): exactly-once output', async () => {
    const redis = await startRedis();
    servers.push(redis);
    const dir = workDir();
    const COUNT = 6000;
    const job = writeJob(dir, COUNT);
    const storage = `${redis.url}/?prefix=e2e`;
    // First run: killed with SIGKILL after a while (checkpoints every 100 ms).
    const child = spawn(
      process.execPath,
      [BIN, 'run', job, '-p', '2', '--checkpoint-interval', '100ms', '--checkpoint-storage', storage],
      {
        cwd: dir,
        stdio: 'ignore',
      },
    );
    // Kill it at a random moment once a few checkpoints exist.
    const client = new Redis(redis.url);
    for (let i = 0; i < 300 && Number((await client.get('e2e:{counter}:latest')) ?? 0) < 3; i++)
      await new Promise((r) => setTimeout(r, 20));
    client.disconnect();
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 300)));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const partial = readOut(dir).length;
    expect(partial).toBeLessThan(COUNT);
    const listed = await runCli(['checkpoints', 'list', '--storage', storage, '--job', 'counter'], {
      cwd: dir,
    });
    expect(listed.stdout).toMatch(/^counter\tcheckpoint \d+ \(latest\)/m);
    // Resume at parallelism 3.
    const resumed = await runCli(
      [
        'run',
        job,
        '-p',
        '3',
        '--checkpoint-interval',
        '100ms',
        '--checkpoint-storage',
        storage,
        '--restore',
        'latest',
      ],
      { cwd: dir },
    );
    expect(resumed.stderr).toMatch(/\[counter\] restored from checkpoint \d+/);
    expect(resumed.code).toBe(0);
    const out = readOut(dir);
    // Every record was counted exactly once: per key, counts 1..n each once, and all records seen.
    expect(out.length).toBe(COUNT);
    const perKey = new Map<string, number[]>();
    for (const r of out) perKey.set(r.k, [...(perKey.get(r.k) ?? []), r.n ?? 1]);
    for (const [, ns] of perKey)
      expect(ns.sort((a, b) => a - b)).toEqual(Array.from({ length: ns.length }, (_x, i) => i + 1));
    expect(new Set(out.map((r) => r.i)).size).toBe(COUNT);
  }, 60_000);

  test('savepoints of a running job; list, show and delete', async () => {
    const dir = workDir();
    const job = writeJob(dir, undefined);
    const child = spawn(process.execPath, [BIN, 'run', job, '--checkpoint-interval', '200ms'], {
      cwd: dir,
      stdio: 'ignore',
    });
    try {
      let sp = await runCli(['savepoint', 'counter'], { cwd: dir });
      for (let i = 0; i < 50 && sp.code !== 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        sp = await runCli(['savepoint', 'counter'], { cwd: dir });
      }
      expect(sp.code).toBe(0);
      const id = Number(/savepoint (\d+) of job 'counter' completed/.exec(sp.stdout)?.[1]);
      expect(id).toBeGreaterThan(0);
      const list = await runCli(['checkpoints', 'list', '--json'], { cwd: dir });
      const rows = JSON.parse(list.stdout) as { job: string; id: number; kind: string }[];
      expect(rows).toContainEqual(expect.objectContaining({ job: 'counter', id, kind: 'savepoint' }));
      const show = await runCli(['checkpoints', 'show', String(id), '--job', 'counter'], { cwd: dir });
      expect(show.stdout).toMatch(new RegExp(`^savepoint ${id} of job 'counter'`));
      expect(show.stdout).toContain("operator 'reduce' (counts): parallelism 1, maxParallelism 128");
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      const del = await runCli(['checkpoints', 'delete', String(id), '--job', 'counter'], { cwd: dir });
      expect(del.stdout).toContain(`deleted checkpoint ${id}`);
      const after = JSON.parse((await runCli(['checkpoints', 'list', '--json'], { cwd: dir })).stdout) as {
        id: number;
      }[];
      expect(after.map((r) => r.id)).not.toContain(id);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);

  test('a restore that does not match the job names what differs', async () => {
    const dir = workDir();
    const job = writeJob(dir, 2000);
    const first = await runCli(['run', job, '--checkpoint-interval', '50ms'], { cwd: dir });
    expect(first.code).toBe(0);
    const changed = join(dir, 'changed.mts');
    writeFileSync(changed, readFileSync(job, 'utf8').replace(".uid('counts')", ".uid('renamed')"));
    const r = await runCli(['run', changed, '--restore', 'latest', '--job-id', 'counter'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /has state for operator\(s\) 'reduce' \(counts\) that the job does not have; .*--allow-non-restored-state/,
    );
    const allowed = await runCli(
      ['run', changed, '--restore', 'latest', '--job-id', 'counter', '--allow-non-restored-state'],
      { cwd: dir },
    );
    expect(allowed.code).toBe(0);
    const other = await runCli(['run', job, '--restore', 'latest', '--max-parallelism', '64'], { cwd: dir });
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(
      /operator 'reduce' \(counts\) was checkpointed with maxParallelism 128, but the job runs it with maxParallelism 64/,
    );
  }, 60_000);
});
