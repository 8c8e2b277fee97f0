/**
 * Checkpoint storage: where checkpoint data (immutable chunks) and metadata live, and the one
 * atomic, fenced step that commits a checkpoint. Implementations: memory (tests), file (the
 * embedded default, a directory) and Redis.
 *
 * The model, shared by every implementation:
 * - A job has an epoch (a fencing token). `newEpoch` starts a new one; a commit carrying an older
 *   epoch is refused ({@link FencedError}), so a job manager that lost leadership can never commit.
 *   The epoch also records that the job was started here: `currentEpoch` is 0 for a job no job
 *   manager ever started with this storage, and stays above 0 once one did (even if none of its
 *   checkpoints completed), so `--restore latest` can tell a job killed before its first
 *   checkpoint from a job id this storage has never seen.
 * - Chunks are immutable byte blobs named by the caller (unique names), written before the commit
 *   and checksummed by the storage; reading a damaged chunk raises {@link CorruptChunkError}.
 *   Chunks no committed checkpoint refers to (an abandoned checkpoint) are removed eventually.
 * - `commit` atomically records the checkpoint's metadata and the chunks it refers to, and moves
 *   the job's "latest" pointer, only if the epoch is current and the checkpoint is newer than the
 *   latest ({@link StaleCheckpointError}). An ambiguous failure (timeout, lost connection) is
 *   resolved by reading the pointer back, never by guessing.
 * - After a commit, only the newest `retain` checkpoints (at least 1) are kept; savepoints are kept
 *   until deleted. A chunk is deleted only when no kept checkpoint or savepoint refers to it
 *   (checkpoints are incremental and share chunks).
 */
import { registerErrorClass, TidemarkError } from '../errors.js';
import type { LeaseStore } from './leases.js';

/** What `list` says of a stored checkpoint. */
export interface CheckpointInfo {
  checkpointId: number;
  /** Commit time, ms since the epoch. */
  timestamp: number;
  /** Bytes of metadata plus every chunk it refers to. */
  sizeBytes: number;
  chunkCount: number;
  /** Savepoints are not subject to retention. */
  savepoint: boolean;
}

/** Options of a commit. */
export interface CommitOptions {
  /** Number of newest checkpoints to keep (default 1, minimum 1). Savepoints do not count. */
  retain?: number;
  /** Store as a savepoint (kept until deleted). */
  savepoint?: boolean;
}

/** A place to keep checkpoints. */
export interface CheckpointStorage {
  /** A printable description without secrets, e.g. `redis://127.0.0.1:6379 (prefix tm)`. */
  readonly description: string;
  /** Connects and checks access (auth, TLS, permissions); fails with a clear {@link StorageError}. */
  open(): Promise<void>;
  close(): Promise<void>;
  /** Starts a new epoch for the job and returns it; commits with older epochs are refused from now on. */
  newEpoch(jobId: string): Promise<number>;
  /** The job's current epoch: 0 if no job manager ever started the job here (see the module comment). */
  currentEpoch(jobId: string): Promise<number>;
  /** Writes an immutable chunk (bounded size: callers split large state). */
  writeChunk(jobId: string, chunkId: string, data: Uint8Array): Promise<void>;
  /** Reads a chunk back, verifying its checksum. */
  readChunk(jobId: string, chunkId: string): Promise<Uint8Array>;
  /** The atomic, fenced commit (see the module comment). */
  commit(
    jobId: string,
    epoch: number,
    checkpointId: number,
    metadata: Uint8Array,
    chunkIds: readonly string[],
    options?: CommitOptions,
  ): Promise<void>;
  /** The latest committed checkpoint id, or undefined. */
  latest(jobId: string): Promise<number | undefined>;
  /** Stored checkpoints and savepoints of a job, oldest first. */
  list(jobId: string): Promise<CheckpointInfo[]>;
  /** The metadata of a stored checkpoint ({@link CheckpointNotFoundError} if absent). */
  readMetadata(jobId: string, checkpointId: number): Promise<Uint8Array>;
  /** Deletes a checkpoint (and the chunks nothing else refers to). The latest pointer moves back if needed. */
  delete(jobId: string, checkpointId: number): Promise<void>;
  /** Jobs that have stored checkpoints. */
  listJobs(): Promise<string[]>;
  /**
   * How another thread or process opens this storage to write chunks (slots write their own
   * snapshots); undefined if it cannot (a memory storage lives in one thread).
   */
  writerSpec?(): StorageSpec | undefined;
  /**
   * The leader leases and run records of jobs kept in this storage (file and Redis), for job
   * managers that must not run beside another for one job id; undefined if it has none (memory).
   */
  leases?(): LeaseStore;
}

/** A storage as plain data, to be opened elsewhere with `openStorageSpec` (it may hold secrets). */
export type StorageSpec =
  | { kind: 'file'; dir: string; options: Record<string, unknown> }
  | { kind: 'redis'; options: Record<string, unknown> };

/** Largest chunk the storages accept (callers split state into chunks of at most this). */
export const MAX_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * A storage operation failed (connection, permission, configuration): of a checkpoint storage, or
 * of the external system a source or sink reads or writes.
 */
export class StorageError extends TidemarkError {
  constructor(message: string, options?: { cause?: unknown; checkpointId?: number; jobName?: string }) {
    super(
      'STORAGE_ERROR',
      message,
      {
        ...(options?.checkpointId === undefined ? {} : { checkpointId: options.checkpointId }),
        ...(options?.jobName === undefined ? {} : { jobName: options.jobName }),
      },
      { cause: options?.cause },
    );
    this.name = 'StorageError';
  }
}
registerErrorClass('StorageError', StorageError);

/** A commit carried an epoch older than the job's current one. */
export class FencedError extends StorageError {
  constructor(jobId: string, epoch: number, current: number) {
    super(
      `job '${jobId}': commit refused: epoch ${epoch} is older than the current epoch ${current} (another job manager took over)`,
      { jobName: jobId },
    );
    this.name = 'FencedError';
  }
}
registerErrorClass('FencedError', FencedError);

/** A commit was not newer than the latest committed checkpoint. */
export class StaleCheckpointError extends StorageError {
  constructor(jobId: string, checkpointId: number, latest: number) {
    super(
      `job '${jobId}': checkpoint ${checkpointId} is not newer than the latest committed checkpoint ${latest}`,
      {
        jobName: jobId,
        checkpointId,
      },
    );
    this.name = 'StaleCheckpointError';
  }
}
registerErrorClass('StaleCheckpointError', StaleCheckpointError);

/** A chunk's bytes do not match its checksum (or its header is damaged). */
export class CorruptChunkError extends StorageError {
  constructor(jobId: string, chunkId: string, detail: string) {
    super(`job '${jobId}': chunk '${chunkId}' is corrupt: ${detail}`, { jobName: jobId });
    this.name = 'CorruptChunkError';
  }
}
registerErrorClass('CorruptChunkError', CorruptChunkError);

/** A checkpoint (or chunk) that should be there is not. */
export class CheckpointNotFoundError extends StorageError {
  constructor(jobId: string, what: string, checkpointId?: number) {
    super(`job '${jobId}': ${what} not found`, {
      jobName: jobId,
      ...(checkpointId === undefined ? {} : { checkpointId }),
    });
    this.name = 'CheckpointNotFoundError';
  }
}
registerErrorClass('CheckpointNotFoundError', CheckpointNotFoundError);

/**
 * A commit's reply was lost (timeout, lost connection) and the storage could not find out
 * afterwards whether it happened: neither outcome may be assumed; read `latest` once the storage
 * is reachable again.
 */
export class CommitOutcomeUnknownError extends StorageError {
  constructor(jobId: string, checkpointId: number, detail: string, cause?: unknown) {
    super(`job '${jobId}': the outcome of the commit of checkpoint ${checkpointId} is unknown: ${detail}`, {
      jobName: jobId,
      checkpointId,
      cause,
    });
    this.name = 'CommitOutcomeUnknownError';
  }
}
registerErrorClass('CommitOutcomeUnknownError', CommitOutcomeUnknownError);
