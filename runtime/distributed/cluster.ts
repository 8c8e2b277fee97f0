/**
 * The job manager side of a run on several slots (worker threads): places subtasks on slots
 * (see `graph/placement.ts`: as many slots as the highest parallelism, subtask i of every vertex
 * in slot i mod slots, as Flink's slot sharing does), starts the workers with peer-to-peer channels between them, coordinates
 * checkpoints (the coordinator runs here; slots snapshot and send their data), gathers results and
 * metrics, and ends the run when every subtask has finished — or fails it when a slot fails or dies.
 */
import { existsSync } from 'node:fs';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { LineWriter } from '../../operators/contract.js';
import { deserializeError, registerErrorClass, TidemarkError } from '../../state/errors.js';
import type { CheckpointMetadata } from '../../state/snapshot/format.js';
import type { OperatorSubtaskState } from '../../state/snapshot/types.js';
import {
  CheckpointCoordinator,
  type CheckpointFailure,
  type CheckpointingOptions,
  type CheckpointListener,
  type CheckpointStats,
  type CheckpointTask,
} from '../checkpoint/coordinator.js';
import type { DirtyGroups } from '../checkpoint/snapshot-writer.js';
import { JobLifecycle } from '../execution/lifecycle.js';
import { type JobResult, type ResultCollector, writeStdoutLines } from '../execution/results.js';
import type { JobGraph } from '../graph/job-graph.js';
import { placeSubtasks } from '../graph/placement.js';
import { logSettings } from '../log.js';
import { aggregateMetrics, type JobMetricsSnapshot, type SubtaskMetrics } from '../metrics.js';
import { acquireNodeMetrics, type SlotRuntimeMetrics } from '../observe/node-metrics.js';
import type { TaskSample } from '../observe/sample.js';
import type { TailRecord } from '../observe/tail.js';
import type { TaskStatus } from '../task/task.js';
import { type FromSlot, type SlotInit, type TaskRef, type ToSlot, taskRef } from './protocol.js';
import { planHash } from './slot.js';

/** No slots for an attempt of the job: no task manager brought any within the slot request timeout. */
export class NoResourceAvailableError extends TidemarkError {
  constructor(message: string, jobName?: string) {
    super('JOB_FAILED', message, jobName === undefined ? {} : { jobName });
    this.name = 'NoResourceAvailableError';
  }
}
registerErrorClass('NoResourceAvailableError', NoResourceAvailableError);

/** Options of a run on several slots. */
export interface ClusterOptions {
  /** Slots to run on (with a provider that knows its slots: at most that many). */
  slots: number;
  /** Where slots run (default: worker threads of this process). */
  provider?: SlotProvider | undefined;
  /** The job module every slot imports. */
  jobPath: string;
  /** The job id (as checkpoints are stored under; default: the job name): the slots' logs say it. */
  jobId?: string | undefined;
  overrides: SlotInit['overrides'];
  restore?: Map<string, OperatorSubtaskState>[] | undefined;
  attemptNumber: number;
  runId: string;
  results: ResultCollector;
  /** Where the slots' print lines go (default: standard output). */
  stdout?: LineWriter | undefined;
  /** Called once every slot has loaded the job and deployed its subtasks. */
  onRunning?: (() => void) | undefined;
  /** Called once every subtask finished its input (before the final checkpoint). */
  onFinished?: (() => void) | undefined;
  /** The job is observed: slots time their tasks and send samples. */
  observe?: boolean | undefined;
  /** Live tails on at the start: vertex id → records per second (see `observe/tail.ts`). */
  tails?: ReadonlyMap<number, number> | undefined;
  /** Where the records of live tails go. */
  onTail?: ((records: TailRecord[]) => void) | undefined;
  checkpointing?:
    | {
        options: CheckpointingOptions;
        jobId: string;
        epoch: number;
        lastCheckpointId: number;
        /** The checkpoint the run restored from, whose chunks the first checkpoints may refer to. */
        restoredFrom?: CheckpointMetadata | undefined;
        onComplete?: (s: CheckpointStats) => void;
        onFailure?: (failure: CheckpointFailure) => void;
        listener?: CheckpointListener | undefined;
      }
    | undefined;
}

/** A running slot, wherever it is. */
export interface SlotHandle {
  post(message: ToSlot): void;
  /** Stops the slot at the end of a run (no exit is reported). */
  terminate(): Promise<void>;
  /** Kills the slot as a crash would (its exit is reported). */
  kill(): Promise<void>;
}

/** Callbacks of the job manager for the slots it started. */
export interface SlotEvents {
  message(slot: number, message: FromSlot): void;
  /** The slot is gone (its thread or process exited, its connection dropped). */
  exit(slot: number, reason: string): void;
}

/** Starts slots: worker threads here, or in task manager processes on other hosts. */
export interface SlotProvider {
  /** Slots available now (task managers may have left since the last attempt). */
  readonly slots?: number;
  /**
   * Waits (boundedly) for `wanted` slots, if the provider has fewer now (task managers left);
   * resolves with the slots it has then. Absent: the provider's slots are always there.
   */
  awaitSlots?(wanted: number, signal?: AbortSignal): Promise<number>;
  /** Starts one slot per init (in slot order). */
  start(inits: SlotInit[], events: SlotEvents): SlotHandle[];
}

/** Slots as worker threads of this process, with a message channel between every pair. */
export class LocalSlots implements SlotProvider {
  start(inits: SlotInit[], events: SlotEvents): SlotHandle[] {
    const n = inits.length;
    const ports: (MessagePort | undefined)[][] = Array.from({ length: n }, () =>
      new Array(n).fill(undefined),
    );
    for (let a = 0; a < n; a++)
      for (let b = a + 1; b < n; b++) {
        const { port1, port2 } = new MessageChannel();
        ports[a]![b] = port1;
        ports[b]![a] = port2;
      }
    return inits.map((init, slot) => startWorker(init, ports[slot]!, events));
  }
}

/** Starts one slot's worker thread with its peer ports. */
export function startWorker(
  init: SlotInit,
  peers: (MessagePort | undefined)[],
  events: SlotEvents,
): SlotHandle & { worker: Worker } {
  const w = new Worker(workerEntry().url, {
    // NOTE: a slot logs as its process does (the task manager's settings, not the job manager's).
    workerData: { init, peers, log: logSettings() },
    transferList: peers.filter((p): p is MessagePort => p !== undefined),
  });
  let ended = false;
  w.on('message', (m: FromSlot) => events.message(init.slot, m));
  w.on('error', (e) => {
    ended = true;
    events.exit(init.slot, `slot ${init.slot} failed: ${e.message}`);
  });
  w.on('exit', (code) => {
    if (!ended) events.exit(init.slot, `slot ${init.slot} (worker thread) exited with code ${code}`);
    ended = true;
  });
  return {
    worker: w,
    post: (m) => w.postMessage(m),
    terminate: async () => {
      ended = true;
      await w.terminate();
    },
    kill: async () => {
      await w.terminate();
    },
  };
}

/** A subtask in some slot, as the checkpoint coordinator sees it. */
class RemoteTask implements CheckpointTask {
  status: TaskStatus = 'created';
  constructor(
    readonly ref: TaskRef,
    readonly vertexId: number,
    readonly subtaskIndex: number,
    /** Where it runs (placed again once the attempt knows its slots, see `ClusterExecutor.run`). */
    public slot: number,
    readonly isSource: boolean,
    private readonly name: string,
    private readonly post: (slot: number, m: ToSlot) => void,
  ) {}
  describe(): string {
    return this.name;
  }
  triggerCheckpoint(checkpointId: number): void {
    this.post(this.slot, { type: 'trigger', checkpointId, tasks: [this.ref] });
  }
  triggerFinalCheckpoint(checkpointId: number): void {
    this.post(this.slot, { type: 'trigger', checkpointId, tasks: [this.ref], final: true });
  }
  notifyCheckpointComplete(): void {
    // Sent once per slot by the cluster (see `onCheckpointComplete`).
  }
  abortCheckpoint(): void {
    // Sent once per slot by the cluster.
  }
  redirty(groups: readonly DirtyGroups[]): void {
    this.post(this.slot, { type: 'redirty', task: this.ref, groups: [...groups] });
  }
}

/** Where the runtime's entry points are: sources (tsx) or dist/. */
function workerEntry(): { url: URL; fromSource: boolean } {
  const fromSource = import.meta.url.endsWith('.ts');
  const root = new URL(fromSource ? '../../' : '../../../', import.meta.url);
  const url = new URL('bin/worker.js', root);
  if (!existsSync(url))
    throw new TidemarkError('INTERNAL_ERROR', `the worker entry ${url.pathname} is missing`);
  return { url, fromSource };
}

/** Runs one attempt of a job on several worker threads. */
export class ClusterExecutor {
  readonly coordinator: CheckpointCoordinator | undefined;
  private workers: SlotHandle[] = [];
  private readonly tasks = new Map<TaskRef, RemoteTask>();
  private readonly metricsBySlot = new Map<number, SubtaskMetrics[]>();
  /** Node's figures of each slot (its thread, and its task manager's process). */
  private readonly runtimeBySlot = new Map<number, SlotRuntimeMetrics>();
  /** Node's figures of this (the job manager's) thread, while the attempt runs. */
  private nodeMetrics: ReturnType<typeof acquireNodeMetrics> | undefined;
  private readonly samplesBySlot = new Map<number, TaskSample[]>();
  private readonly lifecycle: JobLifecycle;
  /** Summary lines of the slots, written once the run ended (see `LineWriter.writeFinalLine`). */
  private finalLines: string[] = [];
  /** Resolves what `run` waits for: every slot done (or finalized), or the run stopped. */
  private settle: (() => void) | undefined;
  private done = 0;
  private ready = 0;
  private finalized = 0;
  private tick: NodeJS.Timeout | undefined;
  /** Slots this attempt uses: as many as its highest parallelism, if it has them (see placement.ts). */
  private slots: number;
  /** Aborts a wait for slots when the attempt stops. */
  private readonly stopping = new AbortController();
  /** Live tails on: vertex id → records per second. */
  private readonly tails: Map<number, number>;

  constructor(
    readonly graph: JobGraph,
    private readonly options: ClusterOptions,
  ) {
    const placement = placeSubtasks(graph, Math.min(options.provider?.slots ?? options.slots, options.slots));
    this.slots = placement.slots;
    this.tails = new Map(options.tails ?? []);
    this.lifecycle = new JobLifecycle(graph.jobName);
    // A failure or a cancellation stops every slot and ends the wait of `run`.
    this.lifecycle.onStop(() => {
      for (const w of this.workers) w.post({ type: 'cancel' });
      this.stopping.abort();
      this.settle?.();
    });
    const post = (slot: number, m: ToSlot) => this.workers[slot]?.post(m);
    for (const v of graph.vertices)
      for (let i = 0; i < v.parallelism; i++) {
        const ref = taskRef(v.id, i);
        this.tasks.set(
          ref,
          new RemoteTask(
            ref,
            v.id,
            i,
            placement.slotOf(v.id, i),
            v.head.isSource,
            `${v.name} (${i + 1}/${v.parallelism})`,
            post,
          ),
        );
      }
    const cp = options.checkpointing;
    this.coordinator =
      cp === undefined
        ? undefined
        : new CheckpointCoordinator(
            cp.options,
            {
              jobId: cp.jobId,
              tasks: [...this.tasks.values()],
              graph,
              now: () => Date.now(),
              fail: (e) => this.lifecycle.fail(e),
              wake: () => {},
              onComplete: (s) => {
                // After the final checkpoint, the end of the job publishes (the 'final' message).
                if (!s.final)
                  for (let slot = 0; slot < this.workers.length; slot++)
                    post(slot, { type: 'complete', checkpointId: s.checkpointId });
                cp.onComplete?.(s);
              },
              onAbort: (id) => {
                for (let slot = 0; slot < this.workers.length; slot++)
                  post(slot, { type: 'abort', checkpointId: id });
              },
              onFailure: (f) => cp.onFailure?.(f),
              listener: cp.listener,
            },
            cp.epoch,
            cp.lastCheckpointId,
            cp.restoredFrom,
          );
  }

  /** Runs the job to its end on the slots. */
  async run(): Promise<JobResult> {
    this.nodeMetrics = acquireNodeMetrics();
    try {
      return await this.runOnSlots();
    } finally {
      this.nodeMetrics.release();
    }
  }

  private async runOnSlots(): Promise<JobResult> {
    const provider: SlotProvider = this.options.provider ?? new LocalSlots();
    if (provider.awaitSlots !== undefined) {
      // NOTE: a restart after a task manager left waits (boundedly) for one to bring its slots
      // back (Flink's slot request timeout); after that it runs on the slots there are, several
      // subtasks of an operator sharing a slot (placement.ts), or fails when there are none.
      const wanted = placeSubtasks(this.graph, this.options.slots).slots;
      const available = await provider.awaitSlots(wanted, this.stopping.signal);
      if (this.lifecycle.stopped) return this.lifecycle.result(this.metrics(), this.options.results.values);
      if (available < 1)
        throw new NoResourceAvailableError(
          `job '${this.graph.jobName}' has no slots to run on: no task manager is connected, and none came within the slot request timeout`,
          this.graph.jobName,
        );
      this.place(available);
    }
    const { slots } = this;
    const { jobPath } = this.options;
    const entry = workerEntry();
    const placement: Record<TaskRef, number> = {};
    for (const t of this.tasks.values()) placement[t.ref] = t.slot;
    const restore: [number, [string, OperatorSubtaskState][]][] = (this.options.restore ?? []).map((m, i) => [
      i,
      [...(m ?? new Map())],
    ]);
    const hash = planHash(this.graph);
    // NOTE: slots write their snapshots to the storage themselves and send only where they are
    // (Flink's subtask checkpoint coordinator), when the storage can be opened in another thread.
    const cp = this.options.checkpointing;
    const spec = cp?.options.storage.writerSpec?.();
    const snapshots =
      cp === undefined || spec === undefined
        ? undefined
        : {
            jobId: cp.jobId,
            storage: spec,
            ...(cp.options.chunkBytes === undefined ? {} : { chunkBytes: cp.options.chunkBytes }),
          };
    const inits: SlotInit[] = [];
    for (let slot = 0; slot < slots; slot++)
      inits.push({
        slot,
        slots,
        jobPath,
        ...(this.options.jobId === undefined ? {} : { jobId: this.options.jobId }),
        overrides:
          this.graph.stateBackend === undefined
            ? this.options.overrides
            : { ...this.options.overrides, stateBackend: this.graph.stateBackend },
        planHash: hash,
        tasks: [...this.tasks.values()].filter((t) => t.slot === slot).map((t) => t.ref),
        placement,
        restore,
        attemptNumber: this.options.attemptNumber,
        runId: this.options.runId,
        checkpointMode: this.options.checkpointing?.options.mode ?? 'exactly-once',
        ...(snapshots === undefined ? {} : { snapshots }),
        fromSource: entry.fromSource,
        ...(this.options.observe === true ? { observe: true } : {}),
        ...(this.tails.size === 0 ? {} : { tails: [...this.tails] }),
      });
    this.workers = provider.start(inits, {
      message: (slot, m) => this.onSlot(slot, m),
      exit: (slot, reason) => {
        if (this.finalized < slots)
          this.lifecycle.fail(
            new TidemarkError('JOB_FAILED', `${reason} before the job ended`, {
              jobName: this.graph.jobName,
            }),
          );
        void slot;
      },
    });
    this.scheduleTick();
    await this.until(() => this.done === this.workers.length);
    if (this.tick !== undefined) clearTimeout(this.tick);
    const coordinator = this.coordinator;
    // Every subtask finished: the final checkpoint, then the sinks publish on every slot.
    if (!this.lifecycle.stopped) this.options.onFinished?.();
    if (!this.lifecycle.stopped)
      await this.lifecycle.complete(coordinator, Date.now(), async () => {
        for (const w of this.workers) w.post({ type: 'final', commit: true });
        await this.until(() => this.finalized === this.workers.length);
      });
    coordinator?.stop();
    await Promise.all(this.workers.map((w) => w.terminate()));
    // Every slot's lines came before its 'done' and 'finalized': the summaries go after them.
    if (!this.lifecycle.failed) this.writeLines(this.finalLines);
    this.finalLines = [];
    return this.lifecycle.result(this.metrics(), this.options.results.values);
  }

  private writeLines(lines: readonly string[]): void {
    const out = this.options.stdout;
    if (out === undefined) writeStdoutLines(lines);
    else for (const line of lines) out.writeLine(line);
  }

  /** Places the subtasks on the slots of `available` (see placement.ts). */
  private place(available: number): void {
    const placement = placeSubtasks(this.graph, Math.min(available, this.options.slots));
    this.slots = placement.slots;
    for (const t of this.tasks.values()) {
      const [vertex, index] = t.ref.split('/').map(Number) as [number, number];
      t.slot = placement.slotOf(vertex, index);
    }
  }

  /** Waits until `done()` holds (checked on every slot message) or the run stops. */
  private until(done: () => boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const check = () => {
        if (done() || this.lifecycle.stopped) {
          this.settle = undefined;
          resolve();
        }
      };
      this.settle = check;
      check();
    });
  }

  private scheduleTick(): void {
    const c = this.coordinator;
    if (c === undefined) return;
    c.tick(Date.now());
    const next = c.nextWakeTime();
    const delay = Math.max(1, Math.min(1000, next - Date.now()));
    this.tick = setTimeout(() => this.scheduleTick(), delay);
  }

  private onSlot(slot: number, m: FromSlot): void {
    switch (m.type) {
      case 'ready':
        if (++this.ready === this.workers.length) this.options.onRunning?.();
        break;
      case 'status': {
        const t = this.tasks.get(m.task);
        if (t !== undefined) t.status = m.status;
        // A task that finished while a checkpoint waits for it is asked to snapshot its end state.
        if (m.status === 'finished') this.coordinator?.askFinished();
        break;
      }
      case 'ack': {
        const t = this.tasks.get(m.task);
        if (t !== undefined) this.coordinator?.acknowledge(t, m.checkpointId, m.snapshots, m.timing);
        break;
      }
      case 'written': {
        const t = this.tasks.get(m.task);
        if (t !== undefined) this.coordinator?.acknowledgeWritten(t, m.checkpointId, m.written, m.timing);
        break;
      }
      case 'write-failed': {
        const t = this.tasks.get(m.task);
        if (t !== undefined) this.coordinator?.writeFailed(t, m.checkpointId, m.reason);
        break;
      }
      case 'stdout':
        this.writeLines(m.lines);
        for (const line of m.final) this.finalLines.push(line);
        break;
      case 'results':
        for (const [id, subtask, value] of m.adds) this.options.results.add(id, subtask, value);
        for (const [id, txn, values] of m.commits) this.options.results.commit(id, txn, values);
        break;
      case 'metrics':
        this.metricsBySlot.set(slot, m.subtasks);
        if (m.runtime !== undefined)
          this.runtimeBySlot.set(slot, {
            slot,
            thread: m.runtime,
            ...(m.process === undefined ? {} : { process: m.process }),
          });
        if (m.samples !== undefined) this.samplesBySlot.set(slot, m.samples);
        break;
      case 'done':
        this.done++;
        if (m.status === 'CANCELLED') this.lifecycle.cancel();
        this.settle?.();
        break;
      case 'finalized':
        this.finalized++;
        this.settle?.();
        break;
      case 'failed':
        this.lifecycle.fail(deserializeError(m.error));
        break;
      case 'tail':
        this.options.onTail?.(m.records);
        break;
    }
  }

  /** Turns the live tail of a vertex on (records per second) or off (`undefined`) in every slot. */
  setTail(vertexId: number, ratePerSecond: number | undefined): void {
    if (ratePerSecond === undefined) this.tails.delete(vertexId);
    else this.tails.set(vertexId, ratePerSecond);
    for (const w of this.workers) w.post({ type: 'tail', vertexId, rate: ratePerSecond ?? null });
  }

  /** Node's figures of every slot (its thread, and its task manager's process), by slot. */
  slotRuntime(): SlotRuntimeMetrics[] {
    return [...this.runtimeBySlot.values()].sort((a, b) => a.slot - b.slot);
  }

  /** Stops the run; `run` resolves with status CANCELLED. */
  cancel(): void {
    this.lifecycle.cancel();
  }

  /** Kills one slot's worker thread (a crash, for tests of recovery). */
  async killSlot(slot: number): Promise<void> {
    await this.workers[slot]?.kill();
  }

  /** The latest samples the slots sent, with the slot of each (observed runs). */
  samples(): (TaskSample & { slot: number })[] {
    const out: (TaskSample & { slot: number })[] = [];
    for (const [slot, list] of this.samplesBySlot) for (const s of list) out.push({ ...s, slot });
    return out;
  }

  /**
   * The latest metrics the slots reported, summed per operator, and Node's figures of the job
   * manager's thread and of every slot (`runtime`).
   */
  metrics(): JobMetricsSnapshot {
    const m = aggregateMetrics([...this.metricsBySlot.values()].flat(), Date.now());
    if (this.nodeMetrics !== undefined)
      m.runtime = {
        jobManager: this.nodeMetrics.snapshot(),
        slots: this.slotRuntime(),
      };
    return m;
  }
}
