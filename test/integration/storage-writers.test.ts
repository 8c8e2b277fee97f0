// Slots write their own snapshots: the file and Redis checkpoint storages take chunk writers in
// several threads and processes at once (against a real redis-server), the job manager commits
// what they wrote, and every chunk reads back intact. And a job on two slots checkpoints without
// the job manager writing a single chunk, and restores from what the slots wrote.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { buildJob, RedisCheckpointStorage, RestartStrategies, type RunnerEvent } from 'tidemark';
import { afterAll, describe, expect, inject, test } from 'vitest';
import type { WrittenSnapshot } from '../../runtime/checkpoint/snapshot-writer.js';
import { loadJob } from '../../runtime/cli/load-job.js';
import { keyGroupFor } from '../../state/key-groups.js';
import { decode, decodeMetadata } from '../../state/snapshot/format.js';
import type { CheckpointStorage, StorageSpec } from '../../state/storage/checkpoint-storage.js';
import { openStorageSpec } from '../../state/storage/open-storage.js';
import { groupBytes } from '../setup/snapshot-writer-task.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const WORKER = fileURLToPath(new URL('../setup/snapshot-writer-worker.mjs', import.meta.url));

type Args = { spec: StorageSpec; jobId: string; name: string; subtask: number; operators: string[] };

function inThread(args: Args): Promise<WrittenSnapshot[]> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER, { workerData: args });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

function inProcess(args: Args): Promise<WrittenSnapshot[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as WrittenSnapshot[])
        : reject(new Error(`writer exited ${code}: ${err}`)),
    );
  });
}

const specs: [string, () => StorageSpec][] = [
  [
    'file',
    () => {
      const d = mkdtempSync(join(tmpdir(), 'tidemark-writers-'));
      dirs.push(d);
      return { kind: 'file', dir: d, options: {} };
    },
  ],
  ['redis', () => ({ kind: 'redis', options: { url: inject('redisUrl'), keyPrefix: `w-${randomUUID()}` } })],
];

describe.each(specs)('%s storage: concurrent chunk writers', (_kind, makeSpec) => {
  test('two threads and two processes write at once; one commit refers to all; every chunk reads back', async () => {
    const spec = makeSpec();
    const storage: CheckpointStorage = openStorageSpec(spec);
    await storage.open();
    try {
      const jobId = 'writers';
      const epoch = await storage.newEpoch(jobId);
      const operators = ['counts', 'windows'];
      const args = (subtask: number): Args => ({ spec, jobId, name: `w${subtask}`, subtask, operators });
      const written = (
        await Promise.all([inThread(args(0)), inThread(args(1)), inProcess(args(2)), inProcess(args(3))])
      ).flat();
      expect(written.length).toBe(8);
      const chunks = written.flatMap((w) => w.chunks.map(([name]) => name));
      expect(new Set(chunks).size).toBe(chunks.length);
      await storage.commit(jobId, epoch, 1, new TextEncoder().encode('meta'), chunks, { retain: 1 });
      expect(await storage.latest(jobId)).toBe(1);
      for (const w of written) {
        for (const [g, names] of w.groups) {
          const parts: Uint8Array[] = [];
          for (const name of names)
            for (const [kg, , piece] of decode<[number, number, Uint8Array][]>(
              await storage.readChunk(jobId, name),
            ))
              if (kg === g) parts.push(piece);
          const bytes = Buffer.concat(parts);
          expect(new Uint8Array(bytes)).toEqual(groupBytes(`w${w.subtaskIndex}/${w.operatorId}`, g));
        }
      }
    } finally {
      await storage.close();
    }
  }, 60_000);
});

/** Counts the chunks written in this thread (the job manager's). */
class CountingRedisStorage extends RedisCheckpointStorage {
  chunksWrittenHere = 0;
  override async writeChunk(jobId: string, chunkId: string, data: Uint8Array): Promise<void> {
    this.chunksWrittenHere++;
    return super.writeChunk(jobId, chunkId, data);
  }
}

describe('a job on two slots', () => {
  test('checkpoints with every chunk written by the slots, none by the job manager, and restores from them', async () => {
    const file = fileURLToPath(new URL('../../examples/wordcount.ts', import.meta.url));
    const loaded = await loadJob(file);
    const keyPrefix = `slots-${randomUUID()}`;
    const run = async (restore: boolean) => {
      const storage = new CountingRedisStorage({ url: inject('redisUrl'), keyPrefix });
      const overrides = { jobName: loaded.name, parallelism: 2 };
      const env = await buildJob(loaded.definition, overrides);
      env.enableCheckpointing(10);
      env.setCheckpointStorage(storage);
      env.setRestartStrategy(RestartStrategies.none());
      const events: RunnerEvent[] = [];
      const result = await env.execute({
        jobId: 'wordcount-slots',
        onEvent: (e) => events.push(e),
        distributed: { slots: 2, jobPath: loaded.path, overrides },
        ...(restore ? { restore: 'latest' } : {}),
      });
      return { result, storage, events };
    };
    const first = await run(false);
    const completed = first.events.filter((e) => e.type === 'checkpoint');
    expect(completed.length).toBeGreaterThan(0);
    expect(completed.some((e) => e.type === 'checkpoint' && e.stats.bytesWritten > 1000)).toBe(true);
    expect(first.storage.chunksWrittenHere).toBe(0);
    // The final checkpoint holds every word's count: each key group of the five words, also when a
    // checkpoint that wrote some of them was abandoned (the job finished first) and they did not
    // change after it.
    const reader = new RedisCheckpointStorage({ url: inject('redisUrl'), keyPrefix });
    await reader.open();
    const finalId = (await reader.latest('wordcount-slots'))!;
    const metadata = decodeMetadata(await reader.readMetadata('wordcount-slots', finalId), {
      jobId: 'wordcount-slots',
      checkpointId: finalId,
    });
    await reader.close();
    const keyed = metadata.operators.find((o) => o.keyed)!;
    const words = ['hello', 'world', 'python', 'is', 'fun'];
    expect(keyed.keyGroups.map((g) => g.keyGroup).sort((a, b) => a - b)).toEqual(
      [...new Set(words.map((w) => keyGroupFor(w, keyed.maxParallelism)))].sort((a, b) => a - b),
    );
    // The final checkpoint restores: the job reads nothing more and ends at once.
    const again = await run(true);
    expect(again.events.find((e) => e.type === 'restored')).toBeDefined();
    expect(again.result.metrics.sourceRecords).toBe(0);
  }, 60_000);
});
