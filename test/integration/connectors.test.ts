import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  FileSink,
  FileSource,
  MemoryCheckpointStorage,
  RedisSink,
  type RedisStreamEntry,
  RedisStreamSource,
  RestartStrategies,
  StreamExecutionEnvironment,
} from 'tidemark';
import { checkExactlyOnce, FailureInjector, ManualClock } from 'tidemark/testing';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { SimulationPolicy } from '../../runtime/testing/simulation.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tidemark-conn-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs `build` under a seeded simulation with checkpoints and restarts; returns restarts. */
async function runWithFailures(
  build: (env: StreamExecutionEnvironment, injector: FailureInjector) => void,
  failAt: number[],
  seed = 1,
) {
  const env = new StreamExecutionEnvironment({ parallelism: 2, bufferCapacity: 4 });
  env.enableCheckpointing(20);
  env.setCheckpointStorage(new MemoryCheckpointStorage());
  env.setRestartStrategy(RestartStrategies.fixedDelay(100, 0));
  const injector = new FailureInjector(failAt);
  build(env, injector);
  const clock = new ManualClock(0);
  const client = env.executeAsync({
    clock,
    policy: new SimulationPolicy({ seed, clockTickProbability: 0.2, maxClockTickMs: 10 }, clock),
    timeSliceMs: 1e9,
  });
  await client.result;
  return { restarts: client.restarts(), injected: injector.thrown };
}

describe('file source', () => {
  test('reads lines and JSON lines of files and directories, with a last line without newline', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.txt'), 'one\ntwo\r\n\nthree');
    writeFileSync(join(dir, 'b.txt'), 'four\n');
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const lines = env.fromSource(FileSource.lines(dir)).collect();
    const json = join(tempDir(), 'x.jsonl');
    writeFileSync(json, '{"a":1}\n{"a":2}\n');
    const objs = env.fromSource(FileSource.jsonLines<{ a: number }>(json)).collect();
    await env.execute();
    expect(lines.values.sort()).toEqual(['four', 'one', 'three', 'two']);
    expect(objs.values).toEqual([{ a: 1 }, { a: 2 }]);
  });

  test('a broken JSON line fails the job naming the file and offset', async () => {
    const f = join(tempDir(), 'bad.jsonl');
    writeFileSync(f, '{"a":1}\n{oops\n');
    const env = new StreamExecutionEnvironment();
    env.fromSource(FileSource.jsonLines(f)).addSink(() => {});
    await expect(env.execute()).rejects.toThrow(/bad\.jsonl at byte 8: not a JSON line/);
  });

  test('exactly once through failures: positions are byte offsets in the checkpoint', async () => {
    const dir = tempDir();
    for (let f = 0; f < 3; f++)
      writeFileSync(
        join(dir, `part-${f}.txt`),
        `${Array.from({ length: 150 }, (_x, i) => `f${f}-line${i}`).join('\n')}\n`,
      );
    const report = await checkExactlyOnce(
      (env, injector) =>
        env
          .fromSource(FileSource.lines(dir))
          .map((l) => {
            injector.point();
            return l;
          })
          .collectCommitted(),
      { failAtCalls: [60, 200, 390], storage: () => new MemoryCheckpointStorage(), seed: 5 },
    );
    expect(report.injectedFailures).toBeGreaterThanOrEqual(2);
  });
});

describe('file sink (two-phase commit)', () => {
  test('every record in exactly one visible part file, through failures; no hidden parts left', async () => {
    const dir = tempDir();
    const r = await runWithFailures(
      (env, injector) => {
        env
          .fromGenerator((i) => ({ i }), { count: 500 })
          .map((e) => {
            injector.point();
            return e;
          })
          .sinkTo(FileSink.jsonLines(dir));
      },
      [120, 300, 650],
      7,
    );
    expect(r.injected).toBeGreaterThanOrEqual(2);
    const files = readdirSync(dir);
    expect(files.filter((f) => f.startsWith('.'))).toEqual([]);
    const seen = files.flatMap((f) =>
      readFileSync(join(dir, f), 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { i: number }).i),
    );
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_x, i) => i));
  });
});

describe('Redis connectors', () => {
  let redis: Redis;
  const prefix = `test-${randomUUID()}`;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'));
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  test('stream source (bounded): entries of several streams with their ids as event time', async () => {
    const keys = [`${prefix}:in-a`, `${prefix}:in-b`];
    for (let i = 0; i < 30; i++) await redis.xadd(keys[i % 2]!, `${1000 + i}-0`, 'n', String(i));
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const out = env
      .fromSource(
        new RedisStreamSource<RedisStreamEntry>({
          connection: { url: inject('redisUrl') },
          streams: keys,
          bounded: true,
        }),
      )
      .process<string>({ processElement: (e, ctx, o) => o.collect(`${e.fields.n}@${ctx.timestamp()}`) })
      .collect();
    await env.execute();
    expect(out.values.sort()).toEqual(Array.from({ length: 30 }, (_x, i) => `${i}@${1000 + i}`).sort());
  });

  test('stream source exactly once through failures (position = last entry id)', async () => {
    const key = `${prefix}:in-eo`;
    for (let i = 0; i < 300; i++) await redis.xadd(key, '*', 'n', String(i));
    await checkExactlyOnce(
      (env, injector) =>
        env
          .fromSource(
            new RedisStreamSource({
              connection: { url: inject('redisUrl') },
              streams: [key],
              bounded: true,
              batchSize: 16,
              parse: (e) => Number(e.fields.n),
            }),
          )
          .map((n) => {
            injector.point();
            return n;
          })
          .collectCommitted(),
      // One stream, one split: at parallelism 2 the second source subtask would finish at once,
      // and no checkpoint would be taken.
      { failAtCalls: [50, 170], storage: () => new MemoryCheckpointStorage(), seed: 2, parallelism: 1 },
    );
  });

  test('sink: stream and hash writes committed exactly once through failures, and a repeated commit writes nothing', async () => {
    const out = `${prefix}:out`;
    const hash = `${prefix}:latest`;
    const r = await runWithFailures(
      (env, injector) => {
        const s = env
          .fromGenerator((i) => ({ i, k: `k${i % 7}` }), { count: 400 })
          .map((e) => {
            injector.point();
            return e;
          });
        s.sinkTo(
          RedisSink.stream('eo-stream', {
            connection: { url: inject('redisUrl') },
            markerPrefix: `${prefix}:m`,
            key: () => out,
            fields: (e) => ({ i: e.i }),
          }),
        );
        s.keyBy((e) => e.k)
          .reduce((a, b) => ({ i: Math.max(a.i, b.i), k: a.k }))
          .sinkTo(
            RedisSink.hash('eo-hash', {
              connection: { url: inject('redisUrl') },
              markerPrefix: `${prefix}:m`,
              key: () => hash,
              field: (e) => e.k,
              value: (e) => e.i,
            }),
          );
      },
      [90, 260, 500],
      11,
    );
    expect(r.injected).toBeGreaterThanOrEqual(2);
    const entries = (await redis.xrange(out, '-', '+')) as [string, string[]][];
    expect(entries.map(([, f]) => Number(f[1])).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 400 }, (_x, i) => i),
    );
    const latest = await redis.hgetall(hash);
    expect(latest).toEqual(
      Object.fromEntries(Array.from({ length: 7 }, (_x, k) => [`k${k}`, String(399 - ((399 - k) % 7))])),
    );
  });
});
