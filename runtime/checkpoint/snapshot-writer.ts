/**
 * Writes the synchronous part of a subtask's checkpoint to the checkpoint storage (Flink's
 * subtask checkpoint coordinator): packs the changed key groups into chunks, writes them (a few
 * at a time) and returns a {@link WrittenSnapshot}, the handle the job manager needs to commit
 * the checkpoint's metadata. It runs where the subtask runs: in the job manager's thread for a
 * local run, in each slot (worker thread or task manager) of a distributed one, so that no chunk
 * travels through the job manager.
 */
import { encode } from '../../state/snapshot/format.js';
import type { IncrementalSnapshot } from '../../state/snapshot/types.js';
import { type CheckpointStorage, MAX_CHUNK_BYTES } from '../../state/storage/checkpoint-storage.js';

/** Operator state up to this size goes into the metadata, not into a chunk of its own. */
const INLINE_OPERATOR_STATE_BYTES = 64 * 1024;
/** Chunk writes of one subtask's snapshot in flight at once. */
const MAX_CHUNK_WRITES_IN_FLIGHT = 8;

/**
 * One operator subtask's snapshot once written: where its changed key groups and its operator
 * state are. Plain data (it crosses threads and hosts).
 */
export interface WrittenSnapshot {
  operatorId: string;
  subtaskIndex: number;
  parallelism: number;
  maxParallelism: number;
  keyed: boolean;
  watermark: number;
  /** The key groups this subtask owns, `[start, end]` (empty when end < start). */
  keyGroupStart: number;
  keyGroupEnd: number;
  /** Key groups that changed since the subtask's previous snapshot. */
  changed: number[];
  /** The changed key groups that are deltas, with the checkpoint they apply to. */
  deltas: [number, number][];
  /** New chunks per changed key group, in order. */
  groups: [number, string[]][];
  /** Operator state: in a chunk of its own, or inline (small). */
  operatorStateChunk?: string;
  operatorState?: Uint8Array;
  /** Every chunk written, with its size. */
  chunks: [string, number][];
  /** Bytes written. */
  bytes: number;
  /** Taken after the subtask finished. */
  finished?: boolean;
}

/** The key groups of a snapshot that must be written again if its checkpoint is not stored. */
export interface DirtyGroups {
  operatorId: string;
  changed: number[];
}

/** Writes subtask snapshots to a storage (see the module comment). */
export class SnapshotWriter {
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  private readonly chunkLimit: number;

  constructor(
    private readonly storage: CheckpointStorage,
    private readonly jobId: string,
    chunkBytes = 1024 * 1024,
  ) {
    this.chunkLimit = Math.min(chunkBytes, MAX_CHUNK_BYTES - 1024);
  }

  /** Snapshots being written now. */
  get writesInFlight(): number {
    return this.inFlight;
  }

  /** Resolves once no write is under way. */
  settled(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Writes the snapshots a subtask took for checkpoint `id`. */
  async writeAll(id: number, snapshots: readonly IncrementalSnapshot[]): Promise<WrittenSnapshot[]> {
    this.inFlight++;
    try {
      return await Promise.all(snapshots.map((s) => this.write(id, s)));
    } finally {
      if (--this.inFlight === 0) {
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
      }
    }
  }

  private chunkName(id: number, s: IncrementalSnapshot, n: number): string {
    return `${id}-${s.operatorId.replace(/[^A-Za-z0-9_.-]/g, '_')}-${s.subtaskIndex}-${n}`;
  }

  /** Packs the changed key groups of one subtask into chunks and writes them (a few at a time). */
  private async write(id: number, s: IncrementalSnapshot): Promise<WrittenSnapshot> {
    const { storage, jobId } = this;
    const limit = this.chunkLimit;
    const groups = new Map<number, string[]>();
    const chunks: [string, number][] = [];
    let bytes = 0;
    let entries: [number, number, Uint8Array][] = [];
    let size = 0;
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    const flush = async () => {
      if (entries.length === 0) return;
      const name = this.chunkName(id, s, chunks.length);
      const data = encode(entries);
      for (const [g] of entries) {
        const list = groups.get(g) ?? [];
        if (list[list.length - 1] !== name) list.push(name);
        groups.set(g, list);
      }
      entries = [];
      size = 0;
      chunks.push([name, data.length]);
      bytes += data.length;
      // NOTE: several chunk writes in flight (each waits for a turn of the event loop, which the
      // tasks share): one at a time, a large checkpoint would take many turns.
      const write: Promise<void> = storage.writeChunk(jobId, name, data).then(
        () => {
          inFlight.delete(write);
        },
        (e: unknown) => {
          failure ??= e;
          inFlight.delete(write);
        },
      );
      inFlight.add(write);
      if (inFlight.size >= MAX_CHUNK_WRITES_IN_FLIGHT) await Promise.race(inFlight);
      if (failure !== undefined) throw failure;
    };
    for (const [g, data] of s.changed) {
      // A key group larger than a chunk is cut into parts, in order.
      for (let off = 0, part = 0; off < data.length || part === 0; off += limit, part++) {
        const piece = data.subarray(off, Math.min(data.length, off + limit));
        if (size + piece.length > limit) await flush();
        entries.push([g, part, piece]);
        size += piece.length;
      }
    }
    const out: WrittenSnapshot = {
      operatorId: s.operatorId,
      subtaskIndex: s.subtaskIndex,
      parallelism: s.parallelism,
      maxParallelism: s.maxParallelism,
      keyed: s.keyed,
      watermark: s.watermark,
      keyGroupStart: s.keyGroupStart,
      keyGroupEnd: s.keyGroupEnd,
      changed: [...s.changed.keys()],
      deltas: s.deltas,
      groups: [],
      chunks,
      bytes: 0,
    };
    if (s.finished === true) out.finished = true;
    if (s.operatorState.length <= INLINE_OPERATOR_STATE_BYTES) out.operatorState = s.operatorState;
    else {
      await flush();
      const name = this.chunkName(id, s, chunks.length);
      await storage.writeChunk(jobId, name, s.operatorState);
      chunks.push([name, s.operatorState.length]);
      bytes += s.operatorState.length;
      out.operatorStateChunk = name;
    }
    await flush();
    // Every write must have succeeded (a failed one fails the checkpoint).
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    out.groups = [...groups];
    out.bytes = bytes;
    return out;
  }
}
