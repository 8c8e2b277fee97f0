/**
 * The JSON the job manager's REST API answers (see docs/rest-api.md), one type per response.
 * Paths and metric names mirror Flink's (shared/OBSERVABILITY.md); field names are camelCase.
 *
 * Conventions:
 * - Times are epoch milliseconds (`...Timestamp`, `now`, `since`); durations say their unit
 *   (`...Ms`); sizes are bytes.
 * - A watermark is a {@link WatermarkJson}: `null` where none arrived yet (Flink's
 *   `Long.MIN_VALUE`, shown as "No Watermark"), {@link MAX_WATERMARK_JSON} for the final watermark
 *   of an ended input (`+Infinity` in the runtime).
 * - Vertex ids are the numbers of `GET /jobs/:id/plan` (a vertex is a chain of operators); a job
 *   id is the id checkpoints are stored under (the job name unless `--job-id`), URL-encoded in paths.
 * - Every error answers {@link ErrorResponse} with its HTTP status.
 */
import type { PlanJson } from '../graph/plan.js';
import type { NodeMetricsSnapshot, SlotRuntimeMetrics } from './node-metrics.js';

export type { NodeMetricsSnapshot, PlanJson, SlotRuntimeMetrics };

/** A watermark in JSON: `null` = no watermark yet; {@link MAX_WATERMARK_JSON} = the end of input. */
export type WatermarkJson = number | null;

/** How the final watermark (`+Infinity`) is written in JSON (`Number.MAX_SAFE_INTEGER`). */
export const MAX_WATERMARK_JSON = Number.MAX_SAFE_INTEGER;

/** A job's state (Flink's `JobStatus` names; `CANCELED` with one L as Flink spells it). */
export type JobState =
  | 'INITIALIZING'
  | 'RUNNING'
  | 'RESTARTING'
  | 'FINISHED'
  | 'CANCELLING'
  | 'CANCELED'
  | 'FAILED';

/** A subtask's state (Flink's `ExecutionState` names, plus `FINISHING`: ending its operators). */
export type SubtaskState = 'CREATED' | 'RUNNING' | 'FINISHING' | 'FINISHED' | 'CANCELED' | 'FAILED';

/** Where the job runs. */
export type ExecutionMode =
  /** Every subtask in the job manager's thread. */
  | 'local'
  /** On worker-thread slots of the job manager's process (`run --slots N`). */
  | 'slots'
  /** On task-manager processes (`run --listen`). */
  | 'cluster';

/** Any error: status 400, 401, 404, 405, 409, 500 or 503. */
export interface ErrorResponse {
  /** Flink's shape: one or more messages. */
  errors: string[];
  /** The HTTP status, repeated. */
  status: number;
}

/** `GET /overview`: the cluster. */
export interface ClusterOverview {
  /** tidemark's version. */
  version: string;
  /** Task-manager processes connected (0 for a run in the job manager's process). */
  taskManagers: number;
  /** Slots the job runs on (1 for a local run). */
  slotsTotal: number;
  jobsRunning: number;
  jobsFinished: number;
  jobsCancelled: number;
  jobsFailed: number;
}

/** Subtasks per state. */
export type SubtaskCounts = Record<SubtaskState, number>;

/** One job in `GET /jobs`. */
export interface JobSummary {
  id: string;
  name: string;
  state: JobState;
  startTimestamp: number;
  /** `null` while the job runs. */
  endTimestamp: number | null;
  durationMs: number;
  mode: ExecutionMode;
  slots: number;
  /** Restarts after failures so far (Flink's `numRestarts`). */
  numRestarts: number;
  /** The attempt running now: 0 first, +1 per restart. */
  attempt: number;
  tasks: SubtaskCounts;
}

/** `GET /jobs` (and `GET /jobs/overview`). */
export interface JobsResponse {
  jobs: JobSummary[];
}

/**
 * A vertex's figures. Summed over subtasks: counts and rates; the minimum: watermarks; the
 * maximum: the time ratios (as Flink's graph colours) and `isBackPressured` (any subtask).
 */
export interface VertexMetrics {
  /** Records into the vertex's head operator. */
  numRecordsIn: number;
  /** Records out of the vertex's last operators (main outputs). */
  numRecordsOut: number;
  numRecordsInPerSecond: number;
  numRecordsOutPerSecond: number;
  /** Late records dropped by its windows and joins. */
  numLateRecordsDropped: number;
  /** Late records its windows sent to a late-data side output instead. */
  numLateRecordsToSideOutput: number;
  currentInputWatermark: WatermarkJson;
  currentOutputWatermark: WatermarkJson;
  /**
   * Watermark alignment (sources with `withWatermarkAlignment`): how far this vertex's watermark is
   * ahead of its group's minimum, in ms; `null` without alignment.
   */
  watermarkAlignmentDrift: number | null;
  /** Milliseconds per second spent processing (0..1000). */
  busyTimeMsPerSecond: number;
  /** Milliseconds per second waiting for input. */
  idleTimeMsPerSecond: number;
  /** Milliseconds per second waiting for room in output queues (or credit from downstream). */
  backPressuredTimeMsPerSecond: number;
  /** Some output channel is full (or out of credit) at the sample, or backpressured over half the last second. */
  isBackPressured: boolean;
}

/** One operator of a vertex (chain). */
export interface OperatorInfo {
  /** The stable operator id (`uid`, or derived from the graph). */
  id: string;
  name: string;
  kind: string;
}

/**
 * Why a vertex's watermark has not moved for a while (see {@link WatermarkStall}):
 * - `no-watermark`: the input holding the minimum never sent a watermark;
 * - `idle-input`: the input holding the minimum has sent no record for a while and is not marked
 *   idle (a source without `withIdleness`, or a partition that gets no data);
 * - `slow-input`: the input holding the minimum has records, but its watermark lags behind;
 * - `upstream`: the input holding the minimum comes from a vertex whose own watermark is stalled;
 * - `all-inputs-idle`: every input is marked idle: nothing moves event time;
 * - `alignment`: a source paused by watermark alignment (it is ahead of its group);
 * - `no-input`: a source that reads nothing (no splits, or its reader has nothing).
 */
export type StallReason =
  | 'no-watermark'
  | 'idle-input'
  | 'slow-input'
  | 'upstream'
  | 'all-inputs-idle'
  | 'alignment'
  | 'no-input';

/** A watermark that has not moved for at least the stall threshold (default 10 s). */
export interface WatermarkStall {
  /** When it last moved (or when the subtask started, if it never did). */
  since: number;
  stalledForMs: number;
  reason: StallReason;
  /** The input that holds it back, as in {@link InputWatermark.name}; `null` when not one input. */
  input: string | null;
  /** One sentence for people, e.g. "input 'Source: bids (2/2)' has sent no record for 31 s and is not marked idle". */
  message: string;
}

/** A vertex in `GET /jobs/:id`. */
export interface VertexSummary {
  id: number;
  name: string;
  parallelism: number;
  /** The least advanced state of its subtasks. */
  state: SubtaskState;
  tasks: SubtaskCounts;
  operators: OperatorInfo[];
  metrics: VertexMetrics;
  /** The oldest stall among its subtasks, if any. */
  watermarkStall: WatermarkStall | null;
}

/** `GET /jobs/:id`. */
export interface JobDetails extends JobSummary {
  now: number;
  vertices: VertexSummary[];
  checkpointing: CheckpointConfig | null;
  /** Job-level checkpoint figures (as in {@link CheckpointsResponse}). */
  checkpointCounts: CheckpointCounts;
  lastCheckpoint: CheckpointHistoryEntry | null;
  /** How many exceptions `GET /jobs/:id/exceptions` has. */
  numExceptions: number;
}

/** `GET /jobs/:id/plan`. */
export interface PlanResponse {
  jobId: string;
  plan: PlanJson;
}

/** One exception in `GET /jobs/:id/exceptions`. */
export interface ExceptionEntry {
  timestamp: number;
  /** The error's class name (`UserFunctionError`, ...). */
  exceptionName: string;
  /** tidemark's error code (`USER_FUNCTION_FAILED`, ...) when it has one. */
  code: string | null;
  message: string;
  /** The chain of causes and their stacks. */
  stacktrace: string;
  operatorId: string | null;
  operatorName: string | null;
  vertexId: number | null;
  subtaskIndex: number | null;
  /** `vertex name (i/p)`. */
  taskName: string | null;
  /** A printable, truncated form of the record being processed, when known. */
  record: string | null;
  /** The attempt that failed. */
  attempt: number;
  /** Whether the job restarted after it. */
  restarted: boolean;
}

/** One restart in `GET /jobs/:id/exceptions`. */
export interface RestartEntry {
  /** The attempt it started. */
  attempt: number;
  timestamp: number;
  delayMs: number;
  /** The checkpoint it resumed from; `null`: from the beginning. */
  fromCheckpoint: number | null;
  cause: string;
}

/** `GET /jobs/:id/exceptions`: newest first. */
export interface ExceptionsResponse {
  jobId: string;
  entries: ExceptionEntry[];
  restarts: RestartEntry[];
  /** Older entries were dropped (at most 100 are kept). */
  truncated: boolean;
}

/** Checkpointing as configured. */
export interface CheckpointConfig {
  intervalMs: number;
  mode: 'exactly-once' | 'at-least-once';
  timeoutMs: number;
  minPauseMs: number;
  maxConcurrent: number;
  tolerableFailures: number;
  retain: number;
  /** Where checkpoints go (a description, no secrets). */
  storage: string;
}

/** Checkpoint counts, with Flink's job-level metric names. */
export interface CheckpointCounts {
  numberOfCompletedCheckpoints: number;
  numberOfFailedCheckpoints: number;
  numberOfInProgressCheckpoints: number;
  /** Trigger to commit of the last completed one, ms; `null` before any. */
  lastCheckpointDuration: number | null;
  /** Bytes written by the last completed one (new chunks + metadata). */
  lastCheckpointSize: number | null;
  /** Bytes of the whole last completed one (shared chunks included). */
  lastCheckpointFullSize: number | null;
  lastCompletedCheckpointId: number | null;
  /** The checkpoint the run (or its latest restart) restored from. */
  restoredCheckpointId: number | null;
}

export type CheckpointStatus = 'IN_PROGRESS' | 'COMPLETED' | 'FAILED';

/** One checkpoint in the history. */
export interface CheckpointHistoryEntry {
  id: number;
  status: CheckpointStatus;
  savepoint: boolean;
  /** The final checkpoint of a finished bounded job. */
  final: boolean;
  triggerTimestamp: number;
  /** When the last subtask acknowledged; `null` before any did. */
  latestAckTimestamp: number | null;
  /** Completed or failed at; `null` while in progress. */
  endTimestamp: number | null;
  /** Trigger to commit (or to failure); for one in progress: so far. */
  durationMs: number;
  /** Bytes written for it (new chunks + metadata); `null` unless completed. */
  sizeBytes: number | null;
  fullSizeBytes: number | null;
  numSubtasks: number;
  numAcknowledgedSubtasks: number;
  failureMessage: string | null;
}

/** Minimum, average and maximum of a figure over the retained history's completed checkpoints. */
export interface MinMaxAvg {
  min: number;
  max: number;
  avg: number;
}

/** `GET /jobs/:id/checkpoints`. */
export interface CheckpointsResponse {
  jobId: string;
  /** `null`: checkpointing is off (the other fields are then zeros and empty). */
  config: CheckpointConfig | null;
  counts: CheckpointCounts;
  summary: { durationMs: MinMaxAvg; sizeBytes: MinMaxAvg } | null;
  latest: {
    completed: CheckpointHistoryEntry | null;
    savepoint: CheckpointHistoryEntry | null;
    failed: CheckpointHistoryEntry | null;
  };
  /** Newest first, at most 50. */
  history: CheckpointHistoryEntry[];
}

/**
 * One subtask's part of a checkpoint (Flink's subtask checkpoint statistics). Delays are measured
 * on the subtask's host and compared with the job manager's trigger time (clocks of several hosts
 * should be in sync).
 */
export interface SubtaskCheckpointStats {
  subtaskIndex: number;
  /** `pending`: not acknowledged yet; `acknowledged`: snapshot taken and written. */
  status: 'pending' | 'acknowledged';
  /** Trigger → the first barrier reached the subtask (a source: the trigger reached it): Flink's `checkpointStartDelay`. High means backpressure. */
  startDelayMs: number | null;
  /** First barrier → last barrier (exactly-once alignment, `checkpointAlignmentTime`); 0 for one input. */
  alignmentDurationMs: number | null;
  /** The synchronous part (the operators' snapshots). */
  syncDurationMs: number | null;
  /** The asynchronous part (encoding and writing the chunks). */
  asyncDurationMs: number | null;
  /** Trigger → acknowledged (written). */
  endToEndDurationMs: number | null;
  ackTimestamp: number | null;
  /** Bytes this subtask wrote. */
  sizeBytes: number | null;
  /** It had finished (its end state was snapshotted, no barrier). */
  finished: boolean;
}

/** `GET /jobs/:id/checkpoints/details/:cid`. */
export interface CheckpointDetails extends CheckpointHistoryEntry {
  jobId: string;
  vertices: {
    id: number;
    name: string;
    parallelism: number;
    numAcknowledgedSubtasks: number;
    subtasks: SubtaskCheckpointStats[];
  }[];
}

/** Where a subtask runs. */
export interface SubtaskLocation {
  /** Slot index (0 for a local run). */
  slot: number;
  /** `host:port` of its task manager; `null` in the job manager's process. */
  taskManager: string | null;
}

/** One subtask's figures (the vertex figures before aggregation). */
export type SubtaskMetricsJson = VertexMetrics;

/** One subtask in `GET /jobs/:id/vertices/:vid`. */
export interface SubtaskDetails {
  subtaskIndex: number;
  state: SubtaskState;
  attempt: number;
  location: SubtaskLocation;
  metrics: SubtaskMetricsJson;
  /** Every counter and gauge of each chained operator (Flink's operator scope). */
  operators: { id: string; name: string; metrics: Record<string, number> }[];
  /** When its figures were last sampled. */
  sampledAt: number;
}

/** `GET /jobs/:id/vertices/:vid`. */
export interface VertexDetails {
  jobId: string;
  id: number;
  name: string;
  parallelism: number;
  state: SubtaskState;
  now: number;
  operators: OperatorInfo[];
  metrics: VertexMetrics;
  subtasks: SubtaskDetails[];
}

/** One input of a subtask: an input channel from an upstream subtask, or a source split. */
export interface InputWatermark {
  kind: 'channel' | 'split';
  /** `Vertex name (i/p)` of the upstream subtask, or the split id. */
  name: string;
  /** The upstream vertex and subtask (channels only). */
  fromVertexId: number | null;
  fromSubtaskIndex: number | null;
  /** Which input of a two-input operator (1 or 2); 1 otherwise. */
  inputIndex: number;
  watermark: WatermarkJson;
  /** Marked idle: left out of the minimum. */
  idle: boolean;
  /** Counts in the minimum (active, and caught up after being idle). */
  aligned: boolean;
  /** The channel (or split) has ended. */
  ended: boolean;
  /** Milliseconds since its last record (sampled, ±0.5 s); `null`: no record yet. */
  lastRecordAgeMs: number | null;
  /** Records read from it so far. */
  numRecords: number;
  /** Events waiting in it (channels). */
  queued: number;
  /** It holds the subtask's input watermark (the lowest that counts). */
  holdsMinimum: boolean;
}

/** One subtask in `GET /jobs/:id/vertices/:vid/watermarks`. */
export interface SubtaskWatermarks {
  subtaskIndex: number;
  currentInputWatermark: WatermarkJson;
  currentOutputWatermark: WatermarkJson;
  watermarkAlignmentDrift: number | null;
  /** The subtask's output is idle. */
  idle: boolean;
  inputs: InputWatermark[];
  /** Index into `inputs` of the one that holds the minimum; `null` if none does. */
  heldBy: number | null;
  /** When its input (a source: output) watermark last moved. */
  lastAdvanceTimestamp: number;
  stall: WatermarkStall | null;
}

/** `GET /jobs/:id/vertices/:vid/watermarks`. */
export interface VertexWatermarks {
  jobId: string;
  vertexId: number;
  name: string;
  now: number;
  /** Stall threshold in ms. */
  stallThresholdMs: number;
  currentInputWatermark: WatermarkJson;
  currentOutputWatermark: WatermarkJson;
  watermarkAlignmentDrift: number | null;
  /** The subtask whose watermark is lowest, and why it is stuck if it is. */
  stall: WatermarkStall | null;
  subtasks: SubtaskWatermarks[];
}

/** Flink's back-pressure levels: ok (≤ 10 %), low (≤ 50 %), high. */
export type BackPressureLevel = 'ok' | 'low' | 'high';

/** `GET /jobs/:id/vertices/:vid/backpressure`. */
export interface VertexBackPressure {
  jobId: string;
  vertexId: number;
  /** Flink answers `ok` once sampled: figures here are always sampled. */
  status: 'ok';
  backpressureLevel: BackPressureLevel;
  now: number;
  subtasks: {
    subtask: number;
    backpressureLevel: BackPressureLevel;
    /** Share of time backpressured (0..1). */
    ratio: number;
    idleRatio: number;
    busyRatio: number;
    /** Output channels full or out of credit now. */
    fullOutputs: number;
    outputs: number;
  }[];
  /** The vertex downstream that is the likely cause (busy and not itself backpressured), if any. */
  cause: { vertexId: number; name: string } | null;
}

/** `POST /jobs/:id/savepoints` and `POST /jobs/:id/stop`: 202 Accepted. */
export interface TriggerResponse {
  /** Poll `GET /jobs/:id/savepoints/:requestId`. */
  'request-id': string;
}

/** Body of `POST /jobs/:id/savepoints` (all optional). */
export interface SavepointRequest {
  /** A caller's id: a repeated request with it answers the same operation. */
  triggerId?: string;
  /** Also cancel the job once the savepoint completed. */
  cancelJob?: boolean;
}

/** `GET /jobs/:id/savepoints/:triggerid` (Flink's asynchronous operation result). */
export interface SavepointStatus {
  status: { id: 'IN_PROGRESS' | 'COMPLETED' };
  /** Set once completed: the savepoint id, or why it failed. */
  operation: { savepointId: number; location: string } | { failureCause: string } | null;
}

/** `PATCH /jobs/:id?mode=cancel`: 202 Accepted. */
export interface CancelResponse {
  jobId: string;
  state: JobState;
}

/**
 * `GET /jobs/:id/vertices/:vid/tail`: each server-sent `data:` line (of the default `message`
 * event) is one of these: one record of the vertex's output. When the job ends, an `end` event
 * (`data: {"state": "FINISHED"}`) closes the stream.
 */
export interface TailEvent {
  /** Subtask that emitted it. */
  subtaskIndex: number;
  /** Record timestamp (event time); `null` if it has none. */
  timestamp: number | null;
  /** The record as JSON (a JSON string of its first 2 kB when its JSON is longer). */
  value: unknown;
  /**
   * Records of the vertex (any subtask) not shown to this listener since the previous event
   * (throttled: dropped in the subtasks or here).
   */
  skipped: number;
}

/** `GET /jobs/:id/runtime`: Node's own figures (see `runtime/observe/node-metrics.ts`). */
export interface RuntimeResponse {
  jobId: string;
  now: number;
  /** The job manager's main thread; `null` before the job started. */
  jobManager: NodeMetricsSnapshot | null;
  /** Each slot's worker thread, and the task-manager process it runs in (`process`); empty in one thread. */
  slots: (SlotRuntimeMetrics & {
    /** `host:port` of its task manager; `null` for a slot in the job manager's process. */
    taskManager: string | null;
  })[];
}
