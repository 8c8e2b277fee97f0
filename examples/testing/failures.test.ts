// Failures on purpose: a user function that throws at planned calls (FailureInjector), a checkpoint
// storage that fails to write or loses a commit's reply (FaultyStorage), and a job stopped at one
// parallelism and restored at another — the committed sessions must be those of a quiet run.
// Run it with the project's tests (`npm test`) or alone: npx vitest run examples/testing
import { MemoryCheckpointStorage, WatermarkStrategy } from 'tidemark';
import {
  checkExactlyOnce,
  checkJobRescaling,
  FailureInjector,
  FaultyStorage,
  InjectedFailure,
} from 'tidemark/testing';
import { expect, test } from 'vitest';
import { type Click, click, OUT_OF_ORDER_MS, sessionize } from '../sessionization.js';

const clicks: Click[] = Array.from({ length: 300 }, (_x, i) => click(i));
const watermarks = WatermarkStrategy.forBoundedOutOfOrderness<Click>(OUT_OF_ORDER_MS).withTimestampAssigner(
  (c) => c.time,
);

test('FailureInjector throws InjectedFailure at the planned calls, once each', () => {
  const injector = new FailureInjector([2]);
  injector.point();
  expect(() => injector.point('parse')).toThrow(InjectedFailure);
  injector.point();
  expect([injector.count, injector.thrown]).toEqual([3, 1]);
});

test('checkExactlyOnce: failures in a user function and in the checkpoint storage lose nothing, repeat nothing', async () => {
  const report = await checkExactlyOnce(
    (env, injector) =>
      sessionize(
        env.fromArray(clicks, { parallel: true, watermarks }).map((c) => {
          injector.point(); // a failure may strike here
          return c;
        }),
      ).sessions.collectCommitted(),
    {
      failAtCalls: [50, 220],
      storageFaults: { writeChunk: [3], commitAfter: [2] }, // FaultyStorage around each fresh storage
      storage: () => new MemoryCheckpointStorage(),
      tolerableCheckpointFailures: 0,
    },
  );
  expect(report.injectedFailures).toBeGreaterThanOrEqual(2);
  expect(report.restarts).toBeGreaterThanOrEqual(2);
});

test('FaultyStorage: the first chunk write fails, the retry is written; a lost commit reply still commits', async () => {
  const storage = new FaultyStorage(new MemoryCheckpointStorage(), { writeChunk: [1], commitAfter: [1] });
  await storage.open();
  const epoch = await storage.newEpoch('job');
  const chunk = new Uint8Array([1, 2, 3]);
  await expect(storage.writeChunk('job', 'c1', chunk)).rejects.toThrow(/injected failure writing chunk c1/);
  await storage.writeChunk('job', 'c1', chunk);
  await expect(storage.commit('job', epoch, 1, new Uint8Array(), ['c1'])).rejects.toThrow(/reply lost/);
  expect(await storage.latest('job')).toBe(1); // committed all the same: an ambiguous commit
  expect(storage.injected).toBe(2);
  await storage.close();
});

test('checkJobRescaling: stopped at parallelism 2 after two checkpoints, restored at 3', async () => {
  const { restoredFrom } = await checkJobRescaling(
    (env) => sessionize(env.fromArray(clicks, { parallel: true, watermarks })).sessions.collectCommitted(),
    { from: 2, to: 3, stopAfterCheckpoints: 2, storage: () => new MemoryCheckpointStorage() },
  );
  expect(restoredFrom).toBeGreaterThanOrEqual(2);
});
