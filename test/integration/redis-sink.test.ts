// The exactly-once Redis sink against real servers: a transaction of a million records, a commit
// that fails half-way (a key of the wrong type) and is retried after the restore, the same on a
// three-node Redis Cluster, and a job on the cluster killed with SIGKILL and restored with
// `--restore latest`. Each checks that every record was written exactly once, in order per key.
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import {
  MemoryCheckpointStorage,
  RedisSink,
  RestartStrategies,
  type RunnerEvent,
  StreamExecutionEnvironment,
} from 'tidemark';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { BIN, runCli } from '../helpers/cli.js';
import { type RedisTestCluster, startRedisCluster } from '../setup/redis.js';

type Client = Redis | Cluster;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Every entry of a stream, as its `i` and `n` fields, read in pages. */
async function readStream(client: Client, key: string): Promise<{ i: number; n: number }[]> {
  const out: { i: number; n: number }[] = [];
  let from = '-';
  for (;;) {
    const page = (await client.xrange(key, from, '+', 'COUNT', 50_000)) as [string, string[]][];
    const rows = from === '-' ? page : page.slice(1);
    for (const [, f] of rows) {
      const m = new Map<string, string>();
      for (let j = 0; j + 1 < f.length; j += 2) m.set(f[j]!, f[j + 1]!);
      out.push({ i: Number(m.get('i')), n: Number(m.get('n') ?? 0) });
    }
    if (page.length < 50_000) return out;
    from = page[page.length - 1]![0];
  }
}

/**
 * Checks the output of the keyed job below: per key, the running counts 1..n each exactly once
 * and in order, and every input record exactly once overall.
 */
async function expectExactlyOnce(client: Client, keys: readonly string[], count: number): Promise<void> {
  const seen: number[] = [];
  for (const key of keys) {
    const rows = await readStream(client, key);
    expect(
      rows.map((r) => r.n),
      key,
    ).toEqual(Array.from({ length: rows.length }, (_x, j) => j + 1));
    for (const r of rows) seen.push(r.i);
  }
  expect(seen.length).toBe(count);
  expect(new Set(seen).size).toBe(count);
}

/** `count` records spread over `keys` keys, counted per key, written to one stream per key. */
function countingJob(
  env: StreamExecutionEnvironment,
  url: string,
  prefix: string,
  keys: number,
  count: number,
  maxBatchWrites: number,
  ratePerSecond?: number,
): void {
  env
    .fromGenerator((i) => ({ k: `${prefix}:out:${i % keys}`, i, n: 1 }), {
      count,
      ...(ratePerSecond === undefined ? {} : { ratePerSecond }),
    })
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, i: b.i, n: a.n + 1 }))
    .sinkTo(
      RedisSink.stream('counts', {
        connection: { url },
        markerPrefix: `${prefix}:m`,
        maxBatchWrites,
        key: (e) => e.k,
        fields: (e) => ({ i: e.i, n: e.n }),
      }),
    );
}

/**
 * Runs the counting job with checkpoints and restarts while `bad` (a string, the wrong type for a
 * stream) blocks every commit that writes it; once the job restarted twice because of it, the
 * key is removed, and the job must finish with every record written once. `during`: checkpoints
 * complete while the job runs (so the failing commits are theirs); else the job ends before its
 * first one, and the failing commit is the final checkpoint's, of the whole output.
 */
async function commitFailsHalfway(
  client: Client,
  url: string,
  prefix: string,
  during: boolean,
): Promise<void> {
  const KEYS = 12;
  const COUNT = 3000;
  const bad = `${prefix}:out:5`;
  await client.set(bad, 'not a stream');
  const env = new StreamExecutionEnvironment({ parallelism: 2 });
  env.enableCheckpointing(during ? 30 : 3_600_000);
  env.setCheckpointStorage(new MemoryCheckpointStorage());
  env.setRestartStrategy(RestartStrategies.fixedDelay(1000, 20));
  countingJob(env, url, prefix, KEYS, COUNT, 7, during ? 10_000 : undefined);
  const events: RunnerEvent[] = [];
  const job = env.executeAsync({
    onEvent: (e) => {
      events.push(e);
      if (e.type === 'restart' && e.attempt === 2) void client.del(bad);
    },
  });
  const result = await job.result;
  expect(result.status).toBe('FINISHED');
  const restarts = events.filter((e) => e.type === 'restart');
  expect(restarts.length).toBeGreaterThanOrEqual(2);
  const first = restarts.map((e) => (e.type === 'restart' ? e.error.message : ''))[0];
  expect(first).toContain(`WRONGTYPE key ${bad} holds a string, not a stream`);
  expect(first).toMatch(/Redis sink 'counts': batch \d+ of \d+ of transaction \S+/);
  await expectExactlyOnce(
    client,
    Array.from({ length: KEYS }, (_x, k) => `${prefix}:out:${k}`),
    COUNT,
  );
}

describe('Redis sink on one server', () => {
  let client: Redis;
  const url = () => inject('redisUrl');
  beforeAll(() => {
    client = new Redis(url());
  });
  afterAll(() => client.disconnect());

  test('a transaction of a million records commits in bounded batches, exactly once', async () => {
    const prefix = `sink-${randomUUID()}`;
    const COUNT = 1_000_000;
    const env = new StreamExecutionEnvironment({ parallelism: 1 });
    // No checkpoint: the whole output is the final transaction.
    env
      .fromGenerator((i) => i, { count: COUNT })
      .sinkTo(
        RedisSink.stream('big', {
          connection: { url: url() },
          markerPrefix: `${prefix}:m`,
          key: () => `${prefix}:out`,
          fields: (i) => ({ i }),
        }),
      );
    await env.execute();
    expect(await client.xlen(`${prefix}:out`)).toBe(COUNT);
    const rows = await readStream(client, `${prefix}:out`);
    expect(rows.every((r, j) => r.i === j)).toBe(true);
    // One marker per batch of 4096 writes.
    expect((await client.keys(`${prefix}:m:*`)).length).toBe(Math.ceil(COUNT / 4096));
    await client.del(`${prefix}:out`);
  }, 120_000);

  test('a commit that fails half-way (a key of the wrong type) is retried after the restore without loss or duplicates', async () => {
    await commitFailsHalfway(client, url(), `sink-${randomUUID()}`, true);
  }, 60_000);

  test("a bounded job's last commit that fails half-way is completed from its final checkpoint", async () => {
    await commitFailsHalfway(client, url(), `sink-${randomUUID()}`, false);
  }, 60_000);

  test('a repeated commit of a restored transaction writes nothing twice; bad options are refused', async () => {
    const prefix = `sink-${randomUUID()}`;
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    env.enableCheckpointing(20);
    env.setCheckpointStorage(new MemoryCheckpointStorage());
    countingJob(env, url(), prefix, 3, 500, 5);
    await env.execute();
    await expectExactlyOnce(
      client,
      [0, 1, 2].map((k) => `${prefix}:out:${k}`),
      500,
    );
    expect(() =>
      RedisSink.stream('a{b}', {
        connection: { url: url() },
        key: () => 'x',
        fields: () => ({ a: 1 }),
      }).create(),
    ).toThrow(/sink id 'a\{b\}' must be non-empty and contain no '\{' or '\}'/);
    expect(() =>
      RedisSink.stream('s', {
        connection: { url: url() },
        maxBatchWrites: 0,
        key: () => 'x',
        fields: () => ({ a: 1 }),
      }).create(),
    ).toThrow(/maxBatchWrites must be a positive integer/);
  });
});

function redisCliAvailable(): boolean {
  try {
    execFileSync('redis-cli', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!redisCliAvailable())('Redis sink on a three-node Redis Cluster', () => {
  let cluster: RedisTestCluster;
  let client: Cluster;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    client = new Cluster(cluster.nodes);
  }, 60_000);
  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  test('writes spread over every node: grouped by hash slot, every key declared, exactly once', async () => {
    const prefix = `sink-${randomUUID()}`;
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    env.enableCheckpointing(20);
    env.setCheckpointStorage(new MemoryCheckpointStorage());
    countingJob(env, cluster.url, prefix, 40, 4000, 9);
    await env.execute();
    const keys = Array.from({ length: 40 }, (_x, k) => `${prefix}:out:${k}`);
    await expectExactlyOnce(client, keys, 4000);
    // The streams are on every node: each node answers for the keys of its slots.
    const ranges = await client.cluster('SLOTS');
    const ports = new Set<number>();
    for (const k of keys) {
      const slot = Number(await client.cluster('KEYSLOT', k));
      ports.add(ranges.find(([from, to]) => slot >= from && slot <= to)![2]![1]);
    }
    expect(ports.size).toBe(3);
  }, 60_000);

  test('a commit that fails in one slot is retried after the restore; the other slots are not written twice', async () => {
    await commitFailsHalfway(client, cluster.url, `sink-${randomUUID()}`, true);
  }, 60_000);

  test('killed with SIGKILL and restored with --restore latest: every record exactly once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-sink-kill-'));
    dirs.push(dir);
    const prefix = `kill-${randomUUID()}`;
    const KEYS = 30;
    // NOTE: five seconds of records at 4000/s: still running when killed, on a loaded machine too.
    const COUNT = 20_000;
    const job = join(dir, 'counts.mts');
    writeFileSync(
      job,
      `import { RedisSink, job } from 'tidemark';
export default job((env) => {
  env.fromGenerator((i) => ({ k: ${JSON.stringify(prefix)} + ':out:' + (i % ${KEYS}), i, n: 1 }), { count: ${COUNT}, ratePerSecond: 4000 })
    .uid('numbers')
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, i: b.i, n: a.n + 1 }))
    .uid('counts')
    .sinkTo(RedisSink.stream('counts', {
      connection: { url: process.env.SINK_URL },
      markerPrefix: ${JSON.stringify(`${prefix}:m`)},
      maxBatchWrites: 4,
      key: (e) => e.k,
      fields: (e) => ({ i: e.i, n: e.n }),
    }));
});
`,
    );
    const keys = Array.from({ length: KEYS }, (_x, k) => `${prefix}:out:${k}`);
    const env = { ...process.env, SINK_URL: cluster.url };
    const args = [
      'run',
      job,
      '-p',
      '2',
      '--checkpoint-interval',
      '100ms',
      '--checkpoint-storage',
      join(dir, 'cp'),
    ];
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env, stdio: 'ignore' });
    // Once commits have begun, kill it at a random moment (possibly in the middle of one).
    const written = async () => {
      let n = 0;
      for (const k of keys) n += await client.xlen(k);
      return n;
    };
    const deadline = Date.now() + 60_000;
    while ((await written()) < 500) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(
          `500 records not committed; the job ${child.exitCode === null ? 'still runs' : 'ended'}`,
        );
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 400)));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const partial = await written();
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(COUNT);
    const resumed = await runCli([...args, '--restore', 'latest'], { cwd: dir, env });
    expect(resumed.stderr).toMatch(/restored from checkpoint \d+/);
    expect(resumed.code).toBe(0);
    await expectExactlyOnce(client, keys, COUNT);
  }, 180_000);
});
