/**
 * A sample of one running subtask: cumulative counters and the current watermarks of its inputs,
 * taken by a timer in the thread that runs it (never on the per-record path). Plain data: slots
 * send theirs to the job manager with their metrics (a structured clone, or msgpackr between
 * hosts); the job observer turns successive samples into rates, ages and stalls.
 */
import { SourceOperator } from '../../operators/sources/source.js';
import type { SubtaskMetrics } from '../metrics.js';
import type { Task, TaskStatus } from '../task/task.js';

/** One input of a subtask at a sample: an input channel, or a source split. */
export interface InputSample {
  kind: 'channel' | 'split';
  name: string;
  fromVertexId: number | null;
  fromSubtaskIndex: number | null;
  inputIndex: number;
  /** `-Infinity`: none yet. */
  watermark: number;
  idle: boolean;
  aligned: boolean;
  ended: boolean;
  /** Records read from it so far. */
  records: number;
  queued: number;
}

/** One subtask at one moment (see the module comment). */
export interface TaskSample {
  vertexId: number;
  subtaskIndex: number;
  status: TaskStatus;
  attempt: number;
  /** Wall time of the sample. */
  sampledAt: number;
  /** Cumulative ms in steps, and not run for a full output. */
  busyMs: number;
  backPressuredMs: number;
  inputWatermark: number;
  outputWatermark: number;
  outputIdle: boolean;
  /** A source paused by watermark alignment. */
  paused: boolean;
  alignmentDrift: number | null;
  inputs: InputSample[];
  /** Output channels full (or out of credit) now, and all of them. */
  fullOutputs: number;
  outputs: number;
  operators: SubtaskMetrics[];
}

/**
 * Samples `task`. `pendingBackPressureMs`: time since the scheduler's last pass, counted as
 * backpressure if an output is full now (the scheduler adds it at its next pass).
 */
export function sampleTask(task: Task, pendingBackPressureMs: number): TaskSample {
  const members = task.members;
  const head = members[0]!;
  const tail = members[members.length - 1]!;
  const inputs: InputSample[] = [];
  let inputWatermark = head.watermark;
  let outputIdle = false;
  let paused = false;
  let alignmentDrift: number | null = null;
  const source = head.op instanceof SourceOperator ? (head.op as SourceOperator<unknown>) : undefined;
  if (source !== undefined) {
    const o = source.observe();
    inputWatermark = o.combined;
    outputIdle = o.idle;
    paused = o.paused;
    alignmentDrift = o.alignmentDrift;
    for (const s of o.splits)
      inputs.push({
        kind: 'split',
        name: s.splitId,
        fromVertexId: null,
        fromSubtaskIndex: null,
        inputIndex: 1,
        watermark: s.watermark,
        idle: s.idle,
        aligned: !s.idle,
        ended: task.status === 'finished',
        records: s.records,
        queued: 0,
      });
  } else {
    const valve = task.inputProcessor?.valve;
    if (valve !== undefined) {
      inputWatermark = valve.lastWatermark;
      outputIdle = valve.lastIdle;
    }
    for (const c of task.inputs) {
      const label = c.label;
      const arrow = label.indexOf(' -> ');
      inputs.push({
        kind: 'channel',
        name: arrow < 0 ? label : label.slice(0, arrow),
        fromVertexId: c.fromVertex,
        fromSubtaskIndex: c.fromSubtask,
        inputIndex: c.inputIndex,
        watermark: valve?.channelWatermark(c.index) ?? Number.NEGATIVE_INFINITY,
        idle: valve?.isChannelIdle(c.index) ?? false,
        aligned: valve?.isChannelAligned(c.index) ?? false,
        ended: c.ended,
        records: c.records,
        queued: c.size,
      });
    }
  }
  let outputs = 0;
  for (const w of task.writers.values()) outputs += w.channels.length;
  const full = task.outputGate.full;
  return {
    vertexId: task.vertex.id,
    subtaskIndex: task.subtaskIndex,
    status: task.status,
    attempt: task.host.attemptNumber,
    sampledAt: Date.now(),
    busyMs: task.busyMs,
    backPressuredMs:
      task.backPressuredMs + (full > 0 && task.status === 'running' ? pendingBackPressureMs : 0),
    inputWatermark,
    outputWatermark: tail.watermark,
    outputIdle,
    paused,
    alignmentDrift,
    inputs,
    fullOutputs: full,
    outputs,
    operators: task.metrics(),
  };
}
