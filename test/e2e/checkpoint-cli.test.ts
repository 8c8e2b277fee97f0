import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
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
  }, 180_000);

  test('killed at any moment and resumed with --restore latest (at another parallelism): exactly-once output', async () => {
    const redis = await startRedis();
    servers.push(redis);
    const dir = workDir();
    // NOTE: five seconds of records at 4000/s: still running when killed, on a loaded machine too.
    const COUNT = 20_000;
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
    const deadline = Date.now() + 60_000;
    while (Number((await client.get('e2e:{counter}:latest')) ?? 0) < 3) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`no third checkpoint; the job ${child.exitCode === null ? 'still runs' : 'ended'}`);
      await new Promise((r) => setTimeout(r, 20));
    }
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
  }, 180_000);

  test('savepoints of a running job; list, show and delete', async () => {
    const dir = workDir();
    const job = writeJob(dir, undefined);
    const child = spawn(process.execPath, [BIN, 'run', job, '--checkpoint-interval', '200ms'], {
      cwd: dir,
      stdio: 'ignore',
    });
    try {
      // The job answers once it runs (a while on a loaded machine).
      const deadline = Date.now() + 60_000;
      let sp = await runCli(['savepoint', 'counter'], { cwd: dir });
      while (sp.code !== 0 && Date.now() < deadline) {
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
  }, 180_000);

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
  }, 180_000);
});

describe('damaged and unusable checkpoint storage from the command line', () => {
  /** A finished run of the counter job with a few retained checkpoints; the ids, oldest first. */
  async function checkpointed(dir: string, storage?: string): Promise<number[]> {
    const job = writeJob(dir, 1500);
    const where = storage === undefined ? [] : ['--checkpoint-storage', storage];
    const r = await runCli(['run', job, '--checkpoint-interval', '50ms', '--retain', '3', ...where], {
      cwd: dir,
    });
    expect(r.code).toBe(0);
    const listed = await runCli(
      ['checkpoints', 'list', '--json', '--job', 'counter', ...storageFlag(storage)],
      {
        cwd: dir,
      },
    );
    const ids = (JSON.parse(listed.stdout) as { id: number }[]).map((row) => row.id);
    expect(ids.length).toBeGreaterThan(1);
    return ids;
  }
  const storageFlag = (storage: string | undefined) => (storage === undefined ? [] : ['--storage', storage]);

  test('checkpoints list and show give the same time; an unknown checkpoint id is a usage error (exit 2)', async () => {
    const dir = workDir();
    const ids = await checkpointed(dir);
    const latest = ids.at(-1)!;
    const rows = JSON.parse((await runCli(['checkpoints', 'list', '--json'], { cwd: dir })).stdout) as {
      id: number;
      time: string;
    }[];
    const row = rows.find((r) => r.id === latest)!;
    const shown = JSON.parse(
      (await runCli(['checkpoints', 'show', String(latest), '--job', 'counter', '--json'], { cwd: dir }))
        .stdout,
    ) as { time: string; triggered: string };
    expect(shown.time).toBe(row.time);
    expect(Date.parse(shown.triggered)).toBeLessThanOrEqual(Date.parse(shown.time));
    const text = await runCli(['checkpoints', 'show', String(latest), '--job', 'counter'], { cwd: dir });
    expect(text.stdout).toMatch(
      new RegExp(
        `^checkpoint ${latest} of job 'counter', completed ${row.time} \\(triggered ${shown.triggered}\\)`,
      ),
    );

    const has = `\\(it has ${ids.join(', ')}\\)`;
    for (const args of [
      ['checkpoints', 'show', '999', '--job', 'counter'],
      ['checkpoints', 'delete', '999', '--job', 'counter'],
    ]) {
      const r = await runCli(args, { cwd: dir });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(
        new RegExp(`^tidemark: job 'counter' has no checkpoint 999 in file://\\S+ ${has}\\n$`),
      );
    }
    const other = await runCli(['checkpoints', 'show', '1', '--job', 'nobody'], { cwd: dir });
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/^tidemark: job 'nobody' has no checkpoints in file:\/\/\S+\n$/);
    const restore = await runCli(['run', join(dir, 'counter.mts'), '--restore', '999'], { cwd: dir });
    expect(restore.code).toBe(2);
    expect(restore.stderr).toBe("tidemark: job 'counter': checkpoint 999 not found\n");
  }, 180_000);

  test('damaged metadata is reported in one printable line, without its bytes', async () => {
    const dir = workDir();
    const ids = await checkpointed(dir);
    const latest = ids.at(-1)!;
    // A MessagePack string of control characters (a terminal escape), then a stray byte.
    writeFileSync(
      join(dir, '.tidemark/checkpoints/counter/checkpoints', String(latest), 'metadata'),
      Buffer.from([0xa6, 0x07, 0x1b, 0x5b, 0x33, 0x31, 0x6d, 0xff]),
    );
    const show = await runCli(['checkpoints', 'show', String(latest), '--job', 'counter'], { cwd: dir });
    expect(show.code).toBe(1);
    expect(show.stderr).toBe(
      `tidemark: checkpoint ${latest} of job 'counter': the metadata cannot be decoded (damaged or not a tidemark checkpoint): bytes left over after the data\n`,
    );
    const restored = await runCli(['run', join(dir, 'counter.mts'), '--restore', 'latest'], { cwd: dir });
    expect(restored.code).toBe(0);
    expect(restored.stderr).toContain(`checkpoint ${latest} cannot be restored`);
    expect(restored.stderr).toContain(`restored from checkpoint ${ids.at(-2)}`);
    expect(restored.stderr).toMatch(/^[\n\x20-\x7e]*$/);
  }, 180_000);

  test('a garbage latest pointer in file storage: list and --restore latest use the newest checkpoint, with one warning line', async () => {
    const dir = workDir();
    const ids = await checkpointed(dir);
    writeFileSync(join(dir, '.tidemark/checkpoints/counter/latest'), 'garbage\n');
    const warning = `tidemark: warning: job 'counter': the manifest ${join(dir, '.tidemark/checkpoints/counter/latest')} is damaged (not JSON); using the ${ids.length} checkpoint(s) found in its directory, the latest ${ids.at(-1)}\n`;
    const listed = await runCli(['checkpoints', 'list'], { cwd: dir });
    expect(listed.code).toBe(0);
    expect(listed.stderr).toBe(warning);
    expect(listed.stdout).toMatch(new RegExp(`^counter\\tcheckpoint ${ids.at(-1)} \\(latest\\)`, 'm'));
    // On 2 slots: the worker threads open the storage too, and warn the same way.
    const restored = await runCli(
      [
        'run',
        join(dir, 'counter.mts'),
        '--restore',
        'latest',
        '--checkpoint-interval',
        '50ms',
        '-p',
        '2',
        '--slots',
        '2',
      ],
      { cwd: dir },
    );
    expect(restored.code).toBe(0);
    expect(restored.stderr).toContain(warning);
    expect(restored.stderr).toContain(`[counter] restored from checkpoint ${ids.at(-1)}`);
    for (const line of restored.stderr.trimEnd().split('\n'))
      expect(line).toMatch(/^(tidemark: warning: job 'counter': the manifest .* is damaged|\[counter\] )/);
    // The next commit wrote a whole manifest again.
    const after = await runCli(['checkpoints', 'list', '--json'], { cwd: dir });
    expect(after.stderr).toBe('');
    const latest = (JSON.parse(after.stdout) as { id: number; latest: boolean }[]).find((r) => r.latest);
    expect(latest?.id).toBeGreaterThan(ids.at(-1)!);
  }, 180_000);

  test('a garbage latest pointer in Redis storage: list and --restore latest use the newest checkpoint', async () => {
    const redis = await startRedis();
    servers.push(redis);
    const dir = workDir();
    const storage = `${redis.url}/?prefix=damaged`;
    const ids = await checkpointed(dir, storage);
    const client = new Redis(redis.url);
    try {
      await client.set('damaged:{counter}:latest', 'garbage');
      const warning = `tidemark: warning: job 'counter': the latest pointer damaged:{counter}:latest in ${redis.url} (prefix damaged) is damaged (not a checkpoint id); using the newest stored checkpoint, ${ids.at(-1)}\n`;
      const listed = await runCli(['checkpoints', 'list', '--storage', storage], { cwd: dir });
      expect(listed.code).toBe(0);
      expect(listed.stderr).toBe(warning);
      expect(listed.stdout).toMatch(new RegExp(`^counter\\tcheckpoint ${ids.at(-1)} \\(latest\\)`, 'm'));
      const restored = await runCli(
        [
          'run',
          join(dir, 'counter.mts'),
          '--restore',
          'latest',
          '--checkpoint-interval',
          '50ms',
          '--checkpoint-storage',
          storage,
        ],
        { cwd: dir },
      );
      expect(restored.code).toBe(0);
      expect(restored.stderr).toContain(`[counter] restored from checkpoint ${ids.at(-1)}`);
      // The commit script read the damaged pointer as the newest checkpoint, and set it again.
      expect(Number(await client.get('damaged:{counter}:latest'))).toBeGreaterThan(ids.at(-1)!);
    } finally {
      client.disconnect();
    }
  }, 180_000);

  test.skipIf(!existsSync('/proc/self'))(
    'a checkpoint directory that cannot be made fails at once (not a busy loop in mkdir)',
    async () => {
      const dir = workDir();
      const job = writeJob(dir, 100);
      const r = await runCli(
        [
          'run',
          job,
          '--checkpoint-interval',
          '1s',
          '--checkpoint-storage',
          '/proc/tidemark-nope/checkpoints',
        ],
        { cwd: dir, timeoutMs: 60_000 },
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        "tidemark: file:///proc/tidemark-nope/checkpoints: cannot use the directory: ENOENT: no such file or directory, mkdir '/proc/tidemark-nope'\n",
      );
    },
    90_000,
  );

  test('the first SIGTERM ends a run even while its storage does not answer', async () => {
    // A "Redis" that accepts connections and never answers.
    let connected!: () => void;
    const firstConnection = new Promise<void>((r) => {
      connected = r;
    });
    const sockets: Socket[] = [];
    const silent = createServer((socket) => {
      sockets.push(socket);
      connected();
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as AddressInfo).port;
    const dir = workDir();
    const job = writeJob(dir, 100);
    const child = spawn(
      process.execPath,
      [BIN, 'run', job, '--checkpoint-interval', '1s', '--checkpoint-storage', `redis://127.0.0.1:${port}`],
      { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await firstConnection;
      const signalled = performance.now();
      child.kill('SIGTERM');
      const code = await exited;
      // Cancelled, it could not stop (the storage never answers): it exits after the grace period,
      // well before the storage's own timeouts would have ended the run.
      // (Or, still opening the storage for the job's lease, it exits at once.)
      expect(code).toBe(130);
      expect(stderr).toMatch(
        /^tidemark: (the job did not stop within 10 s of SIGTERM|SIGTERM before the job started); exiting\n$/,
      );
      expect(performance.now() - signalled).toBeLessThan(40_000);
    } finally {
      child.kill('SIGKILL');
      for (const s of sockets) s.destroy();
      silent.close();
    }
  }, 180_000);
});
