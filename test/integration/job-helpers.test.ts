// The test helpers for jobs a test starts (test/helpers/jobs.ts): a wait fails at once, with the
// job's error, when the job ends first; a job still running when its test ends is cancelled.
import { StreamExecutionEnvironment } from 'tidemark';
import { expect, test } from 'vitest';
import type { JobClient } from '../../runtime/environment.js';
import { waitFor, watched } from '../helpers/jobs.js';

test('a wait for a condition fails at once with the error of a job that failed first', async () => {
  const env = new StreamExecutionEnvironment();
  env
    .fromElements(1, 2, 3)
    .map((x) => {
      if (x === 2) throw new Error('two');
      return x;
    })
    .print();
  const job = watched(env.executeAsync());
  const started = Date.now();
  await expect(waitFor(() => false, 'something that never happens', { job })).rejects.toThrow(
    /^the job ended while waiting for something that never happens: .*user function threw on record 2: two/,
  );
  expect(Date.now() - started).toBeLessThan(30_000);
});

test('a wait without a job fails after its timeout, saying what it waited for', async () => {
  await expect(waitFor(() => false, 'nothing', { timeoutMs: 50 })).rejects.toThrow(
    'timed out after 50 ms waiting for nothing',
  );
});

let leftRunning: JobClient | undefined;

test('a job left running by its test ...', async () => {
  const env = new StreamExecutionEnvironment();
  env.fromGenerator((i) => i).addSink(() => {});
  leftRunning = watched(env.executeAsync());
  await waitFor(() => leftRunning!.metrics().sourceRecords > 0, 'a record', { job: leftRunning });
});

test('... is cancelled when that test ends', async () => {
  expect(leftRunning).toBeDefined();
  expect((await leftRunning!.result).status).toBe('CANCELLED');
});
