/**
 * Every message between the parts of a distributed run, one documented discriminated union per
 * direction:
 *
 * - job manager ⇄ slot ({@link ToSlot}, {@link FromSlot}): deployment, checkpoints, results, the end;
 * - slot ⇄ slot ({@link SlotToSlot}): channel frames and credits, over a message port in one
 *   process or relayed by the task managers ({@link PeerMessage}) between processes;
 * - job manager ⇄ task manager process ({@link ToTaskManager}, {@link FromTaskManager});
 * - the handshake every TCP connection starts with ({@link Opening}, {@link Challenge},
 *   {@link Hello}, {@link HelloAnswer}): a mutual proof of the shared token.
 *
 * Slots exchange them as structured clones (`postMessage`); processes as msgpackr frames (`wire.ts`).
 */
import type { SerializedError } from '../../state/errors.js';
import type { IncrementalSnapshot, OperatorSubtaskState } from '../../state/snapshot/types.js';
import type { StateBackendConfig } from '../../state/state-backends.js';
import type { StorageSpec } from '../../state/storage/checkpoint-storage.js';
import type { DirtyGroups, WrittenSnapshot } from '../checkpoint/snapshot-writer.js';
import type { SubtaskMetrics } from '../metrics.js';
import type { NodeMetricsSnapshot } from '../observe/node-metrics.js';
import type { TaskSample } from '../observe/sample.js';
import type { TailRecord } from '../observe/tail.js';
import type { CheckpointTiming, TaskStatus } from '../task/task.js';
import type { Frame } from './frame-codec.js';

/** A subtask: `<vertex id>/<subtask index>`. */
export type TaskRef = string;

/** What a slot needs to build its part of the job. */
export interface SlotInit {
  slot: number;
  slots: number;
  /** The job id (default: the job name), for the slot's logs. */
  jobId?: string;
  /** Absolute path of the job module every slot imports. */
  jobPath: string;
  /**
   * Environment settings that override the job's (job name, parallelism, max parallelism, and
   * the state backend the job manager resolved, so that every slot keeps state where it does).
   */
  overrides: {
    jobName?: string;
    parallelism?: number;
    maxParallelism?: number;
    stateBackend?: StateBackendConfig;
  };
  /** Hash of the execution plan the job manager built: every slot must build the same. */
  planHash: string;
  /** The subtasks this slot runs. */
  tasks: TaskRef[];
  /** Where every subtask runs: task → slot. */
  placement: Record<TaskRef, number>;
  /** Per subtask index: operator id → restored state. */
  restore: [number, [string, OperatorSubtaskState][]][];
  attemptNumber: number;
  runId: string;
  checkpointMode: 'exactly-once' | 'at-least-once';
  /**
   * Where the slot writes its snapshots itself (the job's checkpoint storage and id); absent when
   * the storage cannot be opened from another thread (memory): the slot then sends them whole.
   */
  snapshots?: { jobId: string; storage: StorageSpec; chunkBytes?: number };
  /** Run the TypeScript sources (tsx) rather than dist/. */
  fromSource: boolean;
  /** The job is observed: time the steps and send task samples with the metrics. */
  observe?: boolean;
  /** Live tails on at the start: [vertex id, records per second of the vertex] (see `observe/tail.ts`). */
  tails?: [number, number][];
}

/** Job manager → slot. */
export type ToSlot =
  /** Checkpoint `checkpointId` for these tasks: sources inject its barrier; `final`: finished tasks snapshot at once. */
  | { type: 'trigger'; checkpointId: number; tasks: TaskRef[]; final?: boolean }
  /** Checkpoint `checkpointId` is committed: its sinks publish. */
  | { type: 'complete'; checkpointId: number }
  /** Checkpoint `checkpointId` was abandoned: stop aligning it. */
  | { type: 'abort'; checkpointId: number }
  /** A checkpoint of `task` was not stored: write these key groups again next time. */
  | { type: 'redirty'; task: TaskRef; groups: DirtyGroups[] }
  /** The job ended: publish the last transactions (`commit`), close the operators, answer `finalized`. */
  | { type: 'final'; commit: boolean }
  /** Stop the subtasks (the job was cancelled, or failed elsewhere). */
  | { type: 'cancel' }
  /** The job failed elsewhere: stop the subtasks. */
  | { type: 'fail'; error: SerializedError }
  /** Capture the output of vertex `vertexId` for the live tail (`rate` records a second), or stop (`null`). */
  | { type: 'tail'; vertexId: number; rate: number | null };

/** Slot → job manager. */
export type FromSlot =
  /** The job module is loaded and built the plan with this hash; the subtasks are deployed. */
  | { type: 'ready'; planHash: string }
  /** A subtask's status changed (the coordinator triggers checkpoints only while all run). */
  | { type: 'status'; task: TaskRef; status: TaskStatus }
  /** `task` took the synchronous part of checkpoint `checkpointId` (the job manager writes it). */
  | {
      type: 'ack';
      task: TaskRef;
      checkpointId: number;
      snapshots: IncrementalSnapshot[];
      timing?: CheckpointTiming;
    }
  /** `task` took its snapshot of checkpoint `checkpointId` and wrote it: where it is. */
  | {
      type: 'written';
      task: TaskRef;
      checkpointId: number;
      written: WrittenSnapshot[];
      timing?: CheckpointTiming & { asyncMs: number };
    }
  /** `task` could not write its snapshot of checkpoint `checkpointId`: the checkpoint fails. */
  | { type: 'write-failed'; task: TaskRef; checkpointId: number; reason: string }
  /** Values of result sinks: plain adds, and whole committed transactions. */
  /** Lines of print sinks; `final` ones are written after every slot's others (summaries). */
  | { type: 'stdout'; lines: string[]; final: string[] }
  | { type: 'results'; adds: [string, number, unknown][]; commits: [string, string, unknown[]][] }
  /**
   * The slot's current operator metrics (every 500 ms while it works, every second while it
   * idles, and at the end), Node's figures of its thread (`runtime`) and, added by the task
   * manager that relays it, of the task manager process's main thread (`process`).
   */
  | {
      type: 'metrics';
      subtasks: SubtaskMetrics[];
      runtime?: NodeMetricsSnapshot;
      /** Samples of the slot's subtasks, for the job observer (observed runs). */
      samples?: TaskSample[];
      process?: NodeMetricsSnapshot;
    }
  /** Every subtask of the slot finished (or was cancelled). */
  | { type: 'done'; status: 'FINISHED' | 'CANCELLED' }
  /** The answer to `final`: published and closed. */
  | { type: 'finalized' }
  /** A subtask failed; the job fails (and may restart). */
  | { type: 'failed'; error: SerializedError }
  /** Records captured for live tails since the last such message (every 100 ms while any). */
  | { type: 'tail'; records: TailRecord[] };

/** Between two slots. */
export type SlotToSlot =
  /** Events of channel `channel` (`<edge>:<producer>:<consumer>`), encoded (see frame-codec.ts). */
  | { type: 'frame'; channel: string; frame: Frame }
  /** The consumer read `n` events of `channel`: the producer may send that many more. */
  | { type: 'credit'; channel: string; n: number };

/** Job manager → task manager process. */
export type ToTaskManager =
  /**
   * Start these slots (`inits`) of deployment `deployment`; `owners[slot]` is the task manager
   * (index into `peers`) that runs each slot of the job, `peers` where each task manager listens
   * for data connections.
   */
  | {
      type: 'deploy';
      deployment: number;
      inits: SlotInit[];
      owners: number[];
      peers: { host: string; port: number }[];
    }
  /** A message for one of its slots. */
  | { type: 'to-slot'; slot: number; message: ToSlot }
  /** Kill a slot as a crash would (tests of recovery). */
  | { type: 'kill'; slot: number }
  /** Stop every slot (the run ended). */
  | { type: 'undeploy' }
  /**
   * The job ended (finished, failed for good, or cancelled): stop, and exit. A task manager whose
   * job manager goes without saying so looks for the job manager that leads next.
   */
  | { type: 'shutdown'; reason: string }
  /**
   * Are you there? Sent every heartbeat interval. Either side gives the other up when it has heard
   * nothing from it for `timeoutMs`: the job manager fails the attempt that used the task
   * manager, the task manager stops its slots.
   */
  | { type: 'heartbeat'; timeoutMs: number };

/**
 * Task manager process → job manager. Slot messages carry the deployment they belong to: those
 * of an earlier one (a slot stopping after a restart was decided) are dropped.
 */
export type FromTaskManager =
  /** A message of one of its slots. */
  | { type: 'slot'; deployment: number; slot: number; message: FromSlot }
  /** A slot is gone (its thread exited, or its peers are unreachable). */
  | { type: 'exit'; deployment: number; slot: number; reason: string }
  /** The answer to a heartbeat. */
  | { type: 'heartbeat' };

/** Between task managers: a slot-to-slot message relayed over their data connection. */
export interface PeerMessage {
  /** The deployment it belongs to: messages of an earlier one (before a restart) are dropped. */
  deployment: number;
  from: number;
  to: number;
  message: SlotToSlot;
}

/** Handshake, connecting side first (as soon as it connects): the protocol it speaks. */
export interface Opening {
  hello: string;
}

/** Handshake, accepting side first (as soon as a peer connects): the protocol and a challenge. */
export interface Challenge {
  hello: string;
  nonce: string;
}

/** Handshake, connecting side: who it is, its proof of the token, and its own challenge. */
export type Hello = { hello: string; proof: string; nonce: string } & (
  | /** A task manager joining a job manager: its slots and where its data connections go. */
  { role: 'taskmanager'; slots: number; dataHost: string; dataPort: number }
  /** A task manager opening a data connection to another (`from`: its index). */
  | { role: 'peer'; from: number }
);

/** Handshake, accepting side last: its own proof, or why the connection is refused. */
export type HelloAnswer = { proof: string } | { refused: string };

/** The id of the channel from producer subtask `i` to consumer subtask `j` on edge `edgeId`. */
export function channelId(edgeId: number, i: number, j: number): string {
  return `${edgeId}:${i}:${j}`;
}

/** The task ref of a subtask. */
export function taskRef(vertexId: number, subtaskIndex: number): TaskRef {
  return `${vertexId}/${subtaskIndex}`;
}
