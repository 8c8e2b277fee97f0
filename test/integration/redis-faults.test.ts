// Redis as a real component of the job: killed and restarted mid-run, a zombie job manager, a
// corrupt chunk. Each test runs a real job (real clock) against its own redis-server.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import {
  type CheckpointStats,
  RedisCheckpointStorage,
  RestartStrategies,
  type RunnerEvent,
  StreamExecutionEnvironment,
} from 'tidemark';
import { afterEach, describe, expect, test } from 'vitest';
import { waitFor, watched } from '../helpers/jobs.js';
import { type RedisTestServer, startRedis } from '../setup/redis.js';

const servers: RedisTestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop().catch(() => {});
});

/** A rate-limited, keyed counting job with an exactly-once committed output. */
function countingJob(env: StreamExecutionEnvironment, count: number, rate: number) {
  return env
    .fromGenerator((i) => `k${i % 13}`, { count, ratePerSecond: rate })
    .map((k) => ({ k, n: 1 }))
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, n: a.n + b.n }))
    .map((e) => `${e.k}=${e.n}`)
    .collectCommitted();
}

function expectedCounts(count: number): string[] {
  const out: string[] = [];
  const n = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const k = `k${i % 13}`;
    n.set(k, (n.get(k) ?? 0) + 1);
    out.push(`${k}=${n.get(k)}`);
  }
  return out.sort();
}

describe('Redis faults', () => {
  test('Redis killed and restarted mid-run: checkpoints fail meanwhile, later ones succeed, output is exactly once', async () => {
    const server = await startRedis({ persistence: true });
    servers.push(server);
    const prefix = `t-${randomUUID()}`;
    const storage = new RedisCheckpointStorage({
      url: server.url,
      keyPrefix: prefix,
      connectTimeoutMs: 500,
      commandTimeoutMs: 1000,
    });
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    env.enableCheckpointing(50, { tolerableFailures: 1000, timeoutMs: 2000 });
    env.setCheckpointStorage(storage);
    const COUNT = 3000;
    const out = countingJob(env, COUNT, 1500);
    const completed: CheckpointStats[] = [];
    const client = watched(
      env.executeAsync({
        jobId: 'killed-redis',
        onEvent: (e: RunnerEvent) => {
          if (e.type === 'checkpoint') completed.push(e.stats);
        },
      }),
    );
    await waitFor(() => completed.length >= 3, 'three checkpoints', { job: client });
    await server.kill();
    const beforeKill = completed.length;
    await new Promise((r) => setTimeout(r, 400));
    await server.restart();
    await client.result;
    // Checkpoints completed after the restart, and none during the outage.
    expect(completed.length).toBeGreaterThan(beforeKill);
    expect(out.values.sort()).toEqual(expectedCounts(COUNT));
    // The latest checkpoint in Redis is whole: it restores without falling back.
    const env2 = new StreamExecutionEnvironment({ parallelism: 2 });
    env2.setCheckpointStorage(new RedisCheckpointStorage({ url: server.url, keyPrefix: prefix }));
    countingJob(env2, 10, 1000);
    const events: RunnerEvent[] = [];
    await env2.execute({ jobId: 'killed-redis', restore: 'latest', onEvent: (e) => events.push(e) });
    expect(events.filter((e) => e.type === 'fallback')).toEqual([]);
    expect(events.find((e) => e.type === 'restored')).toMatchObject({
      checkpointId: completed[completed.length - 1]!.checkpointId,
    });
  }, 60_000);

  test('a zombie job manager (older epoch) cannot commit', async () => {
    const server = await startRedis();
    servers.push(server);
    const prefix = `t-${randomUUID()}`;
    const storage = new RedisCheckpointStorage({ url: server.url, keyPrefix: prefix });
    const env = new StreamExecutionEnvironment({ parallelism: 1 });
    env.enableCheckpointing(30, { tolerableFailures: 0 });
    env.setCheckpointStorage(storage);
    env.setRestartStrategy(RestartStrategies.none());
    countingJob(env, 100_000, 2000);
    const completed: number[] = [];
    const client = watched(
      env.executeAsync({
        jobId: 'zombie',
        onEvent: (e) => e.type === 'checkpoint' && completed.push(e.stats.checkpointId),
      }),
    );
    await waitFor(() => completed.length >= 2, 'two checkpoints', { job: client });
    // Another job manager takes over the job: a new epoch.
    const other = new RedisCheckpointStorage({ url: server.url, keyPrefix: prefix });
    await other.open();
    await other.newEpoch('zombie');
    const latestAtTakeover = await other.latest('zombie');
    const err = await client.result.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeDefined();
    expect(String(err?.message)).toMatch(/epoch \d+ is older than the current epoch \d+/);
    // Nothing the zombie did after the takeover was committed.
    expect(await other.latest('zombie')).toBe(latestAtTakeover);
    await other.close();
  }, 60_000);

  test('a corrupt chunk: a clear error, and the restore falls back to the previous retained checkpoint', async () => {
    const server = await startRedis();
    servers.push(server);
    const prefix = `t-${randomUUID()}`;
    const storage = new RedisCheckpointStorage({ url: server.url, keyPrefix: prefix });
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    env.enableCheckpointing(30, { retain: 2 });
    env.setCheckpointStorage(storage);
    countingJob(env, 100_000, 3000);
    const completed: number[] = [];
    const client = watched(
      env.executeAsync({
        jobId: 'corrupt',
        onEvent: (e) => e.type === 'checkpoint' && completed.push(e.stats.checkpointId),
      }),
    );
    await waitFor(() => completed.length >= 3, 'three checkpoints', { job: client });
    client.cancel();
    await client.result;
    // Damage one chunk of the latest checkpoint (a byte in the middle).
    const redis = new Redis(server.url);
    const latest = Number(await redis.get(`${prefix}:{corrupt}:latest`));
    const chunks = await redis.smembers(`${prefix}:{corrupt}:cp:${latest}:chunks`);
    const own = chunks.filter((c) => c.startsWith(`${latest}-`));
    expect(own.length).toBeGreaterThan(0);
    const key = `${prefix}:{corrupt}:chunk:${own[0]}`;
    const bytes = await redis.getBuffer(key);
    bytes![Math.floor(bytes!.length / 2)]! ^= 0xff;
    await redis.set(key, bytes!);
    redis.disconnect();

    const env2 = new StreamExecutionEnvironment({ parallelism: 3 });
    env2.enableCheckpointing(30, { retain: 2 });
    env2.setCheckpointStorage(new RedisCheckpointStorage({ url: server.url, keyPrefix: prefix }));
    countingJob(env2, 10, 1000);
    const events: RunnerEvent[] = [];
    const client2 = watched(
      env2.executeAsync({
        jobId: 'corrupt',
        restore: 'latest',
        onEvent: (e) => events.push(e),
      }),
    );
    await waitFor(() => events.some((e) => e.type === 'restored'), 'the restore', { job: client2 });
    client2.cancel();
    await client2.result;
    const fallback = events.find((e) => e.type === 'fallback');
    expect(fallback).toMatchObject({ checkpointId: latest });
    expect((fallback as { error: Error }).error.message).toMatch(/chunk '.*' is corrupt/);
    expect(events.find((e) => e.type === 'restored')).toMatchObject({ checkpointId: latest - 1 });
  }, 60_000);
});
