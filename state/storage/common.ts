/**
 * Argument checks and retention rules shared by the checkpoint storages, so that memory, file and
 * Redis accept the same names and keep the same checkpoints.
 */
import {
  CheckpointNotFoundError,
  FencedError,
  MAX_CHUNK_BYTES,
  StaleCheckpointError,
  StorageError,
} from './checkpoint-storage.js';

/** Longest job or chunk id, in UTF-16 code units. */
export const MAX_ID_LENGTH = 200;

function checkName(kind: string, value: unknown, jobId: string | undefined): asserts value is string {
  const where = jobId === undefined ? '' : `job '${jobId}': `;
  if (typeof value !== 'string' || value.length === 0)
    throw new StorageError(
      `${where}${kind} must be a non-empty string`,
      jobId === undefined ? {} : { jobName: jobId },
    );
  if (value.length > MAX_ID_LENGTH)
    throw new StorageError(
      `${where}${kind} '${value.slice(0, 40)}...' is longer than ${MAX_ID_LENGTH} characters`,
    );
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused here
  if (/[\u0000-\u001f\u007f]/.test(value))
    throw new StorageError(`${where}${kind} ${JSON.stringify(value)} contains control characters`);
}

/** Throws a {@link StorageError} unless `jobId` is a usable job id. */
export function checkJobId(jobId: string): void {
  checkName('job id', jobId, undefined);
}

/** Throws a {@link StorageError} unless `chunkId` is a usable chunk id. */
export function checkChunkId(jobId: string, chunkId: string): void {
  checkName('chunk id', chunkId, jobId);
}

/** Throws a {@link StorageError} unless `value` is a non-negative safe integer. */
export function checkCount(jobId: string, what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new StorageError(`job '${jobId}': ${what} must be a non-negative integer, got ${value}`, {
      jobName: jobId,
    });
}

/** Throws a {@link StorageError} unless the chunk's size is within {@link MAX_CHUNK_BYTES}. */
export function checkChunkData(jobId: string, chunkId: string, data: Uint8Array): void {
  if (!(data instanceof Uint8Array))
    throw new StorageError(`job '${jobId}': chunk '${chunkId}' must be a Uint8Array`, { jobName: jobId });
  if (data.byteLength > MAX_CHUNK_BYTES)
    throw new StorageError(
      `job '${jobId}': chunk '${chunkId}' has ${data.byteLength} bytes, more than the limit of ${MAX_CHUNK_BYTES} (split it)`,
      { jobName: jobId },
    );
}

/** The `retain` commit option made valid: default 1, at least 1, an integer. */
export function normalizeRetain(jobId: string, retain: number | undefined): number {
  if (retain === undefined) return 1;
  if (!Number.isSafeInteger(retain) || retain < 1)
    throw new StorageError(`job '${jobId}': retain must be an integer >= 1, got ${retain}`, {
      jobName: jobId,
    });
  return retain;
}

/** The chunk ids of a commit without duplicates, in their first order; each checked. */
export function uniqueChunkIds(jobId: string, chunkIds: readonly string[]): string[] {
  if (!Array.isArray(chunkIds))
    throw new StorageError(`job '${jobId}': chunkIds must be an array`, { jobName: jobId });
  const seen = new Set<string>();
  for (const id of chunkIds) {
    checkChunkId(jobId, id);
    seen.add(id);
  }
  return [...seen];
}

/** A stored checkpoint as far as retention is concerned. */
export interface RetentionEntry {
  checkpointId: number;
  savepoint: boolean;
}

/**
 * The checkpoints retention removes: every non-savepoint checkpoint but the newest `retain`.
 * Savepoints are kept until deleted.
 */
export function checkpointsToDrop(stored: readonly RetentionEntry[], retain: number): number[] {
  const checkpoints = stored
    .filter((e) => !e.savepoint)
    .map((e) => e.checkpointId)
    .sort((a, b) => b - a);
  return checkpoints.slice(retain).sort((a, b) => a - b);
}

/** A copy of `bytes` as a plain `Uint8Array` (not a Buffer, not shared with the caller). */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/** A view of `bytes` as a plain `Uint8Array` (no copy). */
export function asUint8Array(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Two byte arrays hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

/**
 * The epoch and staleness checks of a commit, the same in every storage: the epoch must be the
 * current one, and the checkpoint newer than the latest.
 */
export function checkEpochAndLatest(
  jobId: string,
  epoch: number,
  currentEpoch: number,
  checkpointId: number,
  latest: number | undefined,
): void {
  if (epoch < currentEpoch) throw new FencedError(jobId, epoch, currentEpoch);
  if (epoch > currentEpoch) throw unknownEpochError(jobId, epoch, currentEpoch);
  if (latest !== undefined && checkpointId <= latest)
    throw new StaleCheckpointError(jobId, checkpointId, latest);
}

/** A commit carried an epoch newer than the storage has ever issued. */
export function unknownEpochError(jobId: string, epoch: number, currentEpoch: number): StorageError {
  return new StorageError(
    `job '${jobId}': commit refused: epoch ${epoch} was never issued (the current epoch is ${currentEpoch}; was the storage wiped or restarted without persistence?)`,
    { jobName: jobId },
  );
}

/** A commit referred to a chunk that is not stored. */
export function missingChunkError(jobId: string, chunkId: string, checkpointId: number): StorageError {
  return new CheckpointNotFoundError(
    jobId,
    `chunk '${chunkId}' referenced by checkpoint ${checkpointId} (never written, or removed as abandoned: commit refused)`,
    checkpointId,
  );
}

/** A chunk that a committed checkpoint refers to was written again with other bytes. */
export function immutableChunkError(jobId: string, chunkId: string): StorageError {
  return new StorageError(
    `job '${jobId}': chunk '${chunkId}' already belongs to a committed checkpoint and cannot be overwritten with other bytes (chunks are immutable; use a new chunk id)`,
    { jobName: jobId },
  );
}
