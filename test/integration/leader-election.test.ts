// Leader leases of job managers (state/storage/leases.ts) in Redis and in a file storage's
// directory, and the election on top of them (runtime/distributed/leader-election.ts): one leader,
// standbys that take over when its lease runs out or is given up, a leader that loses its lease.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { afterEach, beforeEach, describe, expect, inject, test } from 'vitest';
import { electLeader, type Leadership } from '../../runtime/distributed/leader-election.js';
import { RestartStrategies, StreamExecutionEnvironment } from '../../runtime/index.js';
import { type CheckpointStorage, FencedError } from '../../state/storage/checkpoint-storage.js';
import type { LeaderRecord, LeaseStore } from '../../state/storage/leases.js';
import { LeadershipError } from '../../state/storage/leases.js';
import { RedisCheckpointStorage } from '../../state/storage/redis.js';
import { waitFor } from '../helpers/jobs.js';
import { startRedis } from '../setup/redis.js';
import { createHarness, type StorageHarness } from '../setup/storages.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `done()` holds (test/helpers/jobs.ts's waitFor, with this file's default timeout). */
function until(done: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  return waitFor(done, what, { timeoutMs, pollMs: 10 });
}

function record(leaseMs: number, extra: Partial<LeaderRecord> = {}): LeaderRecord {
  return { token: randomUUID(), pid: process.pid, host: hostname(), since: Date.now(), leaseMs, ...extra };
}

const held: Leadership[] = [];
afterEach(() => {
  for (const l of held.splice(0)) l.stop();
});

function leading(outcome: Awaited<ReturnType<typeof electLeader>>): Leadership {
  if (outcome.outcome !== 'leading') throw new Error(`expected to lead, got ${outcome.outcome}`);
  held.push(outcome.leadership);
  return outcome.leadership;
}

describe.each(['redis', 'file'] as const)('leader leases in a %s storage', (kind) => {
  let h: StorageHarness;
  let store: LeaseStore;
  let other: LeaseStore;
  let job: string;
  beforeEach(async () => {
    h = await createHarness(kind, { redisUrl: inject('redisUrl'), fsync: false });
    store = h.storage.leases!();
    other = (await h.another()).leases!();
    job = `job-${randomUUID()}`;
  });
  afterEach(async () => {
    await h.cleanup();
  });

  test('one holder at a time; renew and release compare the token; the generation grows', async () => {
    const a = record(10_000, { address: '10.0.0.1:6123' });
    const b = record(10_000);
    expect(await store.holder(job)).toBeUndefined();
    expect(await store.acquire(job, a)).toEqual({ acquired: true, generation: 1 });
    const refused = await other.acquire(job, b);
    expect(refused.acquired).toBe(false);
    if (refused.acquired) return;
    expect(refused.holder).toEqual(a);
    expect(refused.remainingMs).toBeGreaterThan(5_000);
    expect(refused.remainingMs).toBeLessThanOrEqual(10_000);
    expect(await other.holder(job)).toEqual(a);
    expect(await other.renew(job, b.token, 10_000)).toBe(false);
    expect(await store.renew(job, a.token, 10_000)).toBe(true);
    await other.release(job, b.token); // not its lease: nothing happens
    expect(await store.holder(job)).toEqual(a);
    await store.release(job, a.token);
    expect(await store.holder(job)).toBeUndefined();
    expect(await store.renew(job, a.token, 10_000)).toBe(false);
    expect(await other.acquire(job, b)).toEqual({ acquired: true, generation: 2 });
  });

  test('an expired lease is nobody’s: another takes it, the old holder cannot renew it', async () => {
    const a = record(300);
    expect((await store.acquire(job, a)).acquired).toBe(true);
    await until(async () => (await other.holder(job)) === undefined, 'the lease to expire');
    const b = record(10_000);
    expect(await other.acquire(job, b)).toEqual({ acquired: true, generation: 2 });
    expect(await store.renew(job, a.token, 300)).toBe(false);
  });

  test('only the holder writes the run record', async () => {
    const a = record(10_000);
    await store.acquire(job, a);
    expect(await store.readRun(job)).toBeUndefined();
    const run = { state: 'running' as const, startedFrom: 4, latestAtStart: 7, by: 'a', at: 1 };
    expect(await store.writeRun(job, a.token, run)).toBe(true);
    expect(await other.writeRun(job, 'not-the-holder', { state: 'ended', by: 'b', at: 2 })).toBe(false);
    expect(await other.readRun(job)).toEqual(run);
    await store.release(job, a.token);
    expect(await store.writeRun(job, a.token, { state: 'ended', by: 'a', at: 3 })).toBe(false);
    expect(await other.readRun(job)).toEqual(run);
  });

  test('a second job manager is refused, naming the job and the leader', async () => {
    leading(
      await electLeader({ store, jobId: job, address: '10.1.2.3:6123', leaseMs: 10_000, standby: false }),
    );
    const second = electLeader({ store: other, jobId: job, leaseMs: 10_000, standby: false });
    await expect(second).rejects.toThrow(LeadershipError);
    await expect(second).rejects.toThrow(
      new RegExp(
        `^job '${job}' already has a job manager: pid ${process.pid} on host .*, listening on 10\\.1\\.2\\.3:6123, leading since .* Stop it first, or start this one with --standby`,
      ),
    );
  });

  test('a standby takes over once the leader stops renewing, not before its lease ran out', async () => {
    const leader = leading(await electLeader({ store, jobId: job, leaseMs: 1000, standby: false }));
    await leader.writeRun({ state: 'running', latestAtStart: 3 });
    const lines: string[] = [];
    let tookOverAt = 0;
    const standby = electLeader({
      store: other,
      jobId: job,
      leaseMs: 1000,
      standby: true,
      log: (l) => lines.push(l),
    }).then((o) => {
      tookOverAt = Date.now();
      return o;
    });
    await until(() => lines.some((l) => l.includes('waiting as its standby')), 'the standby to wait');
    // The leader keeps its lease well past its duration while it renews.
    await sleep(2500);
    expect(tookOverAt).toBe(0);
    const stoppedAt = Date.now();
    leader.stop(); // as if killed: no release
    const next = leading(await standby);
    expect(tookOverAt - stoppedAt).toBeGreaterThanOrEqual(300);
    expect(tookOverAt - stoppedAt).toBeLessThan(5000);
    expect(next.generation).toBe(2);
    // It knows the run was under way (to resume it).
    expect(next.previousRun).toMatchObject({ state: 'running', latestAtStart: 3 });
  });

  test('a leader that resigns hands over at once; a standby whose run ended exits', async () => {
    const leader = leading(await electLeader({ store, jobId: job, leaseMs: 60_000, standby: false }));
    const standby = electLeader({ store: other, jobId: job, leaseMs: 60_000, standby: true });
    await sleep(300);
    const resignedAt = Date.now();
    await leader.resign();
    const next = leading(await standby);
    expect(Date.now() - resignedAt).toBeLessThan(5000);
    // The new leader ends the run; a standby that waited on it learns so and leads nothing.
    const third = electLeader({ store, jobId: job, leaseMs: 60_000, standby: true });
    await sleep(300);
    await next.end('FINISHED');
    expect(await third).toMatchObject({ outcome: 'ended', run: { state: 'ended', status: 'FINISHED' } });
    // A job manager started afresh afterwards leads (a new run of the job).
    leading(await electLeader({ store: other, jobId: job, leaseMs: 60_000, standby: false }));
  });

  test('a leader whose lease another took loses it, says why, and can write nothing more', async () => {
    const leader = leading(await electLeader({ store, jobId: job, leaseMs: 600, standby: false }));
    const reasons: string[] = [];
    leader.onLost((r) => reasons.push(r));
    // Its holder record is released behind its back and taken by another.
    const taken = record(60_000);
    const current = (await other.holder(job))!;
    await other.release(job, current.token);
    expect((await other.acquire(job, taken)).acquired).toBe(true);
    await until(() => reasons.length > 0, 'the leader to notice');
    expect(reasons[0]).toMatch(new RegExp(`another job manager took the lease of job '${job}'`));
    await expect(leader.writeRun({ state: 'ended', status: 'FINISHED' })).rejects.toThrow(LeadershipError);
    expect(await other.holder(job)).toEqual(taken);
  });

  test('a leader that outlasts outages keeps a lease whose renewal reached the store after it ran out, unless another took it', async () => {
    // The renewals wait (as behind a slow store, or the process's own file I/O) past the lease:
    // sent in time, they find it run out.
    let delayMs = 0;
    const slow: LeaseStore = {
      ...store,
      renew: async (...args) => {
        if (delayMs > 0) await sleep(delayMs);
        return store.renew(...args);
      },
    };
    const lines: string[] = [];
    const leader = leading(
      await electLeader({
        store: slow,
        jobId: job,
        leaseMs: 600,
        standby: false,
        outlastOutages: true,
        log: (l) => lines.push(l),
      }),
    );
    const mine = (await other.holder(job))!;
    delayMs = 900;
    await until(
      () => lines.some((l) => l.includes('ran out before its renewal reached')),
      'the lease taken back',
    );
    expect(leader.lost).toBeUndefined();
    expect((await other.holder(job))?.token).toBe(mine.token);
    await leader.writeRun({ state: 'running' });
    // Another job manager takes the lease while a renewal waits: that one is lost.
    const reasons: string[] = [];
    leader.onLost((r) => reasons.push(r));
    delayMs = 1500;
    await sleep(100);
    await until(async () => (await other.acquire(job, record(60_000))).acquired, 'another to take the lease');
    await until(() => reasons.length > 0, 'the leader to notice');
    expect(reasons[0]).toMatch(new RegExp(`another job manager took the lease of job '${job}'`));
    await expect(leader.writeRun({ state: 'ended', status: 'FINISHED' })).rejects.toThrow(LeadershipError);
  });

  test('a lease left by a process of this host that is gone is released at once', async () => {
    const child = spawn(process.execPath, ['-e', '0']);
    const pid = child.pid!;
    await new Promise((r) => child.once('exit', r));
    expect((await store.acquire(job, record(60_000, { pid }))).acquired).toBe(true);
    const lines: string[] = [];
    leading(
      await electLeader({
        store: other,
        jobId: job,
        leaseMs: 60_000,
        standby: false,
        log: (l) => lines.push(l),
      }),
    );
    expect(lines.join('\n')).toContain(`held by pid ${pid}, which is gone: releasing it`);
  });
});

describe('a leader cut off from Redis', () => {
  test('loses its lease when it cannot renew it before it runs out', async () => {
    const server = await startRedis();
    const storage = new RedisCheckpointStorage({
      url: server.url,
      connectTimeoutMs: 300,
      commandTimeoutMs: 300,
    });
    try {
      await storage.open();
      const job = `job-${randomUUID()}`;
      const lines: string[] = [];
      const leader = leading(
        await electLeader({
          store: storage.leases(),
          jobId: job,
          leaseMs: 1500,
          standby: false,
          log: (l) => lines.push(l),
        }),
      );
      let lostAt = 0;
      let reason = '';
      leader.onLost((r) => {
        lostAt = Date.now();
        reason = r;
      });
      await sleep(1000);
      expect(lostAt).toBe(0);
      const killedAt = Date.now();
      await server.kill();
      await until(() => lostAt > 0, 'the lease to be lost');
      // Within the lease of the last renewal (renewed every 500 ms): between 1 and 1.5 s and a bit.
      expect(lostAt - killedAt).toBeGreaterThanOrEqual(900);
      expect(lostAt - killedAt).toBeLessThan(4000);
      expect(reason).toMatch(
        new RegExp(`^the lease of job '${job}' in redis://.* was not renewed within its 1500 ms`),
      );
    } finally {
      await storage.close();
      await server.stop();
    }
  });

  test('a standby that is told to stop waiting rejects with the reason', async () => {
    const h = await createHarness('redis', { redisUrl: inject('redisUrl') });
    try {
      const job = `job-${randomUUID()}`;
      leading(await electLeader({ store: h.storage.leases!(), jobId: job, leaseMs: 60_000, standby: false }));
      const ac = new AbortController();
      const standby = electLeader({
        store: h.storage.leases!(),
        jobId: job,
        leaseMs: 60_000,
        standby: true,
        signal: ac.signal,
      });
      await sleep(200);
      ac.abort(new Error('interrupted'));
      await expect(standby).rejects.toThrow('interrupted');
    } finally {
      await h.cleanup();
    }
  });
});

describe('fencing', () => {
  test('a run whose commit is fenced (another run of the job started a new epoch) stops without restarting', async () => {
    const h = await createHarness('file', { fsync: false });
    try {
      // NOTE: each run its own instance of the storage (as two job managers have): a run closes
      // its storage when it ends, which must not close the other's.
      const start = (restore: boolean, storage: CheckpointStorage) => {
        const env = new StreamExecutionEnvironment({ parallelism: 1, jobName: 'fenced' });
        env.enableCheckpointing(50);
        env.setCheckpointStorage(storage);
        env.setRestartStrategy(RestartStrategies.fixedDelay(5, 0));
        env
          .fromGenerator((i) => ({ k: i % 7, n: 1 }), { ratePerSecond: 2000 })
          .keyBy((e) => e.k)
          .reduce((a, b) => ({ k: a.k, n: a.n + b.n }))
          .addSink(() => {});
        return env.executeAsync({ jobId: 'fenced', ...(restore ? { restore: 'latest' as const } : {}) });
      };
      const first = start(false, h.storage);
      const outcome = first.result.then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      await until(
        async () => ((await h.storage.latest('fenced')) ?? 0) >= 2,
        'two checkpoints of the first run',
      );
      const second = start(true, await h.another());
      const error = await outcome;
      expect(error).toBeInstanceOf(Error);
      let cause: unknown = error;
      while (cause instanceof Error && !(cause instanceof FencedError)) cause = cause.cause;
      expect(cause).toBeInstanceOf(FencedError);
      expect((cause as Error).message).toMatch(
        /job 'fenced': commit refused: epoch 1 is older than the current epoch 2/,
      );
      expect(first.restarts()).toBe(0);
      second.cancel();
      await second.result;
    } finally {
      await h.cleanup();
    }
  });
});
