/**
 * The messages between the job manager (the thread that runs the job) and its slots (worker
 * threads, each running some subtasks). One discriminated union per direction.
 */
import type { SerializedError } from '../../state/errors.js';
import type { IncrementalSnapshot, OperatorSubtaskState } from '../../state/snapshot/types.js';
import type { TaskStatus } from '../task/task.js';

/** A subtask: `<vertex id>/<subtask index>`. */
export type TaskRef = string;

/** What a slot needs to build its part of the job. */
export interface SlotInit {
  slot: number;
  slots: number;
  /** Absolute path of the job module every slot imports. */
  jobPath: string;
  /** Environment settings that override the job's (job name, parallelism, max parallelism). */
  overrides: { jobName?: string; parallelism?: number; maxParallelism?: number };
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
  /** Run the TypeScript sources (tsx) rather than dist/. */
  fromSource: boolean;
}

/** Job manager → slot. */
export type ToSlot =
  /** Checkpoint `checkpointId` for these tasks: sources inject its barrier; `final`: finished tasks snapshot at once. */
  | { type: 'trigger'; checkpointId: number; tasks: TaskRef[]; final?: boolean }
  | { type: 'complete'; checkpointId: number }
  | { type: 'abort'; checkpointId: number }
  | { type: 'redirty'; task: TaskRef; snapshots: IncrementalSnapshot[] }
  | { type: 'final'; commit: boolean }
  | { type: 'cancel' }
  | { type: 'fail'; error: SerializedError };

/** Operator metrics of one subtask. */
export interface SubtaskMetrics {
  operatorId: string;
  operatorName: string;
  isSource: boolean;
  isSink: boolean;
  parallelism: number;
  values: Record<string, number>;
}

/** Slot → job manager. */
export type FromSlot =
  | { type: 'ready'; planHash: string }
  | { type: 'status'; task: TaskRef; status: TaskStatus }
  | { type: 'ack'; task: TaskRef; checkpointId: number; snapshots: IncrementalSnapshot[] }
  | { type: 'results'; adds: [string, number, unknown][]; commits: [string, string, unknown[]][] }
  | { type: 'metrics'; subtasks: SubtaskMetrics[] }
  | { type: 'done'; status: 'FINISHED' | 'CANCELLED' }
  | { type: 'finalized' }
  | { type: 'failed'; error: SerializedError };

/** Between two slots: a batch of channel events, or credits for a channel. */
export type SlotToSlot =
  | { type: 'frame'; channel: string; data: Uint8Array }
  | { type: 'credit'; channel: string; n: number };

/** The id of the channel from producer subtask `i` to consumer subtask `j` on edge `edgeId`. */
export function channelId(edgeId: number, i: number, j: number): string {
  return `${edgeId}:${i}:${j}`;
}

/** The task ref of a subtask. */
export function taskRef(vertexId: number, subtaskIndex: number): TaskRef {
  return `${vertexId}/${subtaskIndex}`;
}
