/**
 * {@link MemoryCheckpointStorage}: checkpoint storage in this process's memory, for tests. Two
 * instances created with the same `name` share their data, like two processes on one storage.
 */
import {
  type CheckpointInfo,
  CheckpointNotFoundError,
  type CheckpointStorage,
  type CommitOptions,
  StorageError,
} from './checkpoint-storage.js';
import { CHUNK_HEADER_BYTES, decodeChunk, encodeChunk } from './chunk-format.js';
import {
  checkChunkData,
  checkChunkId,
  checkCount,
  checkEpochAndLatest,
  checkJobId,
  checkpointsToDrop,
  copyBytes,
  immutableChunkError,
  missingChunkError,
  normalizeRetain,
  sameBytes,
  uniqueChunkIds,
} from './common.js';

/** Options of {@link MemoryCheckpointStorage}. */
export interface MemoryCheckpointStorageOptions {
  /** Instances with the same name share one store (default: a private store). */
  name?: string;
  /** An unreferenced chunk older than this is removed after a commit (default 10 minutes). */
  abandonedChunkGraceMs?: number;
  /** The clock used for commit times and the grace period (default `Date.now`). */
  clock?: () => number;
}

interface StoredChunk {
  bytes: Uint8Array;
  writtenAt: number;
}

interface StoredCheckpoint {
  metadata: Uint8Array;
  chunkIds: Set<string>;
  info: CheckpointInfo;
}

interface JobData {
  epoch: number;
  checkpoints: Map<number, StoredCheckpoint>;
  chunks: Map<string, StoredChunk>;
}

type Store = Map<string, JobData>;

const registry = new Map<string, Store>();

/** Checkpoint storage in memory (tests); see the contract in `checkpoint-storage.ts`. */
export class MemoryCheckpointStorage implements CheckpointStorage {
  readonly description: string;
  private readonly store: Store;
  private readonly graceMs: number;
  private readonly clock: () => number;
  private opened = false;

  constructor(options: MemoryCheckpointStorageOptions = {}) {
    const { name } = options;
    if (name === undefined) this.store = new Map();
    else {
      let store = registry.get(name);
      if (store === undefined) registry.set(name, (store = new Map()));
      this.store = store;
    }
    this.description = name === undefined ? 'memory (private)' : `memory://${name}`;
    this.graceMs = options.abandonedChunkGraceMs ?? 10 * 60_000;
    this.clock = options.clock ?? Date.now;
  }

  /** Forgets the shared store of that name (the data of instances still using it stays theirs). */
  static drop(name: string): void {
    registry.delete(name);
  }

  /**
   * The stored bytes (header included) of a chunk, by reference, or undefined: for tests that
   * damage stored data on purpose.
   */
  storedChunkBytes(jobId: string, chunkId: string): Uint8Array | undefined {
    return this.store.get(jobId)?.chunks.get(chunkId)?.bytes;
  }

  async open(): Promise<void> {
    this.opened = true;
  }

  async close(): Promise<void> {
    this.opened = false;
  }

  async newEpoch(jobId: string): Promise<number> {
    const job = this.job(jobId, true);
    job.epoch += 1;
    return job.epoch;
  }

  async currentEpoch(jobId: string): Promise<number> {
    return this.job(jobId, false)?.epoch ?? 0;
  }

  async writeChunk(jobId: string, chunkId: string, data: Uint8Array): Promise<void> {
    const job = this.job(jobId, true);
    checkChunkId(jobId, chunkId);
    checkChunkData(jobId, chunkId, data);
    const bytes = new Uint8Array(encodeChunk(data));
    const existing = job.chunks.get(chunkId);
    if (existing !== undefined && isReferenced(job, chunkId)) {
      // NOTE: a committed chunk is immutable: writing the same bytes again (a retry) is fine,
      // different bytes would silently change a committed checkpoint.
      if (sameBytes(existing.bytes, bytes)) return;
      throw immutableChunkError(jobId, chunkId);
    }
    job.chunks.set(chunkId, { bytes, writtenAt: this.clock() });
  }

  async readChunk(jobId: string, chunkId: string): Promise<Uint8Array> {
    const job = this.job(jobId, false);
    checkChunkId(jobId, chunkId);
    const chunk = job?.chunks.get(chunkId);
    if (chunk === undefined) throw new CheckpointNotFoundError(jobId, `chunk '${chunkId}'`);
    return copyBytes(decodeChunk(jobId, chunkId, chunk.bytes));
  }

  async commit(
    jobId: string,
    epoch: number,
    checkpointId: number,
    metadata: Uint8Array,
    chunkIds: readonly string[],
    options: CommitOptions = {},
  ): Promise<void> {
    const job = this.job(jobId, true);
    checkCount(jobId, 'epoch', epoch);
    checkCount(jobId, 'checkpoint id', checkpointId);
    if (!(metadata instanceof Uint8Array))
      throw new StorageError(`job '${jobId}': metadata must be a Uint8Array`, { jobName: jobId });
    const retain = normalizeRetain(jobId, options.retain);
    const unique = uniqueChunkIds(jobId, chunkIds);
    checkEpochAndLatest(jobId, epoch, job.epoch, checkpointId, latestOf(job));
    let sizeBytes = metadata.byteLength;
    for (const chunkId of unique) {
      const chunk = job.chunks.get(chunkId);
      if (chunk === undefined) throw missingChunkError(jobId, chunkId, checkpointId);
      sizeBytes += chunk.bytes.byteLength - CHUNK_HEADER_BYTES;
    }
    job.checkpoints.set(checkpointId, {
      metadata: copyBytes(metadata),
      chunkIds: new Set(unique),
      info: {
        checkpointId,
        timestamp: this.clock(),
        sizeBytes,
        chunkCount: unique.length,
        savepoint: options.savepoint === true,
      },
    });
    const drop = checkpointsToDrop(
      [...job.checkpoints.values()].map((c) => c.info),
      retain,
    );
    for (const id of drop) removeCheckpoint(job, id);
    this.sweep(job);
  }

  async latest(jobId: string): Promise<number | undefined> {
    const job = this.job(jobId, false);
    return job === undefined ? undefined : latestOf(job);
  }

  async list(jobId: string): Promise<CheckpointInfo[]> {
    const job = this.job(jobId, false);
    if (job === undefined) return [];
    return [...job.checkpoints.values()]
      .map((c) => ({ ...c.info }))
      .sort((a, b) => a.checkpointId - b.checkpointId);
  }

  async readMetadata(jobId: string, checkpointId: number): Promise<Uint8Array> {
    const job = this.job(jobId, false);
    checkCount(jobId, 'checkpoint id', checkpointId);
    const cp = job?.checkpoints.get(checkpointId);
    if (cp === undefined)
      throw new CheckpointNotFoundError(jobId, `checkpoint ${checkpointId}`, checkpointId);
    return copyBytes(cp.metadata);
  }

  async delete(jobId: string, checkpointId: number): Promise<void> {
    const job = this.job(jobId, false);
    checkCount(jobId, 'checkpoint id', checkpointId);
    if (job === undefined || !job.checkpoints.has(checkpointId))
      throw new CheckpointNotFoundError(jobId, `checkpoint ${checkpointId}`, checkpointId);
    removeCheckpoint(job, checkpointId);
  }

  async listJobs(): Promise<string[]> {
    this.checkOpen();
    return [...this.store.entries()]
      .filter(([, job]) => job.checkpoints.size > 0)
      .map(([id]) => id)
      .sort();
  }

  private checkOpen(): void {
    if (!this.opened) throw new StorageError(`${this.description}: storage is not open (call open() first)`);
  }

  private job(jobId: string, create: true): JobData;
  private job(jobId: string, create: false): JobData | undefined;
  private job(jobId: string, create: boolean): JobData | undefined {
    this.checkOpen();
    checkJobId(jobId);
    let job = this.store.get(jobId);
    if (job === undefined && create)
      this.store.set(jobId, (job = { epoch: 0, checkpoints: new Map(), chunks: new Map() }));
    return job;
  }

  private sweep(job: JobData): void {
    const now = this.clock();
    for (const [chunkId, chunk] of job.chunks)
      if (now - chunk.writtenAt >= this.graceMs && !isReferenced(job, chunkId)) job.chunks.delete(chunkId);
  }
}

function latestOf(job: JobData): number | undefined {
  let latest: number | undefined;
  for (const id of job.checkpoints.keys()) if (latest === undefined || id > latest) latest = id;
  return latest;
}

function isReferenced(job: JobData, chunkId: string): boolean {
  for (const cp of job.checkpoints.values()) if (cp.chunkIds.has(chunkId)) return true;
  return false;
}

function removeCheckpoint(job: JobData, checkpointId: number): void {
  const cp = job.checkpoints.get(checkpointId);
  if (cp === undefined) return;
  job.checkpoints.delete(checkpointId);
  for (const chunkId of cp.chunkIds) if (!isReferenced(job, chunkId)) job.chunks.delete(chunkId);
}
