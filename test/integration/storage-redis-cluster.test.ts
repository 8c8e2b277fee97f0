// Redis checkpoint storage on a real local Redis Cluster (3 masters, no replicas).

import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FencedError, StaleCheckpointError } from '../../state/storage/checkpoint-storage.js';
import { openCheckpointStorage } from '../../state/storage/open-storage.js';
import type { RedisCheckpointStorage } from '../../state/storage/redis.js';
import { type RedisTestCluster, startRedisCluster } from '../setup/redis.js';

const text = (s: string) => new TextEncoder().encode(s);

function redisCliAvailable(): boolean {
  try {
    execFileSync('redis-cli', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!redisCliAvailable())('Redis storage on a Redis Cluster', () => {
  let cluster: RedisTestCluster;
  let storage: RedisCheckpointStorage;
  let admin: Cluster;
  const prefix = `test-${randomUUID()}`;

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    storage = openCheckpointStorage(`${cluster.url}&prefix=${prefix}`) as RedisCheckpointStorage;
    await storage.open();
    admin = new Cluster(cluster.nodes);
  }, 60_000);
  afterAll(async () => {
    await storage?.close();
    admin?.disconnect();
    await cluster?.stop();
  });

  test('the description names the cluster', () => {
    expect(storage.description).toMatch(
      /^redis:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+ \(cluster, prefix /,
    );
  });

  test('jobs spread over the nodes commit, retain, fence and list', async () => {
    const jobs = Array.from({ length: 12 }, (_, i) => `job-${i}`);
    for (const job of jobs) {
      expect(await storage.currentEpoch(job)).toBe(0);
      const epoch = await storage.newEpoch(job);
      // Started: known to the storage before any checkpoint completed.
      expect(await storage.currentEpoch(job)).toBe(epoch);
      expect(await storage.latest(job)).toBeUndefined();
      for (let id = 1; id <= 3; id++) {
        await storage.writeChunk(job, `c${id}`, new Uint8Array([id]));
        await storage.commit(job, epoch, id, text(`${job}/${id}`), ['c1', `c${id}`], { retain: 2 });
      }
      expect((await storage.list(job)).map((c) => c.checkpointId)).toEqual([2, 3]);
      expect(await storage.readMetadata(job, 3)).toEqual(text(`${job}/3`));
      expect(await storage.readChunk(job, 'c1')).toEqual(new Uint8Array([1]));
      await expect(storage.commit(job, epoch, 3, text('x'), [])).rejects.toThrow(StaleCheckpointError);
      await storage.newEpoch(job);
      await expect(storage.commit(job, epoch, 4, text('x'), [])).rejects.toThrow(FencedError);
    }
    expect((await storage.listJobs()).sort()).toEqual([...jobs].sort());
    // The jobs really are on different masters, each job on one slot.
    const slotsOfJobs = new Set<number>();
    for (const job of jobs) {
      const slots = new Set<number>();
      for (const suffix of ['epoch', 'latest', 'checkpoints', 'refs', 'cp:3:meta', 'chunk:c1'])
        slots.add(Number(await admin.call('CLUSTER', 'KEYSLOT', `${prefix}:{${job}}:${suffix}`)));
      expect(slots.size).toBe(1);
      slotsOfJobs.add([...slots][0] ?? -1);
    }
    const ranges = (await admin.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
    const masters = new Set(
      [...slotsOfJobs].map((slot) => ranges.find(([from, to]) => slot >= from && slot <= to)?.[2][1]),
    );
    expect(masters.has(undefined)).toBe(false);
    expect(masters.size).toBeGreaterThan(1);
  });
});
