/**
 * Restoring a job from a checkpoint or savepoint: read and check the metadata against the job
 * graph (operator ids, maxParallelism), read the chunks of every key group, and give each new
 * subtask its key groups (with their timers) and its share of the operator state — at the same or
 * another parallelism.
 *
 * Finished tasks (FLIP-147): a subtask that had finished is in the checkpoint with its end state
 * (a source without splits left, a sink's last transaction); an operator that had finished in
 * every subtask, and whose upstream operators all had too, restores as finished (see
 * `OperatorSubtaskState.finished`): its subtasks, at any parallelism, start finished and read
 * nothing. An operator that had finished in some subtasks only runs again, with every subtask's
 * state redistributed as usual (a finished source split is not in it any more).
 */

import {
  type CheckpointMetadata,
  decode,
  decodeFailure,
  decodeMetadata,
  IncompatibleCheckpointError,
  type KeyGroupRef,
} from '../../state/snapshot/format.js';
import { decodeKeyGroupSnapshot } from '../../state/snapshot/key-group-codec.js';
import {
  applyKeyGroupDeltas,
  RELEASABLE_RESTORES,
  restoreForSubtask,
} from '../../state/snapshot/redistribute.js';
import type {
  KeyGroupSnapshot,
  OperatorStateSnapshot,
  OperatorSubtaskState,
} from '../../state/snapshot/types.js';
import {
  type CheckpointStorage,
  CorruptChunkError,
  StorageError,
} from '../../state/storage/checkpoint-storage.js';
import type { JobGraph } from '../graph/job-graph.js';

/** Chunks a restore reads at the same time. */
const CONCURRENT_CHUNK_READS = 8;

/** Options of a restore. */
export interface RestoreOptions {
  /** Allow state of operators that are no longer in the job (it is dropped); default false. */
  allowNonRestoredState?: boolean;
}

/** A loaded checkpoint, ready to hand to the tasks. */
export interface LoadedCheckpoint {
  checkpointId: number;
  metadata: CheckpointMetadata;
  /** Per subtask index: operator id → what that subtask starts from. */
  restore: Map<string, OperatorSubtaskState>[];
}

/** Reads checkpoint `checkpointId` of `jobId` and prepares the restore of `graph`. */
export async function loadCheckpoint(
  storage: CheckpointStorage,
  jobId: string,
  checkpointId: number,
  graph: JobGraph,
  options: RestoreOptions = {},
): Promise<LoadedCheckpoint> {
  const metadata = decodeMetadata(await storage.readMetadata(jobId, checkpointId), { jobId, checkpointId });
  const nodes = new Map(graph.nodes.map((n) => [n.operatorId, n]));
  const missing = metadata.operators.filter((o) => !nodes.has(o.operatorId));
  if (missing.length > 0 && options.allowNonRestoredState !== true)
    throw new IncompatibleCheckpointError(
      `checkpoint ${checkpointId} of job '${jobId}' has state for operator(s) ${missing.map((o) => `'${o.name}' (${o.operatorId})`).join(', ')} that the job does not have; set uids that match, or allow dropping that state (--allow-non-restored-state)`,
      checkpointId,
    );
  for (const o of metadata.operators) {
    const n = nodes.get(o.operatorId);
    // NOTE: as in Flink, only keyed state ties an operator to its maxParallelism (key groups).
    if (n !== undefined && o.keyed && n.maxParallelism !== o.maxParallelism)
      throw new IncompatibleCheckpointError(
        `checkpoint ${checkpointId} of job '${jobId}': operator '${n.name}' (${o.operatorId}) was checkpointed with maxParallelism ${o.maxParallelism}, but the job runs it with maxParallelism ${n.maxParallelism}; maxParallelism cannot change across a restore`,
        checkpointId,
      );
  }

  // Read every chunk once; collect the pieces of each key group in order.
  const chunkCache = new Map<string, [number, number, Uint8Array][]>();
  const readChunk = async (name: string) => {
    let entries = chunkCache.get(name);
    if (entries === undefined) {
      let bytes: Uint8Array;
      try {
        bytes = await storage.readChunk(jobId, name);
      } catch (e) {
        if (e instanceof StorageError) throw e;
        throw new CorruptChunkError(jobId, name, (e as Error).message);
      }
      try {
        entries = decode<[number, number, Uint8Array][]>(bytes);
      } catch (e) {
        throw new CorruptChunkError(jobId, name, `cannot be decoded: ${decodeFailure(e)}`);
      }
      chunkCache.set(name, entries);
    }
    return entries;
  };

  // Every chunk the restore reads, fetched a few at a time rather than one after another: a
  // checkpoint of a large state is many chunks, and a round trip each adds up.
  const names = new Set<string>();
  for (const o of metadata.operators) {
    if (!nodes.has(o.operatorId)) continue;
    for (const ref of o.keyGroups) {
      for (const c of ref.chunks) names.add(c);
      for (const d of ref.deltas ?? []) for (const c of d) names.add(c);
    }
  }
  const queue = [...names];
  const fetchers = Array.from({ length: Math.min(CONCURRENT_CHUNK_READS, queue.length) }, async () => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) await readChunk(name);
  });
  await Promise.all(fetchers);

  const perSubtask: Map<string, OperatorSubtaskState>[] = [];
  for (const o of metadata.operators) {
    const node = nodes.get(o.operatorId);
    if (node === undefined) continue;
    const keyGroups = new Map<number, KeyGroupSnapshot>();
    const readGroup = async (ref: KeyGroupRef, chunks: string[]): Promise<KeyGroupSnapshot> => {
      const parts: Uint8Array[] = [];
      for (const c of chunks)
        for (const [g, , piece] of await readChunk(c)) if (g === ref.keyGroup) parts.push(piece);
      const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      try {
        return decodeKeyGroupSnapshot(bytes);
      } catch (e) {
        throw new CorruptChunkError(
          jobId,
          chunks.join(','),
          `key group ${ref.keyGroup} of operator ${o.operatorId} cannot be decoded: ${decodeFailure(e)}`,
        );
      }
    };
    for (const ref of o.keyGroups) {
      const deltas: KeyGroupSnapshot[] = [];
      for (const delta of ref.deltas ?? []) deltas.push(await readGroup(ref, delta));
      keyGroups.set(ref.keyGroup, applyKeyGroupDeltas(await readGroup(ref, ref.chunks), deltas));
    }
    const previous: OperatorSubtaskState[] = [];
    for (const s of o.subtasks) {
      let opState: OperatorStateSnapshot = {};
      const raw =
        s.operatorState ??
        (s.operatorStateChunk === undefined
          ? undefined
          : await storage.readChunk(jobId, s.operatorStateChunk));
      if (raw !== undefined) opState = decode<OperatorStateSnapshot>(raw);
      previous.push({
        operatorId: o.operatorId,
        subtaskIndex: s.subtaskIndex,
        parallelism: o.parallelism,
        maxParallelism: o.maxParallelism,
        operatorState: opState,
        ...(o.keyed ? { keyGroups: s.subtaskIndex === 0 ? keyGroups : new Map() } : {}),
      });
    }
    for (let i = 0; i < node.parallelism; i++) {
      const r = restoreForSubtask(previous, i, node.parallelism, node.maxParallelism);
      RELEASABLE_RESTORES.add(r);
      (perSubtask[i] ??= new Map()).set(o.operatorId, r);
    }
  }
  for (const vertex of finishedVertices(graph, metadata))
    for (const node of vertex.nodes)
      for (const states of perSubtask) {
        const s = states?.get(node.operatorId);
        if (s !== undefined) s.finished = true;
      }
  return { checkpointId, metadata, restore: perSubtask };
}

/**
 * The vertices (chains) that restore as finished: every operator of the chain had finished in
 * every subtask, and so had every vertex upstream of it (a finished task must not wait for input).
 */
function finishedVertices(graph: JobGraph, metadata: CheckpointMetadata): JobGraph['vertices'] {
  const finishedOps = new Set(
    metadata.operators
      .filter((o) => o.subtasks.length === o.parallelism && o.subtasks.every((s) => s.finished === true))
      .map((o) => o.operatorId),
  );
  if (finishedOps.size === 0) return [];
  const vertexOf = new Map(graph.vertices.flatMap((v) => v.nodes.map((n) => [n, v] as const)));
  const finished = new Set<JobGraph['vertices'][number]>();
  // NOTE: vertices are in topological order: a vertex's inputs are decided before it.
  for (const v of graph.vertices)
    if (
      v.nodes.every((n) => finishedOps.has(n.operatorId)) &&
      v.inputs.every((e) => finished.has(vertexOf.get(e.source)!))
    )
      finished.add(v);
  return [...finished];
}

/**
 * Loads the latest checkpoint; if it cannot be read (corrupt or incompatible chunk data), falls
 * back to the previous retained one, and so on. Returns undefined when the job has none.
 */
export async function loadLatestCheckpoint(
  storage: CheckpointStorage,
  jobId: string,
  graph: JobGraph,
  options: RestoreOptions & { onFallback?: (checkpointId: number, error: Error) => void } = {},
): Promise<LoadedCheckpoint | undefined> {
  const stored = (await storage.list(jobId))
    .filter((c) => !c.savepoint)
    .sort((a, b) => b.checkpointId - a.checkpointId);
  const latest = await storage.latest(jobId);
  const candidates = stored.map((c) => c.checkpointId).filter((id) => latest === undefined || id <= latest);
  let lastError: Error | undefined;
  for (const id of candidates) {
    try {
      return await loadCheckpoint(storage, jobId, id, graph, options);
    } catch (e) {
      // A mismatch with the job is not a damaged checkpoint: falling back would hide it.
      if (e instanceof IncompatibleCheckpointError && !/cannot be decoded/.test(e.message)) throw e;
      if (!(e instanceof CorruptChunkError || e instanceof IncompatibleCheckpointError)) throw e;
      lastError = e;
      options.onFallback?.(id, e);
    }
  }
  if (lastError !== undefined)
    throw new StorageError(
      `job '${jobId}': no retained checkpoint can be restored; the last error was: ${lastError.message}`,
      { cause: lastError },
    );
  return undefined;
}
