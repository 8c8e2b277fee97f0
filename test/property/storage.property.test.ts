// Checkpoint storages against a model, over random sequences of incremental checkpoints that share
// chunks: commits with random retention, savepoints, abandoned checkpoints, deletes, new epochs and
// fenced commits. After every step, every chunk a kept checkpoint refers to reads back exactly,
// and no chunk nothing refers to remains (Redis: it is left to expire; memory and file: swept
// after the next commit, the grace period being 0 here).
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { FencedError } from '../../state/storage/checkpoint-storage.js';
import { createHarness, STORAGE_KINDS, type StorageHarness } from '../setup/storages.js';

type Step =
  | { kind: 'checkpoint'; fresh: number; reuse: number; savepoint: boolean; retain: number; commit: boolean }
  | { kind: 'delete'; pick: number }
  | { kind: 'newEpoch' }
  | { kind: 'fencedCommit' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('checkpoint' as const),
      fresh: fc.integer({ min: 0, max: 3 }),
      reuse: fc.integer({ min: 0, max: 255 }),
      savepoint: fc.boolean(),
      retain: fc.integer({ min: 1, max: 3 }),
      commit: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'newEpoch' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'fencedCommit' as const }) },
);

interface ModelCheckpoint {
  id: number;
  savepoint: boolean;
  chunks: string[];
  meta: string;
}

const chunkBytes = (chunkId: string) => new TextEncoder().encode(`bytes of ${chunkId}`);

async function runSequence(h: StorageHarness, steps: Step[]): Promise<void> {
  const s = h.storage;
  const job = `prop-${randomUUID()}`;
  let epoch = await s.newEpoch(job);
  let nextId = 1;
  let nextChunk = 0;
  let commits = 0;
  let stored: ModelCheckpoint[] = [];
  /** Every chunk written: the number of commits before it was written, and whether a commit ever referred to it. */
  const written = new Map<string, { commitsBefore: number; everCommitted: boolean }>();

  for (const step of steps) {
    if (step.kind === 'checkpoint') {
      const latest = stored.reduce<ModelCheckpoint | undefined>(
        (a, c) => (a === undefined || c.id > a.id ? c : a),
        undefined,
      );
      const reused = (latest?.chunks ?? []).filter((_, i) => (step.reuse >> i) & 1);
      const fresh = Array.from({ length: step.fresh }, () => `c${nextChunk++}`);
      for (const chunkId of fresh) {
        await s.writeChunk(job, chunkId, chunkBytes(chunkId));
        written.set(chunkId, { commitsBefore: commits, everCommitted: false });
      }
      const id = nextId++;
      if (!step.commit) continue; // abandoned
      const chunks = [...reused, ...fresh];
      const meta = `meta ${id} of ${job}`;
      await s.commit(job, epoch, id, new TextEncoder().encode(meta), chunks, {
        retain: step.retain,
        savepoint: step.savepoint,
      });
      commits++;
      for (const chunkId of chunks) {
        const w = written.get(chunkId);
        if (w !== undefined) w.everCommitted = true;
      }
      stored.push({ id, savepoint: step.savepoint, chunks, meta });
      const keep = new Set(
        stored
          .filter((c) => !c.savepoint)
          .map((c) => c.id)
          .sort((a, b) => b - a)
          .slice(0, step.retain),
      );
      stored = stored.filter((c) => c.savepoint || keep.has(c.id));
    } else if (step.kind === 'delete') {
      if (stored.length === 0) continue;
      const victim = stored[step.pick % stored.length];
      if (victim === undefined) continue;
      await s.delete(job, victim.id);
      stored = stored.filter((c) => c !== victim);
    } else if (step.kind === 'newEpoch') {
      const next = await s.newEpoch(job);
      expect(next).toBe(epoch + 1);
      epoch = next;
    } else if (epoch > 1) {
      await expect(s.commit(job, epoch - 1, nextId++, new Uint8Array(0), [])).rejects.toThrow(FencedError);
    }

    // The invariants, after every step.
    const ids = stored.map((c) => c.id).sort((a, b) => a - b);
    expect(await s.latest(job)).toBe(ids.length === 0 ? undefined : ids[ids.length - 1]);
    expect((await s.list(job)).map((c) => [c.checkpointId, c.savepoint, c.chunkCount])).toEqual(
      [...stored].sort((a, b) => a.id - b.id).map((c) => [c.id, c.savepoint, new Set(c.chunks).size]),
    );
    const referenced = new Set(stored.flatMap((c) => c.chunks));
    for (const c of stored) expect(new TextDecoder().decode(await s.readMetadata(job, c.id))).toBe(c.meta);
    for (const chunkId of referenced) {
      expect(await s.readChunk(job, chunkId)).toEqual(chunkBytes(chunkId));
      expect(await h.chunkState(job, chunkId)).toBe('stored');
    }
    for (const [chunkId, w] of written) {
      if (referenced.has(chunkId)) continue;
      const state = await h.chunkState(job, chunkId);
      if (w.everCommitted) expect(state, `${chunkId} of a removed checkpoint`).toBe('absent');
      else if (h.kind === 'redis') expect(state, `abandoned ${chunkId}`).not.toBe('stored');
      else if (commits > w.commitsBefore) expect(state, `abandoned ${chunkId}`).toBe('absent');
    }
  }
}

const RUNS: Record<string, number> = { memory: 100, file: 40, redis: 40 };

describe.each(STORAGE_KINDS)('%s storage against the model', (kind) => {
  let h: StorageHarness;
  beforeAll(async () => {
    h = await createHarness(kind, { graceMs: 0, fsync: false, redisUrl: inject('redisUrl') });
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  test('retention, sharing, deletes and fencing keep exactly the referenced chunks', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 14 }), (steps) => runSequence(h, steps)),
      { numRuns: RUNS[kind] ?? 20 },
    );
  });
});
