import {
  type RuntimeContext,
  StreamExecutionEnvironment,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import { checkExactlyOnce, type FailureInjector } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';
import { MemoryCheckpointStorage } from '../../state/storage/memory.js';

/** A keyed running count per key, emitted per record; failures may strike in the map. */
function countingJob(env: StreamExecutionEnvironment, injector: FailureInjector) {
  return env
    .fromGenerator((i) => ({ k: `k${i % 5}`, i }), { count: 400 })
    .map((e) => {
      injector.point('map');
      return e;
    })
    .keyBy((e) => e.k)
    .map({
      open(ctx: RuntimeContext) {
        (this as unknown as { n: ValueState<number> }).n = ctx.getState(
          new ValueStateDescriptor<number>('n'),
        );
      },
      map(e: { k: string; i: number }) {
        const s = (this as unknown as { n: ValueState<number> }).n;
        s.update((s.value() ?? 0) + 1);
        return `${e.k}#${s.value()}`;
      },
    })
    .collectCommitted();
}

describe('checkpoints and exactly-once recovery', () => {
  test('failures in a user function: restored from checkpoints, nothing lost or twice', async () => {
    const report = await checkExactlyOnce(countingJob, {
      failAtCalls: [100, 350, 600],
      storage: () => new MemoryCheckpointStorage(),
      seed: 3,
    });
    expect(report.injectedFailures).toBeGreaterThanOrEqual(2);
    expect(report.restarts).toBe(report.injectedFailures);

    expect(report.completedCheckpoints).toBeGreaterThan(0);
  });
});

/**
 * Keys 0-63 once each, then key 0 for a while (the other keys' key groups stay unchanged), then
 * keys 1-63 once more: with its state restored, each of keys 1-63 ends at a count of 2.
 */
function slowJob(env: StreamExecutionEnvironment, counts: Map<number, number>) {
  env
    .fromGenerator((i) => (i < 64 ? i : i < 1064 ? 0 : i - 1063), { count: 1127, ratePerSecond: 1000 })
    .keyBy((k) => k)
    .map({
      open(ctx: RuntimeContext) {
        (this as unknown as { n: ValueState<number> }).n = ctx.getState(
          new ValueStateDescriptor<number>('n'),
        );
      },
      map(k: number) {
        const s = (this as unknown as { n: ValueState<number> }).n;
        s.update((s.value() ?? 0) + 1);
        return [k, s.value()!] as const;
      },
    })
    .addSink(([k, n]) => {
      counts.set(k, n);
    });
}

/**
 * `storage` whose first commit waits until `release()` is called, then goes on (or, with `fail`,
 * throws); the other calls go straight through.
 */
function gateFirstCommit(storage: MemoryCheckpointStorage, fail: boolean) {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let commits = 0;
  const gated = new Proxy(storage, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      if (prop !== 'commit') return v.bind(target);
      return async (...args: unknown[]) => {
        if (++commits === 1) {
          await gate;
          if (fail) throw new Error('injected commit failure');
        }
        return (v as (...a: unknown[]) => Promise<void>).apply(target, args);
      };
    },
  });
  return { gated, release };
}

/** Runs {@link slowJob} with savepoints to `storage`; resolves once it read 200 records. */
async function startSlowJob(
  storage: MemoryCheckpointStorage,
  jobId: string,
  parallelism: number,
  tolerableFailures = 0,
) {
  const env = new StreamExecutionEnvironment({ parallelism, maxParallelism: 128 });
  env.enableCheckpointing(3_600_000, { tolerableFailures });
  env.setCheckpointStorage(storage);
  slowJob(env, new Map());
  const client = env.executeAsync({ jobId });
  while (client.metrics().sourceRecords < 200) await new Promise((r) => setTimeout(r, 10));
  return client;
}

/**
 * Two savepoints, the second triggered while the first's commit is held (its snapshots written
 * meanwhile, about 300 ms), then the first commit released. Keys 1-63 are written by the first
 * savepoint and unchanged in the second (only key 0 moves).
 */
async function savepointsAcrossFirstCommit(
  client: { triggerSavepoint(): Promise<number> },
  release: () => void,
): Promise<[Promise<number>, Promise<number>]> {
  const first = client.triggerSavepoint();
  await new Promise((r) => setTimeout(r, 100));
  const second = client.triggerSavepoint();
  await new Promise((r) => setTimeout(r, 300));
  release();
  return [first, second];
}

/** Restores `checkpointId` of `jobId` at `parallelism` and runs it to the end: keys 1-63 end at 2. */
async function expectRestoredCounts(
  storage: MemoryCheckpointStorage,
  jobId: string,
  checkpointId: number,
  parallelism: number,
): Promise<void> {
  const counts = new Map<number, number>();
  const restored = new StreamExecutionEnvironment({ parallelism, maxParallelism: 128 });
  slowJob(restored, counts);
  await restored.executeAsync({ jobId, restore: checkpointId, storage }).result;
  for (let k = 1; k < 64; k++) expect(counts.get(k), `key ${k}`).toBe(2);
}

describe('checkpoints complete in order', () => {
  test('a savepoint taken while the one before it is committing refers to what that one wrote', async () => {
    const storage = new MemoryCheckpointStorage();
    const { gated, release } = gateFirstCommit(storage, false);
    const client = await startSlowJob(gated, 'in-order', 1);
    const [first, second] = await savepointsAcrossFirstCommit(client, release);
    first.catch(() => undefined); // checked below, after the restore
    const b = await second;
    client.cancel();
    await client.result.catch(() => undefined);

    await expectRestoredCounts(storage, 'in-order', b, 2);
    // Completed one after the other, not the first given up for the second.
    expect(await first).toBeLessThan(b);
  }, 30_000);

  test('two savepoints triggered at once are both taken, in order', async () => {
    const storage = new MemoryCheckpointStorage();
    const client = await startSlowJob(storage, 'both', 2);
    // The sources get both triggers before they take the first.
    const [a, b] = await Promise.all([client.triggerSavepoint(), client.triggerSavepoint()]);
    expect(b).toBeGreaterThan(a);
    client.cancel();
    await client.result.catch(() => undefined);

    await expectRestoredCounts(storage, 'both', b, 1);
  }, 30_000);

  test('a savepoint taken after one whose commit fails fails too; the next one has everything', async () => {
    const storage = new MemoryCheckpointStorage();
    const { gated, release } = gateFirstCommit(storage, true);
    const client = await startSlowJob(gated, 'after-failed', 1, 10);
    const [first, second] = await savepointsAcrossFirstCommit(client, release);
    await expect(first).rejects.toThrow(/injected commit failure/);
    // Its snapshot left out keys 1-63 (written by the first, unchanged since): it cannot stand.
    await expect(second).rejects.toThrow(/which did not complete/);
    const third = await client.triggerSavepoint();
    client.cancel();
    await client.result.catch(() => undefined);

    await expectRestoredCounts(storage, 'after-failed', third, 2);
  }, 30_000);
});
