/**
 * The checkpoint coordinator (asynchronous barrier snapshots, as in Flink): triggers checkpoint
 * `n` at an interval by asking every source to inject barrier `n`; collects each task's
 * acknowledgement once it snapshotted (synchronously) and wrote its changed key groups
 * (asynchronously, as chunks); when every task acknowledged, writes the metadata and commits it
 * with one fenced, atomic step; then tells every task that `n` is complete (two-phase-commit sinks
 * commit). Checkpoints are incremental: a key group that did not change refers to the chunks of
 * the last completed checkpoint.
 *
 * Checkpoints go on after tasks finish (Flink 1.14+, FLIP-147): a checkpoint is triggered at the
 * running tasks that have no running predecessor (the running sources, and the tasks whose every
 * upstream task has finished: they take it once they have read to the end of their inputs); a
 * finished task snapshots its end state at once and is marked finished in the checkpoint; a channel
 * that has ended counts as having brought the barrier. A task that finishes while a checkpoint
 * waits for it (so its barrier will never come) is asked again, and snapshots as finished. When
 * every task has finished, the final checkpoint ({@link CheckpointCoordinator.triggerFinal})
 * records the end state, the sinks' last transactions included, before the sinks publish them.
 */
import { InvalidArgumentError, TidemarkError } from '../../state/errors.js';
import {
  type CheckpointMetadata,
  encodeMetadata,
  type KeyGroupRef,
  type OperatorMeta,
  type SubtaskMeta,
} from '../../state/snapshot/format.js';
import type { IncrementalSnapshot } from '../../state/snapshot/types.js';
import { type CheckpointStorage, FencedError } from '../../state/storage/checkpoint-storage.js';
import type { JobGraph } from '../graph/job-graph.js';
import type { CheckpointTiming, TaskStatus } from '../task/task.js';
import { connectedSubtasks } from '../task/writers.js';
import { type DirtyGroups, SnapshotWriter, type WrittenSnapshot } from './snapshot-writer.js';

/** What the coordinator needs of a task: a local one, or a proxy of one in another thread. */
export interface CheckpointTask {
  readonly status: TaskStatus;
  readonly isSource: boolean;
  /** Its vertex (chain) and subtask index, to know its upstream tasks. */
  readonly vertexId: number;
  readonly subtaskIndex: number;
  describe(): string;
  /**
   * Take checkpoint `checkpointId` without waiting for a barrier from upstream: a running source
   * injects the barrier, a running task whose upstream tasks all finished takes it once it has
   * read to the end of its inputs, a finished (or finishing) task snapshots its end state (at
   * once, or once finished). A task that already took this checkpoint ignores it.
   */
  triggerCheckpoint(checkpointId: number): void;
  /** Snapshot now, without a barrier: every task of the job has finished. */
  triggerFinalCheckpoint(checkpointId: number): void;
  notifyCheckpointComplete(checkpointId: number): void;
  abortCheckpoint(checkpointId: number): void;
  /** These key groups must be written again next time (their checkpoint was not stored). */
  redirty(groups: readonly DirtyGroups[]): void;
}

/** How checkpoints are taken. */
export interface CheckpointingOptions {
  /** Processing time between checkpoint triggers. */
  intervalMs: number;
  storage: CheckpointStorage;
  /** Exactly-once aligns barriers; at-least-once does not (default exactly-once). */
  mode?: 'exactly-once' | 'at-least-once';
  /** A checkpoint not complete after this long is abandoned (default 10 minutes). */
  timeoutMs?: number;
  /** Minimum pause between the end of one checkpoint and the trigger of the next (default 0). */
  minPauseMs?: number;
  /** Checkpoints in flight at once (default 1). */
  maxConcurrent?: number;
  /** Consecutive failed checkpoints tolerated before the job fails (default 0). */
  tolerableFailures?: number;
  /** Completed checkpoints to keep (default 1). */
  retain?: number;
  /** Target size of a chunk (default 1 MiB, at most 4 MiB). */
  chunkBytes?: number;
}

/** Figures of the last completed checkpoint. */
export interface CheckpointStats {
  checkpointId: number;
  /** Trigger to commit, in ms. */
  durationMs: number;
  /** Bytes written for this checkpoint (new chunks + metadata). */
  bytesWritten: number;
  /** Bytes of the whole checkpoint (shared chunks included). */
  fullBytes: number;
  completedAt: number;
  /** The final checkpoint of a finished bounded job (it restores to the end: nothing left to read). */
  final: boolean;
  /** A savepoint (kept until deleted; `restore: 'latest'` does not pick it). */
  savepoint: boolean;
}

/** A checkpoint that failed (could not be written or committed, or expired), for logs and progress. */
export interface CheckpointFailure {
  checkpointId: number;
  /** What went wrong, naming the checkpoint (and the task or the storage). */
  reason: string;
  /** Failures in a row, this one included (a completed checkpoint resets the count). */
  consecutiveFailures: number;
  /** The job fails when `consecutiveFailures` exceeds this (`tolerableFailures`). */
  tolerableFailures: number;
}

interface Pending {
  id: number;
  triggeredAt: number;
  /** Wall time of the trigger, for durations. */
  started: number;
  waiting: Set<CheckpointTask>;
  /** Acknowledged subtask snapshots, written. */
  written: WrittenSnapshot[];
  /** Writes in progress. */
  writes: Promise<void>[];
  failed: boolean;
  /** What each acknowledging task must write again if this checkpoint is abandoned. */
  snapshots: { task: CheckpointTask; dirty: DirtyGroups[] }[];
  /** Savepoints are kept until deleted, and someone waits for them. */
  savepoint: boolean;
  /** The final checkpoint of a finished job. */
  final: boolean;
  /** Tasks asked to take it without a barrier (triggered, or asked again once they finished). */
  asked: Set<CheckpointTask>;
  waiters: { resolve(id: number): void; reject(e: Error): void }[];
}

/** A subtask's part of a checkpoint, once acknowledged (written). */
export interface SubtaskCheckpointFigures extends CheckpointTiming {
  /** Encoding and writing its snapshot, ms. */
  asyncMs: number;
  /** Bytes it wrote. */
  bytes: number;
  /** Wall time the job manager counted it. */
  ackAt: number;
}

/** Listens to every checkpoint's course (the job observer's checkpoint statistics). */
export interface CheckpointListener {
  triggered(
    checkpointId: number,
    triggerTimestamp: number,
    kind: { savepoint: boolean; final: boolean },
    tasks: readonly CheckpointTask[],
  ): void;
  acknowledged(checkpointId: number, task: CheckpointTask, figures: SubtaskCheckpointFigures): void;
  completed(stats: CheckpointStats): void;
  failed(checkpointId: number, reason: string): void;
}

/** Hooks into the executor. */
export interface CoordinatorHost {
  readonly jobId: string;
  readonly tasks: readonly CheckpointTask[];
  readonly graph: JobGraph;
  now(): number;
  /** The job fails (too many failed checkpoints). */
  fail(error: unknown): void;
  /** Something changed that the executor loop should look at. */
  wake(): void;
  /** A checkpoint completed (for progress reporting). */
  onComplete?(stats: CheckpointStats): void;
  /** A checkpoint was abandoned. */
  onAbort?(checkpointId: number): void;
  /** A checkpoint failed (once per failed checkpoint; not for one subsumed or cut short by the end). */
  onFailure?(failure: CheckpointFailure): void;
  /** Statistics of every checkpoint (when the job is observed). */
  readonly listener?: CheckpointListener | undefined;
}

/** Where a key group of the last completed checkpoint is: its last whole snapshot, then deltas. */
interface GroupChunks {
  chunks: string[];
  deltas: string[][];
  /** The checkpoint that last wrote the group (a delta's base must be this one). */
  writtenBy: number;
}

/** Drives the checkpoints of one job execution. */
export class CheckpointCoordinator {
  private nextId: number;
  private readonly pending = new Map<number, Pending>();
  private lastEnd = Number.NEGATIVE_INFINITY;
  private nextTrigger: number;
  private consecutiveFailures = 0;
  /** Chunks of the last completed checkpoint per operator and key group (the incremental base). */
  private readonly base = new Map<string, Map<number, GroupChunks>>();
  private readonly chunkSizes = new Map<string, number>();
  /** Writes the snapshots of the tasks that run in this thread. */
  private readonly writer: SnapshotWriter;
  /** Completed checkpoints' stats, newest last. */
  lastCompleted: CheckpointStats | undefined;
  readonly mode: 'exactly-once' | 'at-least-once';
  private stopped = false;
  private readonly failures: string[] = [];
  /** Each task's upstream tasks (those with a channel to it), computed on first use. */
  private upstreamOf: Map<CheckpointTask, CheckpointTask[]> | undefined;

  constructor(
    readonly options: CheckpointingOptions,
    private readonly host: CoordinatorHost,
    private readonly epoch: number,
    /** The last checkpoint id used before (restored or previous attempt); new ids are larger. */
    lastCheckpointId: number,
    /**
     * The checkpoint the run restored from (in the same storage, of the same job): the incremental
     * base to start from, so that key groups still as restored are referred to, not written again
     * (the tasks know it from `OperatorSubtaskState.sharedBase`). The storage counts references to
     * chunks, so sharing them with an older checkpoint is safe.
     */
    restoredFrom?: CheckpointMetadata,
  ) {
    this.nextId = lastCheckpointId + 1;
    if (restoredFrom !== undefined) {
      const operators = new Set(host.graph.nodes.map((n) => n.operatorId));
      for (const o of restoredFrom.operators) {
        if (!o.keyed || !operators.has(o.operatorId)) continue;
        const groups = new Map<number, GroupChunks>();
        for (const ref of o.keyGroups)
          groups.set(ref.keyGroup, {
            chunks: ref.chunks,
            deltas: ref.deltas ?? [],
            writtenBy: restoredFrom.checkpointId,
          });
        this.base.set(o.operatorId, groups);
      }
    }
    this.writer = new SnapshotWriter(options.storage, host.jobId, options.chunkBytes);
    this.mode = options.mode ?? 'exactly-once';
    this.nextTrigger = host.now() + options.intervalMs;
    if (!(options.intervalMs > 0))
      throw new InvalidArgumentError(`the checkpoint interval must be positive, got ${options.intervalMs}`);
  }

  /** Reasons of failed checkpoints so far (for messages). */
  get failureReasons(): readonly string[] {
    return this.failures;
  }

  /** When the next trigger is due (for the executor's sleep). */
  nextWakeTime(): number {
    if (this.stopped) return Number.POSITIVE_INFINITY;
    let t = this.nextTrigger;
    for (const p of this.pending.values())
      t = Math.min(t, p.triggeredAt + (this.options.timeoutMs ?? 600_000));
    return t;
  }

  /** Stops triggering (the job ends); pending checkpoints are abandoned. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const p of [...this.pending.values()]) {
      p.failed = true;
      this.pending.delete(p.id);
      this.host.listener?.failed(p.id, `the job ended before checkpoint ${p.id} completed`);
      for (const w of p.waiters)
        w.reject(
          new TidemarkError(
            'CHECKPOINT_ERROR',
            `job '${this.host.jobId}' ended before checkpoint ${p.id} completed`,
            { checkpointId: p.id },
          ),
        );
    }
  }

  /** Snapshot writes and commits under way. */
  private inFlight = 0;
  private ioWaiters: (() => void)[] = [];

  /** Snapshot writes and commits under way. */
  get writesInFlight(): number {
    return this.inFlight + this.writer.writesInFlight;
  }

  private ioStarted(): void {
    this.inFlight++;
  }

  private ioDone(): void {
    if (--this.inFlight > 0) return;
    const waiters = this.ioWaiters;
    this.ioWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once no snapshot write or commit is under way. */
  async ioSettled(): Promise<void> {
    await this.writer.settled();
    if (this.inFlight === 0) return;
    await new Promise<void>((resolve) => this.ioWaiters.push(resolve));
  }

  /** True while a checkpoint is in flight. */
  get busy(): boolean {
    return this.pending.size > 0;
  }

  /** The id of the newest checkpoint triggered so far (0 if none). */

  get lastTriggeredId(): number {
    return this.nextId - 1;
  }

  /** Triggers a checkpoint if one is due; abandons timed-out ones. */
  tick(now: number): void {
    if (this.stopped) return;
    const timeout = this.options.timeoutMs ?? 600_000;
    for (const p of [...this.pending.values()])
      if (!p.failed && now - p.triggeredAt >= timeout)
        this.abandon(p, `checkpoint ${p.id} expired after ${timeout} ms`);
    this.askFinished();
    if (now < this.nextTrigger) return;
    if (this.pending.size >= (this.options.maxConcurrent ?? 1)) return;
    if (now < this.lastEnd + (this.options.minPauseMs ?? 0)) {
      this.nextTrigger = this.lastEnd + (this.options.minPauseMs ?? 0);
      return;
    }
    this.nextTrigger = now + this.options.intervalMs;
    this.trigger(now);
  }

  /** Takes a savepoint now: resolves with its id once it is committed. */
  triggerSavepoint(): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const id = this.trigger(this.host.now(), true, { resolve, reject });
      if (id === undefined)
        reject(
          new TidemarkError(
            'CHECKPOINT_ERROR',
            `job '${this.host.jobId}': no savepoint now: the job is ${this.stopped ? 'ending' : this.host.tasks.some((t) => t.status === 'created') ? 'still being deployed' : 'finishing (every task has finished)'}`,
            { jobName: this.host.jobId },
          ),
        );
    });
  }

  /**
   * The final checkpoint, once every task has finished: each snapshots its end state at once (no
   * barrier: no record is in flight any more). Resolves with its id when it is committed; the
   * sinks may then publish their last transactions. Checkpoints still pending are abandoned (their
   * barriers cannot pass the finished tasks).
   */
  triggerFinal(now: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      if (this.stopped) {
        reject(
          new TidemarkError('CHECKPOINT_ERROR', `job '${this.host.jobId}' ended before its final checkpoint`),
        );
        return;
      }
      for (const p of [...this.pending.values()])
        this.abandon(p, `checkpoint ${p.id}: the job finished before it completed`, false);
      const tasks = this.host.tasks;
      const id = this.nextId++;
      this.pending.set(id, {
        id,
        triggeredAt: now,
        started: performance.now(),
        waiting: new Set(tasks),
        written: [],
        writes: [],
        failed: false,
        snapshots: [],
        savepoint: false,
        final: true,
        asked: new Set(tasks),
        waiters: [{ resolve, reject }],
      });
      this.host.listener?.triggered(id, Date.now(), { savepoint: false, final: true }, tasks);
      for (const t of tasks) t.triggerFinalCheckpoint(id);
      this.host.wake();
    });
  }

  /**
   * Triggers a checkpoint now; returns its id, or undefined if declined: before every task is
   * deployed, and once every task has finished (the final checkpoint follows).
   */
  trigger(now: number, savepoint = false, waiter?: Pending['waiters'][number]): number | undefined {
    const tasks = this.host.tasks;
    if (
      this.stopped ||
      tasks.some((t) => t.status === 'created') ||
      tasks.every((t) => t.status === 'finished')
    )
      return undefined;
    const id = this.nextId++;
    const p: Pending = {
      id,
      triggeredAt: now,
      started: performance.now(),
      waiting: new Set(tasks),
      written: [],
      writes: [],
      failed: false,
      snapshots: [],
      savepoint,
      final: false,
      asked: new Set(),
      waiters: waiter === undefined ? [] : [waiter],
    };
    this.pending.set(id, p);
    this.host.listener?.triggered(id, Date.now(), { savepoint, final: false }, tasks);
    // See the module comment: the barrier reaches the others.
    const upstream = this.upstream();
    for (const t of tasks)
      if (t.status !== 'running' || t.isSource || this.upstreamFinished(upstream, t)) {
        p.asked.add(t);
        t.triggerCheckpoint(id);
      }
    this.host.wake();
    return id;
  }

  /**
   * Asks the tasks that a checkpoint waits for and that no barrier of it will reach any more (and
   * were not asked yet): those that finished meanwhile (they snapshot their end state), and those
   * whose upstream tasks have all finished meanwhile (a distributed run learns of a status late:
   * the checkpoint may have been triggered while they still seemed to run). Called on every tick
   * (and by a distributed run when a task reports it finished).
   */
  askFinished(): void {
    if (this.pending.size === 0) return; // (and the tasks are deployed when one is)
    const upstream = this.upstream();
    for (const p of this.pending.values()) {
      if (p.failed || p.final) continue;
      for (const t of p.waiting)
        if (
          !p.asked.has(t) &&
          (t.status === 'finished' ||
            (!t.isSource && t.status !== 'created' && this.upstreamFinished(upstream, t)))
        ) {
          p.asked.add(t);
          t.triggerCheckpoint(p.id);
        }
    }
  }

  /** Every upstream task of `t` has finished (false for a task without any: it is not waited for). */
  private upstreamFinished(upstream: Map<CheckpointTask, CheckpointTask[]>, t: CheckpointTask): boolean {
    return upstream.get(t)?.every((u) => u.status === 'finished') ?? false;
  }

  /** Each task's upstream tasks: the subtasks with a channel to it. */
  private upstream(): Map<CheckpointTask, CheckpointTask[]> {
    if (this.upstreamOf !== undefined) return this.upstreamOf;
    const byRef = new Map<string, CheckpointTask>();
    for (const t of this.host.tasks) byRef.set(`${t.vertexId}/${t.subtaskIndex}`, t);
    const graph = this.host.graph;
    const vertexOf = new Map(graph.vertices.flatMap((v) => v.nodes.map((n) => [n, v] as const)));
    const out = new Map<CheckpointTask, CheckpointTask[]>();
    for (const v of graph.vertices)
      for (const edge of v.outputs) {
        const target = vertexOf.get(edge.target)!;
        for (let i = 0; i < v.parallelism; i++) {
          const producer = byRef.get(`${v.id}/${i}`);
          if (producer === undefined) continue;
          for (const j of connectedSubtasks(edge.partitioner, i, v.parallelism, target.parallelism)) {
            const consumer = byRef.get(`${target.id}/${j}`);
            if (consumer === undefined) continue;
            const list = out.get(consumer) ?? [];
            if (!list.includes(producer)) list.push(producer);
            out.set(consumer, list);
          }
        }
      }
    this.upstreamOf = out;
    return out;
  }

  /**
   * A task in this thread took its snapshot of checkpoint `id`: write its changed key groups here,
   * then count it (a task elsewhere writes its own: {@link acknowledgeWritten}).
   */
  acknowledge(
    task: CheckpointTask,
    id: number,
    snaps: IncrementalSnapshot[],
    timing?: CheckpointTiming,
  ): void {
    const dirty = snaps.map((s) => ({ operatorId: s.operatorId, changed: [...s.changed.keys()] }));
    const p = this.pending.get(id);
    if (p === undefined || p.failed) {
      // Abandoned meanwhile: what the snapshot took must be written next time.
      task.redirty(dirty);
      return;
    }
    p.snapshots.push({ task, dirty });
    const asyncStart = performance.now();
    const write = this.writer.writeAll(id, snaps).then(
      (written) => {
        if (timing !== undefined)
          this.report(p, task, written, { ...timing, asyncMs: performance.now() - asyncStart });
        this.written(p, task, written);
      },
      (e: unknown) => this.writeFailed(task, id, (e as Error).message),
    );
    p.writes.push(write);
  }

  /** A task elsewhere took its snapshot of checkpoint `id` and wrote it: count it. */
  acknowledgeWritten(
    task: CheckpointTask,
    id: number,
    written: WrittenSnapshot[],
    timing?: CheckpointTiming & { asyncMs: number },
  ): void {
    const dirty = written.map((w) => ({ operatorId: w.operatorId, changed: w.changed }));
    const p = this.pending.get(id);
    if (p === undefined || p.failed) {
      task.redirty(dirty);
      return;
    }
    p.snapshots.push({ task, dirty });
    if (timing !== undefined) this.report(p, task, written, timing);
    this.written(p, task, written);
  }

  private report(
    p: Pending,
    task: CheckpointTask,
    written: readonly WrittenSnapshot[],
    timing: CheckpointTiming & { asyncMs: number },
  ): void {
    const listener = this.host.listener;
    if (listener === undefined || p.failed) return;
    let bytes = 0;
    for (const w of written) bytes += w.bytes;
    listener.acknowledged(p.id, task, { ...timing, bytes, ackAt: Date.now() });
  }

  /** A task could not write its snapshot of checkpoint `id`: the checkpoint fails. */
  writeFailed(task: CheckpointTask, id: number, reason: string): void {
    const p = this.pending.get(id);
    if (p !== undefined && !p.failed)
      this.abandon(p, `checkpoint ${id}: writing the snapshot of ${task.describe()} failed: ${reason}`);
  }

  private written(p: Pending, task: CheckpointTask, written: WrittenSnapshot[]): void {
    if (p.failed) return;
    for (const w of written) for (const [name, size] of w.chunks) this.chunkSizes.set(name, size);
    p.written.push(...written);
    p.waiting.delete(task);
    if (p.waiting.size === 0) this.completeInOrder();
  }

  /** A checkpoint's metadata being computed and committed now (one at a time). */
  private completing = false;

  /**
   * Completes checkpoints one at a time and in id order: the oldest pending one once its snapshots
   * are written, then the next.
   *
   * NOTE: a task's snapshot leaves out the key groups unchanged since its previous snapshot, and
   * the metadata refers them to the chunks the last completed checkpoint has (`base`). So a
   * checkpoint can only be completed after every older one is committed (else it would refer to
   * chunks older than the task's last write, which the commit of the older one may even remove:
   * seen as a savepoint refused for a missing chunk while the checkpoint before it was still
   * committing), and not at all if an older one is abandoned (see abandon).
   */
  private completeInOrder(): void {
    if (this.completing) return;
    let oldest: Pending | undefined;
    for (const p of this.pending.values())
      if (!p.failed && (oldest === undefined || p.id < oldest.id)) oldest = p;
    if (oldest === undefined) return;
    // Every task's snapshot written (none waited for) is ready to complete.
    if (oldest.waiting.size !== 0) {
      const by = this.skippedBy(oldest);
      if (by !== undefined) this.abandon(oldest, `subsumed by checkpoint ${by}`, false);
      return;
    }
    this.completing = true;
    void this.complete(oldest).finally(() => {
      this.completing = false;
      this.completeInOrder();
    });
  }

  /**
   * A newer checkpoint that a task took while `p` still waits for it: a task takes checkpoints in
   * order and never an older one after a newer (a task that finished takes only the newest it was
   * asked), so `p` can never complete. Undefined if there is none.
   */
  private skippedBy(p: Pending): number | undefined {
    for (const newer of this.pending.values()) {
      if (newer.id <= p.id || newer.failed) continue;
      for (const { task } of newer.snapshots) if (p.waiting.has(task)) return newer.id;
    }
    return undefined;
  }

  private async complete(p: Pending): Promise<void> {
    if (p.failed) return;
    const operators = new Map<string, OperatorMeta>();
    const allChunks = new Set<string>();
    const newBase = new Map<string, Map<number, GroupChunks>>();
    let bytesWritten = 0;
    for (const w of p.written) {
      const s = w;
      let op = operators.get(s.operatorId);
      if (op === undefined) {
        const node = this.host.graph.nodes.find((n) => n.operatorId === s.operatorId)!;
        operators.set(
          s.operatorId,
          (op = {
            operatorId: s.operatorId,
            name: node.name,
            parallelism: s.parallelism,
            maxParallelism: s.maxParallelism,
            keyed: s.keyed,
            keyGroups: [],
            subtasks: [],
          }),
        );
      }
      const sub: SubtaskMeta = { subtaskIndex: s.subtaskIndex, watermark: s.watermark };
      if (w.finished === true) sub.finished = true;
      if (w.operatorStateChunk !== undefined) {
        sub.operatorStateChunk = w.operatorStateChunk;
        allChunks.add(w.operatorStateChunk);
      }
      if (w.operatorState !== undefined) sub.operatorState = w.operatorState;
      op.subtasks.push(sub);
      bytesWritten += w.bytes;
      const base = this.base.get(s.operatorId);
      const next = newBase.get(s.operatorId) ?? new Map<number, GroupChunks>();
      newBase.set(s.operatorId, next);
      const deltaOf = new Map(s.deltas);
      const writtenGroups = new Map(w.groups);
      const changed = new Set(w.changed);
      for (let g = s.keyGroupStart; g <= s.keyGroupEnd; g++) {
        const written = writtenGroups.get(g);
        const previous = base?.get(g);
        let chunks: GroupChunks | undefined;
        if (written === undefined) chunks = changed.has(g) ? undefined : previous;
        else if (!deltaOf.has(g)) chunks = { chunks: written, deltas: [], writtenBy: p.id };
        else if (previous === undefined || previous.writtenBy !== deltaOf.get(g)) {
          // The checkpoint the delta applies to did not complete (it failed after this one took
          // its snapshot): this one cannot be restored either.
          this.abandon(
            p,
            `checkpoint ${p.id}: key group ${g} of operator ${s.operatorId} is a delta on checkpoint ${deltaOf.get(g)}, which did not complete`,
          );
          return;
        } else chunks = { chunks: previous.chunks, deltas: [...previous.deltas, written], writtenBy: p.id };
        if (chunks === undefined || chunks.chunks.length === 0) continue;
        const ref: KeyGroupRef = { keyGroup: g, chunks: chunks.chunks };
        if (chunks.deltas.length > 0) ref.deltas = chunks.deltas;
        op.keyGroups.push(ref);
        next.set(g, chunks);
        for (const c of chunks.chunks) allChunks.add(c);
        for (const d of chunks.deltas) for (const c of d) allChunks.add(c);
      }
    }
    for (const op of operators.values()) {
      op.subtasks.sort((a, b) => a.subtaskIndex - b.subtaskIndex);
      op.keyGroups.sort((a, b) => a.keyGroup - b.keyGroup);
    }
    const metadata = encodeMetadata({
      jobId: this.host.jobId,
      checkpointId: p.id,
      timestamp: p.triggeredAt,
      savepoint: p.savepoint,
      operators: [...operators.values()],
    });
    this.ioStarted();
    try {
      await this.options.storage.commit(this.host.jobId, this.epoch, p.id, metadata, [...allChunks], {
        retain: this.options.retain ?? 1,
        savepoint: p.savepoint,
      });
    } catch (e) {
      // NOTE: a fenced commit means another job manager took the job over: this one must stop,
      // not count a failed checkpoint and go on beside it.
      if (e instanceof FencedError) this.host.fail(e);
      else if (!p.failed) this.abandon(p, `checkpoint ${p.id}: the commit failed: ${(e as Error).message}`);
      return;
    } finally {
      this.ioDone();
    }
    if (p.failed) return; // expired while committing; the commit stands but is not announced
    this.pending.delete(p.id);
    for (const [opId, groups] of newBase) this.base.set(opId, groups);
    this.consecutiveFailures = 0;
    this.lastEnd = this.host.now();
    let fullBytes = metadata.length;
    for (const c of allChunks) fullBytes += this.chunkSizes.get(c) ?? 0;
    this.lastCompleted = {
      checkpointId: p.id,
      durationMs: performance.now() - p.started,
      bytesWritten: bytesWritten + metadata.length,
      fullBytes,
      completedAt: Date.now(),
      final: p.final,
      savepoint: p.savepoint,
    };
    // Older pending checkpoints are subsumed.
    for (const older of [...this.pending.values()])
      if (older.id < p.id) this.abandon(older, `subsumed by checkpoint ${p.id}`, false);
    // NOTE: finished tasks too: a finished sink publishes its last transaction when a checkpoint
    // that holds it completes, not only at the end of the job. (After the final checkpoint, the
    // job's end publishes: see `JobLifecycle.complete`.)
    if (!p.final)
      for (const t of this.host.tasks)
        if (t.status === 'running' || t.status === 'finishing' || t.status === 'finished')
          t.notifyCheckpointComplete(p.id);
    for (const w of p.waiters) w.resolve(p.id);
    this.host.listener?.completed(this.lastCompleted);
    this.host.onComplete?.(this.lastCompleted);
    this.host.wake();
  }

  /** Abandons a checkpoint: tasks stop aligning it, its snapshots' key groups become dirty again. */
  private abandon(p: Pending, reason: string, countAsFailure = true): void {
    p.failed = true;
    for (const w of p.waiters)
      w.reject(
        new TidemarkError('CHECKPOINT_ERROR', reason, { jobName: this.host.jobId, checkpointId: p.id }),
      );
    this.pending.delete(p.id);
    for (const { task, dirty } of p.snapshots) task.redirty(dirty);
    for (const t of this.host.tasks) t.abortCheckpoint(p.id);
    this.host.onAbort?.(p.id);
    this.host.listener?.failed(p.id, reason);
    this.lastEnd = this.host.now();
    // NOTE: newer checkpoints' snapshots left out the key groups this one's snapshots wrote
    // (unchanged since): without this one, they cannot be restored either (see completeInOrder).
    // If no task took this one, nothing depends on it.
    if (p.snapshots.length > 0)
      for (const newer of [...this.pending.values()])
        if (newer.id > p.id && !newer.failed)
          this.abandon(
            newer,
            `checkpoint ${newer.id}: taken after checkpoint ${p.id}, which did not complete`,
            false,
          );
    this.completeInOrder();
    if (!countAsFailure) return;
    this.failures.push(reason);
    this.consecutiveFailures++;
    const tolerable = this.options.tolerableFailures ?? 0;
    this.host.onFailure?.({
      checkpointId: p.id,
      reason,
      consecutiveFailures: this.consecutiveFailures,
      tolerableFailures: tolerable,
    });
    if (this.consecutiveFailures > tolerable)
      this.host.fail(
        new TidemarkError(
          'CHECKPOINT_ERROR',
          `job '${this.host.jobId}': ${this.consecutiveFailures} consecutive checkpoint failure(s), more than the ${tolerable} tolerated; last: ${reason}`,
          { jobName: this.host.jobId, checkpointId: p.id },
        ),
      );
    this.host.wake();
  }
}
