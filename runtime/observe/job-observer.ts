/**
 * The job observer: the job manager's view of one running job, for the REST API, Prometheus and
 * the job commands. A timer (every 500 ms) takes the samples of every subtask — in this thread
 * for a local run, the latest each slot sent for a run on slots or task managers — and turns
 * successive samples into rates, time ratios, last-record ages and watermark stalls. The
 * checkpoint coordinator reports every checkpoint's course to it (a {@link CheckpointListener});
 * the job runner reports restarts, failures and the end.
 *
 * NOTE: nothing here runs per record: the tasks keep plain counters, read only by the samples.
 */
import { describeErrorChain, TidemarkError, UserFunctionError } from '../../state/errors.js';
import type {
  CheckpointingOptions,
  CheckpointListener,
  CheckpointStats,
  CheckpointTask,
  SubtaskCheckpointFigures,
} from '../checkpoint/coordinator.js';
import type { JobGraph, JobVertex } from '../graph/job-graph.js';
import { planToJson } from '../graph/plan.js';
import type { RunnerEvent } from '../job-runner.js';
import { acquireNodeMetrics, type NodeMetricsSnapshot, type SlotRuntimeMetrics } from './node-metrics.js';
import type { InputSample, TaskSample } from './sample.js';
import type { TailRecord } from './tail.js';
import {
  type BackPressureLevel,
  type CheckpointConfig,
  type CheckpointCounts,
  type CheckpointDetails,
  type CheckpointHistoryEntry,
  type CheckpointsResponse,
  type ExceptionEntry,
  type ExceptionsResponse,
  type ExecutionMode,
  type InputWatermark,
  type JobDetails,
  type JobState,
  type JobSummary,
  MAX_WATERMARK_JSON,
  type MinMaxAvg,
  type PlanResponse,
  type RestartEntry,
  type RuntimeResponse,
  type SavepointStatus,
  type SubtaskCheckpointStats,
  type SubtaskCounts,
  type SubtaskDetails,
  type SubtaskState,
  type SubtaskWatermarks,
  type VertexBackPressure,
  type VertexDetails,
  type VertexMetrics,
  type VertexSummary,
  type VertexWatermarks,
  type WatermarkJson,
  type WatermarkStall,
} from './types.js';

/** A watermark for JSON (see `types.ts`). */
export function watermarkJson(w: number): WatermarkJson {
  if (w === Number.POSITIVE_INFINITY) return MAX_WATERMARK_JSON;
  return Number.isFinite(w) ? w : null;
}

/** Options of a {@link JobObserver}. */
export interface JobObserverOptions {
  mode: ExecutionMode;
  slots: number;
  /** Task-manager processes connected now. */
  taskManagers?: (() => number) | undefined;
  /** `host:port` of the task manager running a slot, if any. */
  locateSlot?: ((slot: number) => string | null) | undefined;
  /** A watermark that has not moved this long is stalled (default 10 s). */
  stallThresholdMs?: number | undefined;
  /** Sample interval (default 500 ms). */
  sampleIntervalMs?: number | undefined;
  /** tidemark's version, for `/overview`. */
  version?: string | undefined;
}

/** What the observer knows of one subtask. */
interface Tracked {
  ref: string;
  cur: TaskSample & { slot?: number };
  prev: (TaskSample & { slot?: number }) | undefined;
  /** Figures over the last sample interval. */
  rates: { inPerSecond: number; outPerSecond: number; busy: number; bp: number; idle: number };
  lastWatermark: number;
  lastAdvance: number;
  /** Per input name: records at the last change, and when they changed. */
  seen: Map<string, { records: number; changedAt: number | undefined }>;
  stall: WatermarkStall | null;
  heldBy: number | null;
}

interface CheckpointRecord {
  id: number;
  status: 'IN_PROGRESS' | 'COMPLETED' | 'FAILED';
  savepoint: boolean;
  final: boolean;
  trigger: number;
  latestAck: number | null;
  end: number | null;
  durationMs: number | null;
  size: number | null;
  fullSize: number | null;
  tasks: { vertexId: number; subtaskIndex: number }[];
  acks: Map<string, SubtaskCheckpointFigures>;
  failure: string | null;
}

/** What an asynchronous savepoint (or stop) request came to. */
interface SavepointOperation {
  status: 'IN_PROGRESS' | 'COMPLETED';
  /** Its completion was answered to a poll. */
  read?: boolean;
  savepointId?: number;
  failure?: string;
}

/** Things the observer asks of the run it watches. */
export interface ObservedRun {
  triggerSavepoint(): Promise<number>;
  cancel(): void;
  /** Turns the live tail of a vertex on (records per second of the vertex) or off (`undefined`). */
  tail?(vertexId: number, ratePerSecond: number | undefined): void;
  /** Node's figures of every slot (empty in one thread). */
  slotRuntime?(): SlotRuntimeMetrics[];
}

/** A listener of a vertex's live tail (see `observe/tail.ts`). */
export interface TailListener {
  /** Records per second it wants at most. */
  readonly rate: number;
  /** A captured record of the vertex (not yet throttled for this listener). */
  record(r: TailRecord): void;
  /** The job ended: no more records. */
  end(state: JobState): void;
}

const MAX_HISTORY = 50;
const MAX_EXCEPTIONS = 100;

/** The job manager's view of one job (see the module comment). */
export class JobObserver implements CheckpointListener {
  jobId = '';
  jobName = '';
  graph!: JobGraph;
  /** Checkpointing of the run, if on. */
  checkpointing: CheckpointingOptions | undefined;
  readonly stallThresholdMs: number;
  readonly startTimestamp = Date.now();
  state: JobState = 'INITIALIZING';
  endTimestamp: number | null = null;
  attempt = 0;
  numRestarts = 0;
  private sampler: (() => readonly (TaskSample & { slot?: number })[]) | undefined;
  private readonly tracked = new Map<string, Tracked>();
  private timer: NodeJS.Timeout | undefined;
  private readonly checkpoints = new Map<number, CheckpointRecord>();
  private completedCount = 0;
  private failedCount = 0;
  private lastCompleted: CheckpointStats | undefined;
  private restoredCheckpointId: number | null = null;
  private readonly exceptionList: ExceptionEntry[] = [];
  private exceptionsDropped = false;
  private readonly restartList: RestartEntry[] = [];
  private readonly operations = new Map<string, SavepointOperation>();
  private run: ObservedRun | undefined;
  private readonly vertexById = new Map<number, JobVertex>();
  private nextOperation = 1;
  /** Listeners of live tails, by vertex id, and the rate each vertex captures at. */
  private readonly tailListeners = new Map<number, Set<TailListener>>();
  private readonly tailRates = new Map<number, number>();
  /** Node's figures of this (the job manager's) thread while the job runs. */
  private nodeMetrics: ReturnType<typeof acquireNodeMetrics> | undefined;
  /** The last figures of Node, kept once the job ended. */
  private finalRuntime: { jobManager: NodeMetricsSnapshot; slots: SlotRuntimeMetrics[] } | undefined;

  constructor(readonly options: JobObserverOptions) {
    this.stallThresholdMs = options.stallThresholdMs ?? 10_000;
  }

  /** The job it watches (set by the job runner). */
  bind(graph: JobGraph, jobId: string, checkpointing: CheckpointingOptions | undefined): void {
    this.graph = graph;
    this.jobId = jobId;
    this.jobName = graph.jobName;
    this.checkpointing = checkpointing;
    this.vertexById.clear();
    for (const v of graph.vertices) this.vertexById.set(v.id, v);
  }

  /** Starts sampling (the timer does not keep the process alive). */
  start(run: ObservedRun): void {
    this.run = run;
    for (const [vertexId, rate] of this.tailRates) run.tail?.(vertexId, rate);
    this.nodeMetrics ??= acquireNodeMetrics();
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.sample(), this.options.sampleIntervalMs ?? 500);
    this.timer.unref();
  }

  /** Stops sampling (the last figures stay readable). */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (this.nodeMetrics !== undefined) {
      this.finalRuntime = {
        jobManager: this.nodeMetrics.snapshot(),
        slots: this.run?.slotRuntime?.() ?? [],
      };
      this.nodeMetrics.release();
      this.nodeMetrics = undefined;
    }
  }

  /** The current attempt's subtasks are sampled by `sampler`. */
  attach(sampler: () => readonly (TaskSample & { slot?: number })[], attempt: number): void {
    this.sampler = sampler;
    this.attempt = attempt;
  }

  /** Takes a sample of every subtask now (the timer does this every interval). */
  sample(): void {
    const s = this.sampler;
    if (s === undefined) return;
    let samples: readonly (TaskSample & { slot?: number })[];
    try {
      samples = s();
    } catch {
      return; // an attempt being torn down
    }
    for (const sample of samples) this.take(sample);
    const now = Date.now();
    for (const t of this.tracked.values()) this.judge(t, now);
  }

  private take(sample: TaskSample & { slot?: number }): void {
    const ref = `${sample.vertexId}/${sample.subtaskIndex}`;
    let t = this.tracked.get(ref);
    if (t === undefined || t.cur.attempt !== sample.attempt) {
      t = {
        ref,
        cur: sample,
        prev: undefined,
        rates: { inPerSecond: 0, outPerSecond: 0, busy: 0, bp: 0, idle: 0 },
        lastWatermark: sample.inputWatermark,
        lastAdvance: sample.sampledAt,
        seen: new Map(),
        stall: null,
        heldBy: null,
      };
      this.tracked.set(ref, t);
    } else if (sample.sampledAt > t.cur.sampledAt) {
      t.prev = t.cur;
      t.cur = sample;
      const dt = Math.max(1, sample.sampledAt - t.prev.sampledAt);
      const busy = Math.max(0, sample.busyMs - t.prev.busyMs) / dt;
      const bp = Math.max(0, sample.backPressuredMs - t.prev.backPressuredMs) / dt;
      t.rates = {
        inPerSecond: (Math.max(0, recordsIn(sample) - recordsIn(t.prev)) * 1000) / dt,
        outPerSecond: (Math.max(0, recordsOut(sample) - recordsOut(t.prev)) * 1000) / dt,
        busy: Math.min(1, busy),
        bp: Math.min(1 - Math.min(1, busy), bp),
        idle: Math.max(0, 1 - busy - bp),
      };
    } else return;
    if (sample.inputWatermark !== t.lastWatermark) {
      t.lastWatermark = sample.inputWatermark;
      t.lastAdvance = sample.sampledAt;
    }
    for (const i of sample.inputs) {
      const key = `${i.kind}:${i.name}`;
      const seen = t.seen.get(key);
      if (seen === undefined)
        t.seen.set(key, { records: i.records, changedAt: i.records > 0 ? sample.sampledAt : undefined });
      else if (seen.records !== i.records) {
        seen.records = i.records;
        seen.changedAt = sample.sampledAt;
      }
    }
  }

  /** The input that holds the subtask's minimum: the lowest watermark among those that count. */
  private holder(t: Tracked): number | null {
    let best: number | null = null;
    const inputs = t.cur.inputs;
    for (let i = 0; i < inputs.length; i++) {
      const x = inputs[i]!;
      if (x.idle || x.ended || !x.aligned) continue;
      if (best === null || x.watermark < inputs[best]!.watermark) best = i;
      else if (x.watermark === inputs[best]!.watermark) {
        // A tie: the one silent longest holds it.
        const a = this.ageOf(t, x, Date.now()) ?? Number.POSITIVE_INFINITY;
        const b = this.ageOf(t, inputs[best]!, Date.now()) ?? Number.POSITIVE_INFINITY;
        if (a > b) best = i;
      }
    }
    return best;
  }

  private ageOf(t: Tracked, input: InputSample, now: number): number | null {
    const seen = t.seen.get(`${input.kind}:${input.name}`);
    return seen?.changedAt === undefined ? null : Math.max(0, now - seen.changedAt);
  }

  /** Decides whether the subtask's watermark is stalled, and why. */
  private judge(t: Tracked, now: number): void {
    const s = t.cur;
    t.heldBy = this.holder(t);
    const stalledFor = now - t.lastAdvance;
    if (
      s.status !== 'running' ||
      stalledFor < this.stallThresholdMs ||
      s.inputWatermark === Number.POSITIVE_INFINITY
    ) {
      t.stall = null;
      return;
    }
    const base = { since: t.lastAdvance, stalledForMs: stalledFor };
    const secs = (ms: number) => `${Math.round(ms / 1000)} s`;
    const inputs = s.inputs;
    const what = (i: InputSample) => (i.kind === 'split' ? `split '${i.name}'` : `input '${i.name}'`);
    if (s.paused) {
      t.stall = {
        ...base,
        reason: 'alignment',
        input: null,
        message: `the source is paused by watermark alignment: ${s.alignmentDrift ?? '?'} ms ahead of its group's slowest member`,
      };
      return;
    }
    if (inputs.length === 0) {
      t.stall = { ...base, reason: 'no-input', input: null, message: 'the source has no split to read' };
      return;
    }
    const live = inputs.filter((i) => !i.ended);
    if (live.length > 0 && live.every((i) => i.idle)) {
      t.stall = {
        ...base,
        reason: 'all-inputs-idle',
        input: null,
        message: `every input is idle: nothing has moved event time for ${secs(stalledFor)}`,
      };
      return;
    }
    const h = t.heldBy;
    if (h === null) {
      t.stall = { ...base, reason: 'no-input', input: null, message: 'no input counts in the watermark' };
      return;
    }
    const input = inputs[h]!;
    const age = this.ageOf(t, input, now);
    if (input.watermark === Number.NEGATIVE_INFINITY) {
      t.stall = {
        ...base,
        reason: 'no-watermark',
        input: input.name,
        message: `${what(input)} has never sent a watermark${age === null ? ' (nor any record)' : ''}: it holds the watermark at none`,
      };
      return;
    }
    const upstream =
      input.fromVertexId === null
        ? undefined
        : this.tracked.get(`${input.fromVertexId}/${input.fromSubtaskIndex}`);
    if (age === null || age >= this.stallThresholdMs) {
      t.stall = {
        ...base,
        reason: 'idle-input',
        input: input.name,
        message: `${what(input)} has sent no record ${age === null ? 'yet' : `for ${secs(age)}`} and is not marked idle: it holds the watermark (withIdleness on its source lets the others go on)${upstream?.stall == null ? '' : `; upstream: ${upstream.stall.message}`}`,
      };
      return;
    }
    if (upstream?.stall != null) {
      t.stall = {
        ...base,
        reason: 'upstream',
        input: input.name,
        message: `${what(input)} holds the watermark; its own is stalled: ${upstream.stall.message}`,
      };
      return;
    }
    t.stall = {
      ...base,
      reason: 'slow-input',
      input: input.name,
      message: `${what(input)} has records but its watermark lags (${new Date(input.watermark).toISOString()}): it holds the watermark`,
    };
  }

  // ---- the run's events ----

  /** An event of the job runner. */
  onEvent(e: RunnerEvent): void {
    switch (e.type) {
      case 'running':
        this.state = 'RUNNING';
        this.attempt = e.attempt;
        break;
      case 'restored':
        this.restoredCheckpointId = e.checkpointId;
        break;
      case 'restart':
        this.state = 'RESTARTING';
        this.numRestarts = e.attempt;
        this.addException(e.error, e.attempt - 1, true);
        this.restartList.unshift({
          attempt: e.attempt,
          timestamp: Date.now(),
          delayMs: e.delayMs,
          fromCheckpoint: e.fromCheckpoint ?? null,
          cause: describeErrorChain(e.error).split('\n')[0] ?? '',
        });
        break;
      default:
    }
  }

  /** The run ended. */
  ended(status: 'FINISHED' | 'CANCELED' | 'FAILED', error?: unknown): void {
    this.sample();
    this.stop();
    this.state = status;
    this.endTimestamp = Date.now();
    if (error !== undefined) this.addException(error, this.attempt, false);
    const listeners = [...this.tailListeners.values()].flatMap((set) => [...set]);
    this.tailListeners.clear();
    this.tailRates.clear();
    for (const l of listeners) l.end(status);
  }

  // ---- live tails ----

  /**
   * Adds a listener of the live tail of `v`: its subtasks capture their output while it has one
   * listener at least. Returns what removes it (the last one turns the capture off).
   */
  subscribeTail(v: JobVertex, listener: TailListener): () => void {
    let set = this.tailListeners.get(v.id);
    if (set === undefined) this.tailListeners.set(v.id, (set = new Set()));
    set.add(listener);
    this.applyTail(v.id);
    return () => {
      const s = this.tailListeners.get(v.id);
      if (s === undefined || !s.delete(listener)) return;
      if (s.size === 0) this.tailListeners.delete(v.id);
      this.applyTail(v.id);
    };
  }

  /** Listeners of the live tail of a vertex now. */
  tailListenerCount(vertexId: number): number {
    return this.tailListeners.get(vertexId)?.size ?? 0;
  }

  /** Captures at the highest rate its listeners want, or not at all without listeners. */
  private applyTail(vertexId: number): void {
    const set = this.tailListeners.get(vertexId);
    let rate: number | undefined;
    for (const l of set ?? []) rate = Math.max(rate ?? 0, l.rate);
    if (this.tailRates.get(vertexId) === rate) return;
    if (rate === undefined) this.tailRates.delete(vertexId);
    else this.tailRates.set(vertexId, rate);
    this.run?.tail?.(vertexId, rate);
  }

  /** Records captured by the subtasks (see `observe/tail.ts`). */
  onTail(records: readonly TailRecord[]): void {
    for (const r of records) {
      const set = this.tailListeners.get(r.vertexId);
      if (set !== undefined) for (const l of set) l.record(r);
    }
  }

  /** `GET /jobs/:id/runtime`: Node's figures of the job manager and of every slot. */
  runtime(): RuntimeResponse {
    const jobManager = this.nodeMetrics?.snapshot() ?? this.finalRuntime?.jobManager ?? null;
    const slots =
      this.nodeMetrics !== undefined ? (this.run?.slotRuntime?.() ?? []) : (this.finalRuntime?.slots ?? []);
    return {
      jobId: this.jobId,
      now: Date.now(),
      jobManager,
      slots: slots.map((s) => ({
        ...s,
        taskManager: s.process === undefined ? null : (this.options.locateSlot?.(s.slot) ?? null),
      })),
    };
  }

  private addException(error: unknown, attempt: number, restarted: boolean): void {
    let ctx: { operatorId?: string; operatorName?: string; subtaskIndex?: number } = {};
    let record: string | null = null;
    let code: string | null = null;
    let c: unknown = error;
    for (let i = 0; c instanceof Error && i < 8; i++, c = c.cause) {
      if (c instanceof TidemarkError) {
        code ??= c.code;
        if (c.context.operatorId !== undefined || c.context.subtaskIndex !== undefined)
          ctx = { ...c.context, ...ctx };
      }
      if (c instanceof UserFunctionError && c.record !== undefined) record ??= c.record;
    }
    const node =
      ctx.operatorId === undefined
        ? undefined
        : this.graph.nodes.find((n) => n.operatorId === ctx.operatorId);
    const vertex = node === undefined ? undefined : this.graph.vertices.find((v) => v.nodes.includes(node));
    const err = error instanceof Error ? error : new Error(String(error));
    const stack: string[] = [];
    for (let e: unknown = err, i = 0; e instanceof Error && i < 8; e = e.cause, i++)
      stack.push(i === 0 ? (e.stack ?? e.message) : `Caused by: ${e.stack ?? e.message}`);
    this.exceptionList.unshift({
      timestamp: Date.now(),
      exceptionName: err.name,
      code,
      message: describeErrorChain(error),
      stacktrace: stack.join('\n'),
      operatorId: ctx.operatorId ?? null,
      operatorName: ctx.operatorName ?? node?.name ?? null,
      vertexId: vertex?.id ?? null,
      subtaskIndex: ctx.subtaskIndex ?? null,
      taskName:
        vertex === undefined || ctx.subtaskIndex === undefined
          ? null
          : `${vertex.name} (${ctx.subtaskIndex + 1}/${vertex.parallelism})`,
      record,
      attempt,
      restarted,
    });
    if (this.exceptionList.length > MAX_EXCEPTIONS) {
      this.exceptionList.length = MAX_EXCEPTIONS;
      this.exceptionsDropped = true;
    }
  }

  // ---- checkpoints (CheckpointListener) ----

  triggered(
    checkpointId: number,
    triggerTimestamp: number,
    kind: { savepoint: boolean; final: boolean },
    tasks: readonly CheckpointTask[],
  ): void {
    this.checkpoints.set(checkpointId, {
      id: checkpointId,
      status: 'IN_PROGRESS',
      savepoint: kind.savepoint,
      final: kind.final,
      trigger: triggerTimestamp,
      latestAck: null,
      end: null,
      durationMs: null,
      size: null,
      fullSize: null,
      tasks: tasks.map((t) => ({ vertexId: t.vertexId, subtaskIndex: t.subtaskIndex })),
      acks: new Map(),
      failure: null,
    });
    if (this.checkpoints.size > MAX_HISTORY) {
      const oldest = Math.min(...this.checkpoints.keys());
      this.checkpoints.delete(oldest);
    }
  }

  acknowledged(checkpointId: number, task: CheckpointTask, figures: SubtaskCheckpointFigures): void {
    const c = this.checkpoints.get(checkpointId);
    if (c === undefined) return;
    c.acks.set(`${task.vertexId}/${task.subtaskIndex}`, figures);
    c.latestAck = figures.ackAt;
  }

  completed(stats: CheckpointStats): void {
    this.completedCount++;
    this.lastCompleted = stats;
    const c = this.checkpoints.get(stats.checkpointId);
    if (c === undefined) return;
    c.status = 'COMPLETED';
    c.end = stats.completedAt;
    c.durationMs = stats.durationMs;
    c.size = stats.bytesWritten;
    c.fullSize = stats.fullBytes;
  }

  failed(checkpointId: number, reason: string): void {
    const c = this.checkpoints.get(checkpointId);
    if (c === undefined || c.status !== 'IN_PROGRESS') return;
    this.failedCount++;
    c.status = 'FAILED';
    c.end = Date.now();
    c.durationMs = c.end - c.trigger;
    c.failure = reason;
  }

  // ---- savepoints and cancellation ----

  /** Starts a savepoint (and a cancel after it, for stop); returns the request id. */
  triggerSavepoint(options: { triggerId?: string; cancelJob?: boolean }): string {
    const id =
      options.triggerId ??
      `${Date.now().toString(16)}${(this.nextOperation++).toString(16).padStart(4, '0')}`;
    if (this.operations.has(id)) return id;
    const op: SavepointOperation = { status: 'IN_PROGRESS' };
    this.operations.set(id, op);
    const run = this.run;
    if (run === undefined) {
      op.status = 'COMPLETED';
      op.failure = `job '${this.jobId}' is not running`;
      return id;
    }
    run.triggerSavepoint().then(
      (sp) => {
        op.status = 'COMPLETED';
        op.savepointId = sp;
        if (options.cancelJob === true) this.cancel();
      },
      (e: unknown) => {
        op.status = 'COMPLETED';
        op.failure = (e as Error).message ?? String(e);
      },
    );
    return id;
  }

  /** The state of a savepoint request, or undefined if unknown. */
  savepointStatus(triggerId: string): SavepointStatus | undefined {
    const op = this.operations.get(triggerId);
    if (op === undefined) return undefined;
    if (op.status === 'COMPLETED') op.read = true;
    return {
      status: { id: op.status },
      operation:
        op.status === 'IN_PROGRESS'
          ? null
          : op.savepointId !== undefined
            ? {
                savepointId: op.savepointId,
                location: `${this.checkpointing?.storage.description ?? 'storage'}: savepoint ${op.savepointId} of job '${this.jobId}'`,
              }
            : { failureCause: op.failure ?? 'unknown' },
    };
  }

  /**
   * Waits (at most `ms`) until every savepoint request has completed and its completion was polled:
   * a stop ends the job right after its savepoint, and its caller still has to learn the id.
   */
  async settleOperations(ms = 3000): Promise<void> {
    const end = Date.now() + ms;
    while ([...this.operations.values()].some((o) => o.read !== true) && Date.now() < end)
      await new Promise((r) => setTimeout(r, 50));
  }

  /** Cancels the job. */
  cancel(): void {
    if (this.endTimestamp === null) this.state = 'CANCELLING';
    this.run?.cancel();
  }

  /** Whether the job still runs (not ended). */
  get running(): boolean {
    return this.endTimestamp === null;
  }

  // ---- views ----

  private tasksOf(v: JobVertex): (Tracked | undefined)[] {
    return Array.from({ length: v.parallelism }, (_x, i) => this.tracked.get(`${v.id}/${i}`));
  }

  private subtaskState(t: Tracked | undefined): SubtaskState {
    if (t === undefined)
      return this.endTimestamp === null ? 'CREATED' : this.state === 'FAILED' ? 'FAILED' : 'CANCELED';
    switch (t.cur.status) {
      case 'created':
        return 'CREATED';
      case 'running':
        return 'RUNNING';
      case 'finishing':
        return 'FINISHING';
      case 'finished':
        return 'FINISHED';
      case 'failed':
        return 'FAILED';
      case 'cancelled':
        return 'CANCELED';
    }
  }

  private counts(states: SubtaskState[]): SubtaskCounts {
    const c: SubtaskCounts = { CREATED: 0, RUNNING: 0, FINISHING: 0, FINISHED: 0, CANCELED: 0, FAILED: 0 };
    for (const s of states) c[s]++;
    return c;
  }

  private subtaskMetrics(t: Tracked | undefined): VertexMetrics {
    if (t === undefined)
      return {
        numRecordsIn: 0,
        numRecordsOut: 0,
        numRecordsInPerSecond: 0,
        numRecordsOutPerSecond: 0,
        numLateRecordsDropped: 0,
        numLateRecordsToSideOutput: 0,
        currentInputWatermark: null,
        currentOutputWatermark: null,
        watermarkAlignmentDrift: null,
        busyTimeMsPerSecond: 0,
        idleTimeMsPerSecond: 0,
        backPressuredTimeMsPerSecond: 0,
        isBackPressured: false,
      };
    const s = t.cur;
    let late = 0;
    let lateSide = 0;
    for (const o of s.operators) {
      late += o.values.numLateRecordsDropped ?? 0;
      lateSide += o.values.numLateRecordsToSideOutput ?? 0;
    }
    const running = s.status === 'running';
    return {
      numRecordsIn: recordsIn(s),
      numRecordsOut: recordsOut(s),
      numRecordsInPerSecond: running ? round(t.rates.inPerSecond) : 0,
      numRecordsOutPerSecond: running ? round(t.rates.outPerSecond) : 0,
      numLateRecordsDropped: late,
      numLateRecordsToSideOutput: lateSide,
      currentInputWatermark: watermarkJson(s.inputWatermark),
      currentOutputWatermark: watermarkJson(s.outputWatermark),
      watermarkAlignmentDrift: s.alignmentDrift,
      busyTimeMsPerSecond: running ? Math.round(t.rates.busy * 1000) : 0,
      idleTimeMsPerSecond: running ? Math.round(t.rates.idle * 1000) : 1000,
      backPressuredTimeMsPerSecond: running ? Math.round(t.rates.bp * 1000) : 0,
      isBackPressured: running && (s.fullOutputs > 0 || t.rates.bp > 0.5),
    };
  }

  private vertexMetrics(v: JobVertex): VertexMetrics {
    const subs = this.tasksOf(v).map((t) => this.subtaskMetrics(t));
    const minWm = (pick: (m: VertexMetrics) => WatermarkJson): WatermarkJson => {
      let min: number | undefined;
      for (const m of subs) {
        const w = pick(m);
        if (w === null) return null;
        if (min === undefined || w < min) min = w;
      }
      return min ?? null;
    };
    const max = (pick: (m: VertexMetrics) => number) => subs.reduce((a, m) => Math.max(a, pick(m)), 0);
    const sum = (pick: (m: VertexMetrics) => number) => subs.reduce((a, m) => a + pick(m), 0);
    const drifts = subs.map((m) => m.watermarkAlignmentDrift).filter((d): d is number => d !== null);
    return {
      numRecordsIn: sum((m) => m.numRecordsIn),
      numRecordsOut: sum((m) => m.numRecordsOut),
      numRecordsInPerSecond: round(sum((m) => m.numRecordsInPerSecond)),
      numRecordsOutPerSecond: round(sum((m) => m.numRecordsOutPerSecond)),
      numLateRecordsDropped: sum((m) => m.numLateRecordsDropped),
      numLateRecordsToSideOutput: sum((m) => m.numLateRecordsToSideOutput),
      currentInputWatermark: minWm((m) => m.currentInputWatermark),
      currentOutputWatermark: minWm((m) => m.currentOutputWatermark),
      watermarkAlignmentDrift: drifts.length === 0 ? null : Math.max(...drifts),
      busyTimeMsPerSecond: max((m) => m.busyTimeMsPerSecond),
      idleTimeMsPerSecond: max((m) => m.idleTimeMsPerSecond),
      backPressuredTimeMsPerSecond: max((m) => m.backPressuredTimeMsPerSecond),
      isBackPressured: subs.some((m) => m.isBackPressured),
    };
  }

  private vertexStall(v: JobVertex): WatermarkStall | null {
    let worst: WatermarkStall | null = null;
    for (const t of this.tasksOf(v))
      if (t?.stall != null && (worst === null || t.stall.since < worst.since)) worst = t.stall;
    return worst;
  }

  /** `GET /jobs` entry. */
  summary(): JobSummary {
    const states: SubtaskState[] = [];
    for (const v of this.graph.vertices) for (const t of this.tasksOf(v)) states.push(this.subtaskState(t));
    const now = Date.now();
    return {
      id: this.jobId,
      name: this.jobName,
      state: this.state,
      startTimestamp: this.startTimestamp,
      endTimestamp: this.endTimestamp,
      durationMs: (this.endTimestamp ?? now) - this.startTimestamp,
      mode: this.options.mode,
      slots: this.options.slots,
      numRestarts: this.numRestarts,
      attempt: this.attempt,
      tasks: this.counts(states),
    };
  }

  private operatorsOf(v: JobVertex) {
    return v.nodes.map((n) => ({ id: n.operatorId, name: n.name, kind: n.kind }));
  }

  /** `GET /jobs/:id`. */
  details(): JobDetails {
    const vertices: VertexSummary[] = this.graph.vertices.map((v) => {
      const states = this.tasksOf(v).map((t) => this.subtaskState(t));
      return {
        id: v.id,
        name: v.name,
        parallelism: v.parallelism,
        state: leastAdvanced(states),
        tasks: this.counts(states),
        operators: this.operatorsOf(v),
        metrics: this.vertexMetrics(v),
        watermarkStall: this.vertexStall(v),
      };
    });
    const history = this.history();
    return {
      ...this.summary(),
      now: Date.now(),
      vertices,
      checkpointing: this.checkpointConfig(),
      checkpointCounts: this.checkpointCounts(),
      lastCheckpoint: history.find((h) => h.status === 'COMPLETED') ?? null,
      numExceptions: this.exceptionList.length,
    };
  }

  /** `GET /jobs/:id/plan`. */
  plan(): PlanResponse {
    return { jobId: this.jobId, plan: planToJson(this.graph) };
  }

  /** `GET /jobs/:id/exceptions`. */
  exceptions(): ExceptionsResponse {
    return {
      jobId: this.jobId,
      entries: [...this.exceptionList],
      restarts: [...this.restartList],
      truncated: this.exceptionsDropped,
    };
  }

  /** The vertex with this id, if any. */
  vertex(id: number): JobVertex | undefined {
    return this.vertexById.get(id);
  }

  /** `GET /jobs/:id/vertices/:vid`. */
  vertexDetails(v: JobVertex): VertexDetails {
    const tasks = this.tasksOf(v);
    const subtasks: SubtaskDetails[] = tasks.map((t, i) => ({
      subtaskIndex: i,
      state: this.subtaskState(t),
      attempt: t?.cur.attempt ?? this.attempt,
      location: {
        slot: t?.cur.slot ?? 0,
        taskManager: t?.cur.slot === undefined ? null : (this.options.locateSlot?.(t.cur.slot) ?? null),
      },
      metrics: this.subtaskMetrics(t),
      operators: (t?.cur.operators ?? []).map((o) => ({
        id: o.operatorId,
        name: o.operatorName,
        metrics: o.values,
      })),
      sampledAt: t?.cur.sampledAt ?? 0,
    }));
    return {
      jobId: this.jobId,
      id: v.id,
      name: v.name,
      parallelism: v.parallelism,
      state: leastAdvanced(subtasks.map((s) => s.state)),
      now: Date.now(),
      operators: this.operatorsOf(v),
      metrics: this.vertexMetrics(v),
      subtasks,
    };
  }

  /** `GET /jobs/:id/vertices/:vid/watermarks`. */
  watermarks(v: JobVertex): VertexWatermarks {
    const now = Date.now();
    const subtasks: SubtaskWatermarks[] = this.tasksOf(v).map((t, i) => {
      if (t === undefined)
        return {
          subtaskIndex: i,
          currentInputWatermark: null,
          currentOutputWatermark: null,
          watermarkAlignmentDrift: null,
          idle: false,
          inputs: [],
          heldBy: null,
          lastAdvanceTimestamp: this.startTimestamp,
          stall: null,
        };
      const s = t.cur;
      const inputs: InputWatermark[] = s.inputs.map((x, k) => ({
        kind: x.kind,
        name: x.name,
        fromVertexId: x.fromVertexId,
        fromSubtaskIndex: x.fromSubtaskIndex,
        inputIndex: x.inputIndex,
        watermark: watermarkJson(x.watermark),
        idle: x.idle,
        aligned: x.aligned,
        ended: x.ended,
        lastRecordAgeMs: this.ageOf(t, x, now),
        numRecords: x.records,
        queued: x.queued,
        holdsMinimum: k === t.heldBy,
      }));
      return {
        subtaskIndex: i,
        currentInputWatermark: watermarkJson(s.inputWatermark),
        currentOutputWatermark: watermarkJson(s.outputWatermark),
        watermarkAlignmentDrift: s.alignmentDrift,
        idle: s.outputIdle,
        inputs,
        heldBy: t.heldBy,
        lastAdvanceTimestamp: t.lastAdvance,
        stall: t.stall,
      };
    });
    const m = this.vertexMetrics(v);
    return {
      jobId: this.jobId,
      vertexId: v.id,
      name: v.name,
      now,
      stallThresholdMs: this.stallThresholdMs,
      currentInputWatermark: m.currentInputWatermark,
      currentOutputWatermark: m.currentOutputWatermark,
      watermarkAlignmentDrift: m.watermarkAlignmentDrift,
      stall: this.vertexStall(v),
      subtasks,
    };
  }

  /** `GET /jobs/:id/vertices/:vid/backpressure`. */
  backpressure(v: JobVertex): VertexBackPressure {
    const level = (r: number): BackPressureLevel => (r <= 0.1 ? 'ok' : r <= 0.5 ? 'low' : 'high');
    const subtasks = this.tasksOf(v).map((t, i) => {
      const running = t?.cur.status === 'running';
      const ratio = running ? t!.rates.bp : 0;
      return {
        subtask: i,
        backpressureLevel: level(ratio),
        ratio: round(ratio),
        idleRatio: running ? round(t!.rates.idle) : 1,
        busyRatio: running ? round(t!.rates.busy) : 0,
        fullOutputs: t?.cur.fullOutputs ?? 0,
        outputs: t?.cur.outputs ?? 0,
      };
    });
    const maxRatio = subtasks.reduce((a, s) => Math.max(a, s.ratio), 0);
    // The likely cause: downstream, the first vertex busy and not backpressured itself.
    let cause: VertexBackPressure['cause'] = null;
    if (maxRatio > 0.1) {
      const seen = new Set<number>();
      let frontier = [v];
      while (frontier.length > 0 && cause === null) {
        const next: JobVertex[] = [];
        for (const f of frontier)
          for (const e of f.outputs) {
            const d = this.graph.vertices.find((x) => x.nodes.includes(e.target));
            if (d === undefined || seen.has(d.id)) continue;
            seen.add(d.id);
            const m = this.vertexMetrics(d);
            if (m.backPressuredTimeMsPerSecond <= 100 && cause === null)
              cause = { vertexId: d.id, name: d.name };
            next.push(d);
          }
        frontier = next;
      }
    }
    return {
      jobId: this.jobId,
      vertexId: v.id,
      status: 'ok',
      backpressureLevel: level(maxRatio),
      now: Date.now(),
      subtasks,
      cause,
    };
  }

  private checkpointConfig(): CheckpointConfig | null {
    const c = this.checkpointing;
    if (c === undefined) return null;
    return {
      intervalMs: c.intervalMs,
      mode: c.mode ?? 'exactly-once',
      timeoutMs: c.timeoutMs ?? 600_000,
      minPauseMs: c.minPauseMs ?? 0,
      maxConcurrent: c.maxConcurrent ?? 1,
      tolerableFailures: c.tolerableFailures ?? 0,
      retain: c.retain ?? 1,
      storage: c.storage.description,
    };
  }

  private checkpointCounts(): CheckpointCounts {
    const last = this.lastCompleted;
    let inProgress = 0;
    for (const c of this.checkpoints.values()) if (c.status === 'IN_PROGRESS') inProgress++;
    return {
      numberOfCompletedCheckpoints: this.completedCount,
      numberOfFailedCheckpoints: this.failedCount,
      numberOfInProgressCheckpoints: inProgress,
      lastCheckpointDuration: last === undefined ? null : Math.round(last.durationMs),
      lastCheckpointSize: last?.bytesWritten ?? null,
      lastCheckpointFullSize: last?.fullBytes ?? null,
      lastCompletedCheckpointId: last?.checkpointId ?? null,
      restoredCheckpointId: this.restoredCheckpointId,
    };
  }

  private entry(c: CheckpointRecord): CheckpointHistoryEntry {
    return {
      id: c.id,
      status: c.status,
      savepoint: c.savepoint,
      final: c.final,
      triggerTimestamp: c.trigger,
      latestAckTimestamp: c.latestAck,
      endTimestamp: c.end,
      durationMs: Math.round(c.durationMs ?? Date.now() - c.trigger),
      sizeBytes: c.size,
      fullSizeBytes: c.fullSize,
      numSubtasks: c.tasks.length,
      numAcknowledgedSubtasks: c.acks.size,
      failureMessage: c.failure,
    };
  }

  private history(): CheckpointHistoryEntry[] {
    return [...this.checkpoints.values()].sort((a, b) => b.id - a.id).map((c) => this.entry(c));
  }

  /** `GET /jobs/:id/checkpoints`. */
  checkpointsView(): CheckpointsResponse {
    const history = this.history();
    const done = history.filter((h) => h.status === 'COMPLETED');
    const mma = (xs: number[]): MinMaxAvg => ({
      min: Math.min(...xs),
      max: Math.max(...xs),
      avg: Math.round(xs.reduce((a, x) => a + x, 0) / xs.length),
    });
    return {
      jobId: this.jobId,
      config: this.checkpointConfig(),
      counts: this.checkpointCounts(),
      summary:
        done.length === 0
          ? null
          : {
              durationMs: mma(done.map((d) => d.durationMs)),
              sizeBytes: mma(done.map((d) => d.sizeBytes ?? 0)),
            },
      latest: {
        completed: done.find((h) => !h.savepoint) ?? null,
        savepoint: done.find((h) => h.savepoint) ?? null,
        failed: history.find((h) => h.status === 'FAILED') ?? null,
      },
      history,
    };
  }

  /** `GET /jobs/:id/checkpoints/details/:cid`, or undefined if it is not in the history. */
  checkpointDetails(id: number): CheckpointDetails | undefined {
    const c = this.checkpoints.get(id);
    if (c === undefined) return undefined;
    const vertices = this.graph.vertices.map((v) => {
      const subtasks: SubtaskCheckpointStats[] = [];
      for (let i = 0; i < v.parallelism; i++) {
        const a = c.acks.get(`${v.id}/${i}`);
        subtasks.push(
          a === undefined
            ? {
                subtaskIndex: i,
                status: 'pending',
                startDelayMs: null,
                alignmentDurationMs: null,
                syncDurationMs: null,
                asyncDurationMs: null,
                endToEndDurationMs: null,
                ackTimestamp: null,
                sizeBytes: null,
                finished: false,
              }
            : {
                subtaskIndex: i,
                status: 'acknowledged',
                startDelayMs: Math.max(0, a.barrierAt - c.trigger),
                alignmentDurationMs: round(a.alignmentMs),
                syncDurationMs: round(a.syncMs),
                asyncDurationMs: round(a.asyncMs),
                endToEndDurationMs: Math.max(0, a.ackAt - c.trigger),
                ackTimestamp: a.ackAt,
                sizeBytes: a.bytes,
                finished: a.finished,
              },
        );
      }
      return {
        id: v.id,
        name: v.name,
        parallelism: v.parallelism,
        numAcknowledgedSubtasks: subtasks.filter((s) => s.status === 'acknowledged').length,
        subtasks,
      };
    });
    return { ...this.entry(c), jobId: this.jobId, vertices };
  }

  /** Figures for `/overview`. */
  overviewFigures(): { taskManagers: number; slots: number } {
    return { taskManagers: this.options.taskManagers?.() ?? 0, slots: this.options.slots };
  }

  /** Every subtask's latest sample (for Prometheus). */
  subtaskSamples(): { vertex: JobVertex; sample: TaskSample; metrics: VertexMetrics }[] {
    const out: { vertex: JobVertex; sample: TaskSample; metrics: VertexMetrics }[] = [];
    for (const v of this.graph.vertices)
      for (const t of this.tasksOf(v))
        if (t !== undefined) out.push({ vertex: v, sample: t.cur, metrics: this.subtaskMetrics(t) });
    return out;
  }

  /** Job-level checkpoint figures (for Prometheus). */
  jobFigures(): CheckpointCounts {
    return this.checkpointCounts();
  }
}

function recordsIn(s: TaskSample): number {
  return s.operators[0]?.values.numRecordsIn ?? 0;
}

function recordsOut(s: TaskSample): number {
  return s.operators[s.operators.length - 1]?.values.numRecordsOut ?? 0;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

const ORDER: SubtaskState[] = ['FAILED', 'CANCELED', 'CREATED', 'RUNNING', 'FINISHING', 'FINISHED'];

function leastAdvanced(states: SubtaskState[]): SubtaskState {
  for (const s of ORDER) if (states.includes(s)) return s;
  return 'CREATED';
}
