// Riding out a checkpoint storage that cannot be reached for a while (see also
// test/e2e/storage-outage.test.ts, a minute without Redis): a checkpoint that cannot be written
// fails that checkpoint, reported once with its id, and counts against `tolerableFailures`; a
// restart whose read of the latest checkpoint fails tries again under the restart strategy.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  buildJob,
  type CheckpointInfo,
  MemoryCheckpointStorage,
  RedisCheckpointStorage,
  RestartStrategies,
  type RunnerEvent,
  StorageError,
  StreamExecutionEnvironment,
} from 'tidemark';
import { FaultyStorage } from 'tidemark/testing';
import { afterAll, describe, expect, test } from 'vitest';
import { loadJob } from '../../runtime/cli/load-job.js';
import { ROOT } from '../helpers/cli.js';
import { type RedisTestServer, startRedis } from '../setup/redis.js';

const COUNT = 3000;

/**
 * A storage that goes away on demand: its reads (the latest checkpoint and the list) fail while
 * `readFailures` > 0 (each read counts one), its chunk writes while `writesDown`.
 */
class UnreachableStorage extends FaultyStorage {
  readFailures = 0;
  constructor() {
    super(new MemoryCheckpointStorage(), {});
  }
  private unreachable(op: string, jobId: string): StorageError | undefined {
    if (this.readFailures <= 0) return undefined;
    this.readFailures--;
    return new StorageError(`${op} of job '${jobId}' failed: not connected (an injected outage)`, {
      jobName: jobId,
    });
  }
  /** Chunk writes fail while this is true. */
  writesDown = false;
  override async writeChunk(jobId: string, chunkId: string, data: Uint8Array): Promise<void> {
    if (this.writesDown)
      throw new StorageError(`writeChunk of job '${jobId}' failed: not connected (an injected outage)`, {
        jobName: jobId,
      });
    return super.writeChunk(jobId, chunkId, data);
  }
  override async list(jobId: string): Promise<CheckpointInfo[]> {
    const e = this.unreachable('list', jobId);
    if (e !== undefined) throw e;
    return super.list(jobId);
  }
  override async latest(jobId: string): Promise<number | undefined> {
    const e = this.unreachable('latest', jobId);
    if (e !== undefined) throw e;
    return super.latest(jobId);
  }
}

/** A keyed running count (keyed state: chunks at every checkpoint), rate-limited so that checkpoints complete during the run. */
function job(env: StreamExecutionEnvironment, failOnce: () => boolean) {
  return env
    .fromGenerator((i) => ({ k: `k${i % 7}`, n: 1 }), { count: COUNT, ratePerSecond: 10_000 })
    .map((e) => {
      if (failOnce()) throw new Error('a task failed');
      return e;
    })
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, n: a.n + b.n }))
    .map((e) => `${e.k}:${e.n}`)
    .collectCommitted();
}

/** Each key's running counts 1..n, once each. */
const all = Array.from({ length: COUNT }, (_x, i) => `k${i % 7}:${Math.floor(i / 7) + 1}`).sort();

describe('a checkpoint storage outage', () => {
  test('reading the latest checkpoint after a failure is tried again with the restart delays, one event each', async () => {
    const storage = new UnreachableStorage();
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    env.enableCheckpointing(10);
    env.setCheckpointStorage(storage);
    env.setRestartStrategy(RestartStrategies.fixedDelay(10, 5));
    let completed = 0;
    let failed = false;
    const out = job(env, () => {
      if (failed || completed < 2) return false;
      failed = true;
      // The storage goes away as the task fails: each restart reads it twice (to say where it
      // resumes, then to load), so three restarts find it away.
      storage.readFailures = 6;
      return true;
    });
    const events: RunnerEvent[] = [];
    const result = await env.execute({
      jobId: 'reads',
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'checkpoint') completed++;
      },
    });
    expect(result.status).toBe('FINISHED');
    const restarts = events.flatMap((e) => (e.type === 'restart' ? [e] : []));
    expect(restarts.map((r) => [r.attempt, r.delayMs])).toEqual([
      [1, 5],
      [2, 5],
      [3, 5],
      [4, 5],
    ]);
    expect(restarts[0]!.error.message).toMatch(/a task failed/);
    for (const [i, r] of restarts.slice(1).entries())
      expect(r.error.message).toMatch(
        new RegExp(
          `^restart attempt ${i + 1} of job 'reads' could not read its latest checkpoint: (list|latest) of job 'reads' failed: not connected \\(an injected outage\\)$`,
        ),
      );
    // Then it read it, restored and ran to the end, exactly once.
    const restored = events.filter((e) => e.type === 'restored');
    expect(restored.length).toBe(1);
    expect(events.indexOf(restored[0]!)).toBeGreaterThan(events.indexOf(restarts[3]!));
    expect([...out.values].sort()).toEqual(all);
  });

  test('the restart strategy gives up: the job fails, naming the read that failed', async () => {
    const storage = new UnreachableStorage();
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    env.enableCheckpointing(10);
    env.setCheckpointStorage(storage);
    env.setRestartStrategy(RestartStrategies.fixedDelay(2, 1));
    let completed = 0;
    job(env, () => {
      if (completed < 2 || storage.readFailures < 0) return false;
      storage.readFailures = 100;
      return true;
    });
    const err = await env
      .execute({ jobId: 'gives-up', onEvent: (e) => e.type === 'checkpoint' && completed++ })
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(err?.message).toMatch(
      /^restart attempt 2 of job 'gives-up' could not read its latest checkpoint: .*not connected \(an injected outage\) \(after 2 restart\(s\); not restarting: the fixed-delay restart strategy allows 2 restart\(s\)\)$/,
    );
  });

  test('a checkpoint that cannot be written fails: one event per failed checkpoint, counted against tolerableFailures', async () => {
    // The storage goes away after two checkpoints completed, and comes back after `outage` failed.
    const run = async (tolerableFailures: number, outage: number) => {
      const storage = new UnreachableStorage();
      const env = new StreamExecutionEnvironment({ parallelism: 2 });
      env.enableCheckpointing(5, { tolerableFailures });
      env.setCheckpointStorage(storage);
      env.setRestartStrategy(RestartStrategies.fixedDelay(1, 0));
      const out = job(env, () => false);
      const events: RunnerEvent[] = [];
      let completed = 0;
      let failed = 0;
      const client = env.executeAsync({
        jobId: 'writes',
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'checkpoint' && ++completed === 2) storage.writesDown = true;
          if (e.type === 'checkpoint-failed' && ++failed === outage) storage.writesDown = false;
        },
      });
      const result = await client.result;
      return { result, events, values: out.values, restarts: client.restarts() };
    };

    const tolerant = await run(1000, 4);
    expect(
      tolerant.restarts,
      JSON.stringify(tolerant.events.map((e) => (e.type === 'restart' ? e.error.message : e.type))),
    ).toBe(0);
    const failures = tolerant.events.flatMap((e) => (e.type === 'checkpoint-failed' ? [e] : []));
    expect(failures.length).toBe(4);
    // Once per failed checkpoint, naming it and the job; counted in a row; then others complete.
    const ids = failures.map((f) => f.checkpointId);
    expect(new Set(ids).size).toBe(ids.length);
    const completed = tolerant.events.flatMap((e) => (e.type === 'checkpoint' ? [e.stats.checkpointId] : []));
    for (const f of failures) {
      expect(completed).not.toContain(f.checkpointId);
      expect(f).toMatchObject({ jobId: 'writes', tolerableFailures: 1000 });
      expect(f.reason).toMatch(
        new RegExp(
          `^checkpoint ${f.checkpointId}: writing the snapshot of .* failed: writeChunk of job 'writes' failed: not connected \\(an injected outage\\)$`,
        ),
      );
    }
    expect(failures.map((f) => f.consecutiveFailures)).toEqual([1, 2, 3, 4]);
    expect(completed.filter((id) => id > ids[3]!).length).toBeGreaterThan(0);
    expect([...tolerant.values].sort()).toEqual(all);

    // Two tolerated: the third failure in a row fails the job, which restarts.
    const intolerant = await run(2, 3);
    const failed = intolerant.events.flatMap((e) => (e.type === 'checkpoint-failed' ? [e] : []));
    expect(failed.map((f) => f.consecutiveFailures)).toEqual([1, 2, 3]);
    const restart = intolerant.events.find((e) => e.type === 'restart');
    expect(intolerant.restarts).toBe(1);
    expect(intolerant.events.indexOf(restart!)).toBeGreaterThan(intolerant.events.indexOf(failed[2]!));
    expect((restart as { error: Error }).error.message).toMatch(
      /3 consecutive checkpoint failure\(s\), more than the 2 tolerated/,
    );
    expect([...intolerant.values].sort()).toEqual(all);
  });
});

describe('slots and an unreachable storage', () => {
  // NOTE: inside the package, so that `import ... from 'tidemark'` resolves in the workers.
  const dir = mkdtempSync(join(ROOT, 'test', '.tmp-outage-'));
  const servers: RedisTestServer[] = [];
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    for (const s of servers) await s.stop().catch(() => {});
  });

  test('slots that could not open the storage when they started open it again for later checkpoints', async () => {
    const server = await startRedis({ password: 'first-password' });
    servers.push(server);
    const file = join(dir, 'reopen.mts');
    writeFileSync(
      file,
      `import { job } from 'tidemark';
export default job((env) => {
  env.fromGenerator((i) => ({ k: 'k' + (i % 7), n: 1 }), { count: 8000, ratePerSecond: 4000 })
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, n: a.n + b.n }))
    .map((e) => e.k + ':' + e.n)
    .collectCommitted();
});
`,
    );
    const loaded = await loadJob(file);
    const overrides = { jobName: loaded.name, parallelism: 2 };
    const env = await buildJob(loaded.definition, overrides);
    env.enableCheckpointing(50, { tolerableFailures: 1000 });
    const url = server.url.replace('redis://', 'redis://:first-password@');
    env.setCheckpointStorage(new RedisCheckpointStorage({ url, keyPrefix: 'reopen' }));
    const admin = new Redis(server.port, { password: 'first-password' });
    const events: RunnerEvent[] = [];
    const client = env.executeAsync({
      jobId: 'reopen',
      distributed: { slots: 2, jobPath: loaded.path, overrides },
      onEvent: (e) => events.push(e),
    });
    // The job manager has opened the storage (and keeps its connection): from now on, new
    // connections (the slots') are refused until the password is set back.
    const until = async (cond: () => boolean | Promise<boolean>, what: string) => {
      const end = Date.now() + 30_000;
      while (!(await cond())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await until(async () => (await admin.exists('reopen:{reopen}:epoch')) === 1, 'the epoch');
    await admin.config('SET', 'requirepass', 'another-password');
    await until(() => events.some((e) => e.type === 'checkpoint-failed'), 'a failed checkpoint');
    const firstFailure = events.find((e) => e.type === 'checkpoint-failed');
    await admin.config('SET', 'requirepass', 'first-password');
    const result = await client.result;
    admin.disconnect();
    expect(result.status).toBe('FINISHED');
    expect((firstFailure as { reason: string }).reason).toMatch(
      /authentication failed|WRONGPASS|NOAUTH|open/i,
    );
    // Checkpoints completed after the slots could open the storage again.
    const completed = events.flatMap((e) =>
      e.type === 'checkpoint' && !e.stats.final ? [e.stats.checkpointId] : [],
    );
    expect(completed.some((id) => id > (firstFailure as { checkpointId: number }).checkpointId)).toBe(true);
    expect(client.restarts()).toBe(0);
    const values = [...(result.results.values().next().value ?? [])] as string[];
    expect(values.sort()).toEqual(
      Array.from({ length: 8000 }, (_x, i) => `k${i % 7}:${Math.floor(i / 7) + 1}`).sort(),
    );
  }, 60_000);
});
