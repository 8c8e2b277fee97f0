/**
 * Encoding of checkpoint data with msgpackr, and the versioned, self-describing checkpoint
 * metadata: a checkpoint that is not one, has another version, belongs to another job, or is
 * damaged gives a clear error instead of wrong results.
 *
 * NOTE: plain objects are encoded as msgpackr records (fast for repeated shapes) and come back as
 * plain objects; msgpack maps come back as `Map`s, so Maps survive too. State should hold plain
 * data: primitives, bigints, arrays, plain objects, Maps, Sets, Dates.
 */
import { Packr } from 'msgpackr';
import { registerErrorClass, TidemarkError } from '../errors.js';

const packr = new Packr({ useRecords: true, moreTypes: true, mapsAsObjects: false });

/** Encodes a value for a snapshot, a chunk or the wire. */
export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes what {@link encode} produced. */
export function decode<T = unknown>(bytes: Uint8Array): T {
  return packr.unpack(bytes) as T;
}

/** The format name written into every checkpoint's metadata. */
export const CHECKPOINT_FORMAT = 'tidemark-checkpoint';
/** The current metadata version; older versions this code can read are listed in SUPPORTED. */
export const CHECKPOINT_VERSION = 3;
// NOTE: version 2 stores key groups and timers as flat arrays; version 3 writes each key group's
// distinct timer namespaces once (see encodeKeyGroupSnapshot); version 1 (nested entries) was never
// released.
const SUPPORTED_VERSIONS = new Set([2, 3]);

/** Where the state of one key group of one operator is. */
export interface KeyGroupRef {
  keyGroup: number;
  /** Chunks holding the key group's pieces (in order). */
  chunks: string[];
  /**
   * Incremental checkpoints: deltas to apply on it, oldest first (the chunks of each), each
   * replacing the state and timers of the keys that changed.
   */
  deltas?: string[][];
}

/** One operator subtask's non-keyed state and progress in a checkpoint. */
export interface SubtaskMeta {
  subtaskIndex: number;
  /** Chunk with the operator (non-keyed) state, when it is too large to be inline. */
  operatorStateChunk?: string;
  /** The encoded operator (non-keyed) state, when small. */
  operatorState?: Uint8Array;

  /** The last watermark the subtask processed. */
  watermark: number;
  /** The subtask had finished (its end state; absent in checkpoints of older versions: running). */
  finished?: boolean;
}

/** One operator in a checkpoint. */
export interface OperatorMeta {
  operatorId: string;
  name: string;
  parallelism: number;
  maxParallelism: number;
  keyed: boolean;
  keyGroups: KeyGroupRef[];
  subtasks: SubtaskMeta[];
}

/** The metadata of a checkpoint (or savepoint). */
export interface CheckpointMetadata {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  jobId: string;
  checkpointId: number;
  /** Trigger time (ms since the epoch). */
  timestamp: number;
  savepoint: boolean;
  operators: OperatorMeta[];
}

/** A checkpoint cannot be used: wrong format, version or job, or damaged. */
export class IncompatibleCheckpointError extends TidemarkError {
  constructor(message: string, checkpointId?: number) {
    super('CHECKPOINT_ERROR', message, checkpointId === undefined ? {} : { checkpointId });
    this.name = 'IncompatibleCheckpointError';
  }
}
registerErrorClass('IncompatibleCheckpointError', IncompatibleCheckpointError);

/** Encodes checkpoint metadata. */
export function encodeMetadata(meta: Omit<CheckpointMetadata, 'format' | 'version'>): Uint8Array {
  return encode({ format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, ...meta });
}

/**
 * What went wrong decoding stored bytes, in one printable line without the bytes themselves
 * (msgpackr's "end of buffer not reached" ends with the value it read, which may be binary).
 */
export function decodeFailure(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  if (message.startsWith('Data read, but end of buffer not reached')) return 'bytes left over after the data';
  const printable = message.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 120 ? `${printable.slice(0, 117)}...` : printable;
}

/** Decodes and checks checkpoint metadata. */
export function decodeMetadata(
  bytes: Uint8Array,
  expected: { jobId: string; checkpointId: number },
): CheckpointMetadata {
  const what = `checkpoint ${expected.checkpointId} of job '${expected.jobId}'`;
  let m: Partial<CheckpointMetadata>;
  try {
    m = decode<Partial<CheckpointMetadata>>(bytes);
  } catch (e) {
    throw new IncompatibleCheckpointError(
      `${what}: the metadata cannot be decoded (damaged or not a tidemark checkpoint): ${decodeFailure(e)}`,
      expected.checkpointId,
    );
  }
  if (typeof m !== 'object' || m === null || m.format !== CHECKPOINT_FORMAT)
    throw new IncompatibleCheckpointError(
      `${what}: the metadata is not a tidemark checkpoint`,
      expected.checkpointId,
    );
  if (typeof m.version !== 'number' || !SUPPORTED_VERSIONS.has(m.version))
    throw new IncompatibleCheckpointError(
      `${what}: metadata version ${String(m.version)} is not supported by this tidemark (it reads versions ${[...SUPPORTED_VERSIONS].join(', ')})`,
      expected.checkpointId,
    );
  if (m.jobId !== expected.jobId)
    throw new IncompatibleCheckpointError(
      `${what}: the metadata belongs to job '${String(m.jobId)}'`,
      expected.checkpointId,
    );
  if (m.checkpointId !== expected.checkpointId)
    throw new IncompatibleCheckpointError(
      `${what}: the metadata says it is checkpoint ${String(m.checkpointId)}`,
      expected.checkpointId,
    );
  if (!Array.isArray(m.operators))
    throw new IncompatibleCheckpointError(`${what}: the metadata has no operators`, expected.checkpointId);
  return m as CheckpointMetadata;
}
