// The checkpoint storage contract (state/storage/checkpoint-storage.ts), run against memory, file
// and Redis alike.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, inject, test } from 'vitest';
import {
  CheckpointNotFoundError,
  CorruptChunkError,
  FencedError,
  MAX_CHUNK_BYTES,
  StaleCheckpointError,
  StorageError,
} from '../../state/storage/checkpoint-storage.js';
import { createHarness, STORAGE_KINDS, type StorageHarness } from '../setup/storages.js';

const bytes = (...values: number[]) => new Uint8Array(values);
const text = (s: string) => new TextEncoder().encode(s);

describe.each(STORAGE_KINDS)('%s checkpoint storage', (kind) => {
  let h: StorageHarness;
  let job: string;

  beforeEach(async () => {
    h = await createHarness(kind, { redisUrl: inject('redisUrl') });
    job = `job-${randomUUID()}`;
  });
  afterEach(async () => {
    await h.cleanup();
  });

  test('chunks are read back exactly; a missing chunk is CheckpointNotFoundError', async () => {
    const s = h.storage;
    const big = new Uint8Array(1024 * 1024).map((_, i) => (i * 7919) % 256);
    await s.writeChunk(job, 'empty', new Uint8Array(0));
    await s.writeChunk(job, 'small', bytes(1, 2, 3));
    await s.writeChunk(job, 'big', big);
    expect(await s.readChunk(job, 'empty')).toEqual(new Uint8Array(0));
    expect(await s.readChunk(job, 'small')).toEqual(bytes(1, 2, 3));
    // NOTE: compared as one Buffer: vitest's deep equality takes seconds on a megabyte.
    expect(Buffer.from(await s.readChunk(job, 'big')).equals(Buffer.from(big))).toBe(true);
    await expect(s.readChunk(job, 'nope')).rejects.toThrow(CheckpointNotFoundError);
    await expect(s.readChunk(job, 'nope')).rejects.toThrow(/chunk 'nope'/);
    // A chunk no commit refers to yet may be written again (an abandoned attempt retried).
    await s.writeChunk(job, 'small', bytes(9));
    expect(await s.readChunk(job, 'small')).toEqual(bytes(9));
  });

  test('a chunk above the size limit is refused', async () => {
    await expect(h.storage.writeChunk(job, 'huge', new Uint8Array(MAX_CHUNK_BYTES + 1))).rejects.toThrow(
      /more than the limit/,
    );
  });

  test('commit records metadata and chunks and moves latest; list and readMetadata see it', async () => {
    const s = h.storage;
    expect(await s.latest(job)).toBeUndefined();
    expect(await s.list(job)).toEqual([]);
    const epoch = await s.newEpoch(job);
    expect(epoch).toBeGreaterThanOrEqual(1);
    expect(await s.newEpoch(job)).toBe(epoch + 1);
    await s.writeChunk(job, 'a', bytes(1, 2, 3));
    await s.writeChunk(job, 'b', bytes(4, 5));
    const before = Date.now();
    await s.commit(job, epoch + 1, 7, text('meta-7'), ['a', 'b', 'a']);
    expect(await s.latest(job)).toBe(7);
    const [info, ...rest] = await s.list(job);
    expect(rest).toEqual([]);
    expect(info).toMatchObject({ checkpointId: 7, sizeBytes: 6 + 3 + 2, chunkCount: 2, savepoint: false });
    expect(info?.timestamp).toBeGreaterThanOrEqual(before - 1000);
    expect(info?.timestamp).toBeLessThanOrEqual(Date.now() + 1000);
    expect(await s.readMetadata(job, 7)).toEqual(text('meta-7'));
    await expect(s.readMetadata(job, 6)).rejects.toThrow(CheckpointNotFoundError);
    expect(await s.listJobs()).toContain(job);
  });

  test('retention keeps the newest K checkpoints and deletes only chunks nothing kept refers to', async () => {
    const s = h.storage;
    const epoch = await s.newEpoch(job);
    await s.writeChunk(job, 'shared', bytes(0));
    for (let id = 1; id <= 4; id++) {
      await s.writeChunk(job, `own-${id}`, bytes(id));
      await s.commit(job, epoch, id, text(`m${id}`), ['shared', `own-${id}`], { retain: 2 });
    }
    expect((await s.list(job)).map((c) => c.checkpointId)).toEqual([3, 4]);
    expect(await h.chunkState(job, 'own-1')).toBe('absent');
    expect(await h.chunkState(job, 'own-2')).toBe('absent');
    expect(await s.readChunk(job, 'shared')).toEqual(bytes(0));
    expect(await s.readChunk(job, 'own-3')).toEqual(bytes(3));
    expect(await s.readChunk(job, 'own-4')).toEqual(bytes(4));
    await expect(s.readMetadata(job, 2)).rejects.toThrow(CheckpointNotFoundError);
    // The default is to keep one.
    await s.writeChunk(job, 'own-5', bytes(5));
    await s.commit(job, epoch, 5, text('m5'), ['own-5']);
    expect((await s.list(job)).map((c) => c.checkpointId)).toEqual([5]);
    expect(await h.chunkState(job, 'shared')).toBe('absent');
    expect(await h.chunkState(job, 'own-4')).toBe('absent');
  });

  test('savepoints are not subject to retention, count for latest and are removed by delete', async () => {
    const s = h.storage;
    const epoch = await s.newEpoch(job);
    await s.writeChunk(job, 'x', bytes(1));
    await s.writeChunk(job, 'sp', bytes(2));
    await s.commit(job, epoch, 1, text('m1'), ['x']);
    await s.commit(job, epoch, 2, text('sp2'), ['x', 'sp'], { savepoint: true });
    expect(await s.latest(job)).toBe(2);
    for (let id = 3; id <= 5; id++) await s.commit(job, epoch, id, text(`m${id}`), []);
    expect((await s.list(job)).map((c) => [c.checkpointId, c.savepoint])).toEqual([
      [2, true],
      [5, false],
    ]);
    expect(await s.readChunk(job, 'x')).toEqual(bytes(1));
    await s.delete(job, 2);
    expect(await h.chunkState(job, 'x')).toBe('absent');
    expect(await h.chunkState(job, 'sp')).toBe('absent');
    expect((await s.list(job)).map((c) => c.checkpointId)).toEqual([5]);
  });

  test('delete moves latest back, and a job without checkpoints is not listed', async () => {
    const s = h.storage;
    const epoch = await s.newEpoch(job);
    await s.writeChunk(job, 'c', bytes(1));
    await s.commit(job, epoch, 1, text('m1'), ['c'], { retain: 3 });
    await s.commit(job, epoch, 2, text('m2'), ['c'], { retain: 3 });
    await s.delete(job, 2);
    expect(await s.latest(job)).toBe(1);
    expect(await s.readChunk(job, 'c')).toEqual(bytes(1));
    await expect(s.delete(job, 2)).rejects.toThrow(CheckpointNotFoundError);
    await s.delete(job, 1);
    expect(await s.latest(job)).toBeUndefined();
    expect(await h.chunkState(job, 'c')).toBe('absent');
    expect(await s.listJobs()).not.toContain(job);
    await expect(s.delete('never-seen', 1)).rejects.toThrow(CheckpointNotFoundError);
  });

  test('fencing: after newEpoch, a commit with an older epoch is refused and changes nothing', async () => {
    const s = h.storage;
    const old = await s.newEpoch(job);
    await s.writeChunk(job, 'c1', bytes(1));
    await s.commit(job, old, 1, text('m1'), ['c1']);
    const other = await h.another();
    const current = await other.newEpoch(job);
    expect(current).toBe(old + 1);
    await s.writeChunk(job, 'c2', bytes(2));
    const refused = s.commit(job, old, 2, text('m2'), ['c2']);
    await expect(refused).rejects.toThrow(FencedError);
    await expect(s.commit(job, old, 2, text('m2'), ['c2'])).rejects.toThrow(
      new RegExp(`epoch ${old} is older than the current epoch ${current}`),
    );
    expect(await other.latest(job)).toBe(1);
    expect(await other.readMetadata(job, 1)).toEqual(text('m1'));
    await other.commit(job, current, 2, text('m2 by the new leader'), ['c2']);
    expect(await s.latest(job)).toBe(2);
    expect(await s.readMetadata(job, 2)).toEqual(text('m2 by the new leader'));
  });

  test('currentEpoch: 0 for a job never started here; once started (no checkpoint needed) the epoch, seen by every instance and kept by deletes', async () => {
    const s = h.storage;
    expect(await s.currentEpoch(job)).toBe(0);
    // Reading the job, or writing a chunk of it, does not start it.
    expect(await s.latest(job)).toBeUndefined();
    await s.writeChunk(job, 'c', bytes(1));
    expect(await s.currentEpoch(job)).toBe(0);
    // A job manager started it, and died before any checkpoint completed.
    const epoch = await s.newEpoch(job);
    expect(epoch).toBeGreaterThan(0);
    expect(await s.currentEpoch(job)).toBe(epoch);
    expect(await s.latest(job)).toBeUndefined();
    const other = await h.another();
    expect(await other.currentEpoch(job)).toBe(epoch);
    expect(await other.currentEpoch(`${job}-never-seen`)).toBe(0);
    const next = await other.newEpoch(job);
    expect(await s.currentEpoch(job)).toBe(next);
    // Deleting its only checkpoint leaves the job known.
    await s.commit(job, next, 1, text('m1'), ['c']);
    await s.delete(job, 1);
    expect(await s.latest(job)).toBeUndefined();
    expect(await s.currentEpoch(job)).toBe(next);
    await expect(s.currentEpoch('')).rejects.toThrow(StorageError);
  });

  test('an epoch that was never issued is refused (not taken for fencing)', async () => {
    const epoch = await h.storage.newEpoch(job);
    const e = await h.storage.commit(job, epoch + 5, 1, text('m'), []).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StorageError);
    expect(e).not.toBeInstanceOf(FencedError);
    expect(String(e)).toMatch(/never issued/);
    expect(await h.storage.latest(job)).toBeUndefined();
  });

  test('stale commits (not newer than latest) are refused', async () => {
    const s = h.storage;
    const epoch = await s.newEpoch(job);
    await s.commit(job, epoch, 5, text('m5'), []);
    await expect(s.commit(job, epoch, 5, text('again'), [])).rejects.toThrow(StaleCheckpointError);
    await expect(s.commit(job, epoch, 3, text('older'), [])).rejects.toThrow(
      /checkpoint 3 is not newer than the latest committed checkpoint 5/,
    );
    expect(await s.readMetadata(job, 5)).toEqual(text('m5'));
    expect((await s.list(job)).map((c) => c.checkpointId)).toEqual([5]);
  });

  test('a commit referring to a chunk that is not stored is refused and changes nothing', async () => {
    const s = h.storage;
    const epoch = await s.newEpoch(job);
    await s.writeChunk(job, 'here', bytes(1));
    await expect(s.commit(job, epoch, 1, text('m'), ['here', 'gone'])).rejects.toThrow(
      CheckpointNotFoundError,
    );
    await expect(s.commit(job, epoch, 1, text('m'), ['here', 'gone'])).rejects.toThrow(/chunk 'gone'/);
    expect(await s.latest(job)).toBeUndefined();
    expect(await s.list(job)).toEqual([]);
  });

  test('a damaged chunk is detected on read (payload and header)', async () => {
    const s = h.storage;
    await s.writeChunk(job, 'p', text('some payload'));
    await s.writeChunk(job, 'h', text('other payload'));
    await h.damageChunk(job, 'p', 16 + 3);
    await h.damageChunk(job, 'h', 0);
    const e = await s.readChunk(job, 'p').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CorruptChunkError);
    expect(String(e)).toMatch(new RegExp(`job '${job}': chunk 'p' is corrupt: CRC-32 mismatch`));
    await expect(s.readChunk(job, 'h')).rejects.toThrow(/chunk 'h' is corrupt: bad magic/);
  });

  test('a chunk of a committed checkpoint is immutable; writing the same bytes again is fine', async () => {
    const s = h.storage;
    const epoch = await s.newEpoch(job);
    await s.writeChunk(job, 'c', bytes(1, 2));
    await s.commit(job, epoch, 1, text('m'), ['c']);
    await s.writeChunk(job, 'c', bytes(1, 2));
    await expect(s.writeChunk(job, 'c', bytes(3))).rejects.toThrow(/immutable/);
    expect(await s.readChunk(job, 'c')).toEqual(bytes(1, 2));
  });

  test('two instances on the same storage see the same data', async () => {
    const other = await h.another();
    const epoch = await h.storage.newEpoch(job);
    await h.storage.writeChunk(job, 'c', bytes(7));
    await other.commit(job, epoch, 1, text('m'), ['c']);
    expect(await h.storage.latest(job)).toBe(1);
    expect(await other.readChunk(job, 'c')).toEqual(bytes(7));
    expect(await other.listJobs()).toContain(job);
  });

  test('job and chunk ids with unusual characters round-trip', async () => {
    const s = h.storage;
    const odd = `odd/job {x} ${randomUUID()} .. ü %41 }`;
    const epoch = await s.newEpoch(odd);
    await s.writeChunk(odd, '../chunk {1}', bytes(1));
    await s.commit(odd, epoch, 1, text('m'), ['../chunk {1}']);
    expect(await s.readChunk(odd, '../chunk {1}')).toEqual(bytes(1));
    expect(await s.listJobs()).toContain(odd);
    await expect(s.newEpoch('')).rejects.toThrow(StorageError);
  });

  test('a storage that is not open refuses to work', async () => {
    const other = await h.another();
    await other.close();
    await expect(other.latest(job)).rejects.toThrow(/not open/);
  });
});

describe.each(['memory', 'file'] as const)('%s storage: abandoned chunks', (kind) => {
  test('are swept after a commit once older than the grace period, referenced ones are kept', async () => {
    const h = await createHarness(kind, { graceMs: 0 });
    try {
      const job = `job-${randomUUID()}`;
      const epoch = await h.storage.newEpoch(job);
      await h.storage.writeChunk(job, 'abandoned', bytes(1));
      await h.storage.writeChunk(job, 'used', bytes(2));
      await h.storage.commit(job, epoch, 1, text('m'), ['used']);
      expect(await h.chunkState(job, 'abandoned')).toBe('absent');
      expect(await h.chunkState(job, 'used')).toBe('stored');
    } finally {
      await h.cleanup();
    }
  });

  test('are kept within the grace period', async () => {
    const h = await createHarness(kind, { graceMs: 60_000 });
    try {
      const job = `job-${randomUUID()}`;
      const epoch = await h.storage.newEpoch(job);
      await h.storage.writeChunk(job, 'in-flight', bytes(1));
      await h.storage.commit(job, epoch, 1, text('m'), []);
      expect(await h.chunkState(job, 'in-flight')).toBe('stored');
    } finally {
      await h.cleanup();
    }
  });
});
