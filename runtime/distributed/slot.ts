/**
 * A slot (worker thread): imports the job module, builds the same job graph as the job manager
 * (checked by plan hash), runs its subtasks (a `SubtaskRunner`), connects them to the subtasks of
 * other slots with remote channels, and answers the job manager's messages.
 */
import { createHash } from 'node:crypto';
import { type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import type { ResultSink } from '../../operators/contract.js';
import { serializeError } from '../../state/errors.js';
import type { IncrementalSnapshot, OperatorSubtaskState } from '../../state/snapshot/types.js';
import type { CheckpointStorage } from '../../state/storage/checkpoint-storage.js';
import { openStorageSpec } from '../../state/storage/open-storage.js';
import { SnapshotWriter } from '../checkpoint/snapshot-writer.js';
import { SystemClock } from '../clock.js';
import { JobLifecycle } from '../execution/lifecycle.js';
import { BufferedStdout, ResultCollector } from '../execution/results.js';
import { SubtaskRunner } from '../execution/subtask-runner.js';
import type { Placement } from '../execution/wiring.js';
import type { JobGraph, StreamEdge } from '../graph/job-graph.js';
import { planToJson } from '../graph/plan.js';
import { errorFields, jobLogger, type Logger } from '../log.js';
import { acquireNodeMetrics } from '../observe/node-metrics.js';
import type { TailRecord } from '../observe/tail.js';

import type { Channel } from '../task/channel.js';
import type { CheckpointTiming, Task } from '../task/task.js';
import type { OutChannel } from '../task/writers.js';
import {
  channelId,
  type FromSlot,
  type SlotInit,
  type SlotToSlot,
  type ToSlot,
  taskRef,
} from './protocol.js';
import { RemoteInChannel, RemoteOutChannel } from './remote-channels.js';

/**
 * A channel to another slot may have this many times a local channel's capacity in flight.
 *
 * NOTE: its credits come back a thread hop (or a network round trip) later, while a local
 * channel's are free at once: with one capacity's worth in flight a channel between two threads
 * was bound by that round trip (bench/channels.ts: 4x gave 2.2-2.4 M bids/s between threads
 * against 2.0, and 2.8-3.1 M numbers/s between processes against 2.5).
 */
export const REMOTE_CREDITS_PER_LOCAL = 4;

/** Partial frames and credits are sent at least this often while a slot is busy (see `afterPass`). */
const FLUSH_INTERVAL_MS = 2;

/** Captured records of live tails are sent this often. */
const TAIL_FLUSH_MS = 100;
/** At most this many captured records wait for a flush (more are dropped). */
const MAX_TAIL_BUFFER = 1000;

/** The hash every process computes of the plan: equal plans, equal hashes. */
export function planHash(graph: JobGraph): string {
  return createHash('sha256')
    .update(JSON.stringify(planToJson(graph)))
    .digest('hex')
    .slice(0, 16);
}

/** Results reported by this slot's sinks, forwarded to the job manager in batches. */
class ForwardingResults extends ResultCollector implements ResultSink {
  adds: [string, number, unknown][] = [];
  commits: [string, string, unknown[]][] = [];
  override add(sinkId: string, subtaskIndex: number, value: unknown): void {
    this.adds.push([sinkId, subtaskIndex, value]);
  }
  override commit(sinkId: string, transactionId: string, values: readonly unknown[]): void {
    this.commits.push([sinkId, transactionId, [...values]]);
  }
}

/** One slot's side of a distributed run. */
export class Slot implements Placement {
  readonly runner: SubtaskRunner;
  private readonly lifecycle: JobLifecycle;
  private readonly local: Set<string>;
  private readonly outs = new Map<string, RemoteOutChannel>();
  private readonly ins = new Map<string, RemoteInChannel>();
  private readonly results = new ForwardingResults();
  private readonly tasksByRef = new Map<string, Task>();
  private lastMetrics = 0;
  /** When partial frames and credits were last sent (`performance.now()`). */
  private lastSend = 0;
  /** Where this slot writes its snapshots (see `SlotInit.snapshots`). */
  private readonly storage: CheckpointStorage | undefined;
  private storageOpened: Promise<void> | undefined;
  private readonly writer: SnapshotWriter | undefined;
  /** This slot's logger: the job, the slot, and per record the vertex and subtask. */
  readonly log: Logger;
  /** Node's figures of this thread (sent with the metrics). */
  private readonly nodeMetrics = acquireNodeMetrics();
  /** Sends the metrics of an idle slot (`afterPass` sends those of a busy one). */
  private readonly idleMetrics: NodeJS.Timeout;
  /** Live tails on here: vertex id → records per second. */
  private readonly tails = new Map<number, number>();
  private tailRecords: TailRecord[] = [];
  private tailTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly init: SlotInit,
    readonly graph: JobGraph,
    /** Ports to the other slots, by slot index (this slot's own entry is unused). */
    private readonly peers: (MessagePort | undefined)[],
    private readonly send: (msg: FromSlot) => void,
  ) {
    this.local = new Set(init.tasks);
    this.idleMetrics = setInterval(() => {
      if (Date.now() - this.lastMetrics >= 1000) this.sendMetrics();
    }, 1000);
    this.idleMetrics.unref();
    this.log = jobLogger(init.jobId ?? graph.jobName, { component: 'slot', slot: init.slot });
    if (init.snapshots !== undefined) {
      this.storage = openStorageSpec(init.snapshots.storage);
      this.storageOpened = this.storage.open();
      // An unusable storage fails the checkpoints (as the job manager's would), not the slot.
      this.storageOpened.catch(() => {});
      this.writer = new SnapshotWriter(this.storage, init.snapshots.jobId, init.snapshots.chunkBytes);
    }
    const restore: Map<string, OperatorSubtaskState>[] = [];
    for (const [i, entries] of init.restore) restore[i] = new Map(entries);
    this.lifecycle = new JobLifecycle(graph.jobName);
    this.runner = new SubtaskRunner(graph, {
      lifecycle: this.lifecycle,
      clock: new SystemClock(),
      // NOTE: lines go to the job manager with the slot's other messages, not to this thread's
      // process.stdout (which Node passes to the main thread on a channel of its own): so they
      // come before the slot's 'done', and the job manager can write summaries after them all.
      stdout: new BufferedStdout((lines, final) => this.send({ type: 'stdout', lines, final })),
      results: this.results,
      attemptNumber: init.attemptNumber,
      runId: init.runId,
      checkpointMode: init.checkpointMode,
      restore,
      placement: this,
      policy: undefined,
      budget: 512,
      sliceMs: 10,
      acknowledge: (task, id, snapshots, timing) => this.acknowledge(task, id, snapshots, timing),
      onTaskStatus: (task) => this.onTaskStatus(task),
      afterPass: () => this.afterPass(),
      snapshotWrites: this.writer,
      // NOTE: a slot waits for frames from other slots: nothing to run is not a stall here.
      detectStalls: false,
      observe: init.observe === true,
    });
    for (const t of this.runner.tasks) this.tasksByRef.set(taskRef(t.vertex.id, t.subtaskIndex), t);
    for (const [vertexId, rate] of init.tails ?? []) this.setTail(vertexId, rate);
    this.log.debug(`slot ${init.slot}: deployed ${this.runner.tasks.map((t) => t.describe()).join(', ')}`, {
      attempt: init.attemptNumber,
    });
    peers.forEach((port, slot) => {
      if (port === undefined) return;
      port.on('message', (m: SlotToSlot) => this.onPeer(m));
      void slot;
    });
  }

  // ---- Placement ----

  isLocal(vertexId: number, subtaskIndex: number): boolean {
    return this.local.has(taskRef(vertexId, subtaskIndex));
  }

  private vertexOfNode(node: StreamEdge['target']): number {
    return this.graph.vertices.find((v) => v.nodes.includes(node))!.id;
  }

  outChannel(edge: StreamEdge, producer: Task, consumerIndex: number): OutChannel {
    const id = channelId(edge.id, producer.subtaskIndex, consumerIndex);
    const slot = this.init.placement[taskRef(this.vertexOfNode(edge.target), consumerIndex)]!;
    const c = new RemoteOutChannel(
      id,
      this.peers[slot]!,
      producer.outputGate,
      REMOTE_CREDITS_PER_LOCAL * this.graph.bufferCapacity,
      `${producer.describe()} -> ${edge.target.name} (${consumerIndex + 1}/${edge.target.parallelism})`,
    );
    this.outs.set(id, c);
    return c;
  }

  inChannel(edge: StreamEdge, producerIndex: number, consumer: Task, label: string): Channel {
    const id = channelId(edge.id, producerIndex, consumer.subtaskIndex);
    const slot = this.init.placement[taskRef(this.vertexOfNode(edge.source), producerIndex)]!;
    const c = new RemoteInChannel(
      id,
      this.peers[slot]!,
      REMOTE_CREDITS_PER_LOCAL * this.graph.bufferCapacity,
      consumer.inputGate,
      edge.inputIndex,
      label,
    );
    this.ins.set(id, c);
    return c;
  }

  /**
   * After a pass of the scheduler: takes the frames and credits that came, and sends the partial
   * frames and the credits of what was read, unless the pass made progress and the last sending
   * was less than {@link FLUSH_INTERVAL_MS} ago.
   *
   * NOTE: a full frame goes at once (`RemoteOutChannel.push`). Sending partial frames and credits
   * after every pass made a message per few dozen records between busy slots, and waking the other
   * slot for each: a keyed job crossing half its records ran 2.6 times slower on two slots than on
   * one thread. Batched, a partial frame waits at most a couple of milliseconds (Flink's buffer
   * timeout is 100 ms), and nothing waits once the slot has nothing else to do.
   */
  afterPass(progressed = false): void {
    const now = performance.now();
    if (!progressed || now - this.lastSend >= FLUSH_INTERVAL_MS) {
      this.lastSend = now;
      for (const c of this.outs.values()) c.flush();
      for (const c of this.ins.values()) c.returnCredits();
    }
    // NOTE: frames and credits are taken from the ports here, between passes, rather than when
    // the loop yields to the event loop (every few ms): a round trip of credits costs a pass.
    for (const port of this.peers) {
      if (port === undefined) continue;
      for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port))
        this.onPeer(m.message as SlotToSlot);
    }
    this.flushResults();
    const wall = Date.now();
    if (wall - this.lastMetrics >= 500) this.sendMetrics(wall);
  }

  /** A task took a snapshot: write it here and say where it is, or send it whole (no writer). */
  acknowledge(
    task: Task,
    checkpointId: number,
    snapshots: IncrementalSnapshot[],
    timing: CheckpointTiming,
  ): void {
    this.afterPass();
    const ref = taskRef(task.vertex.id, task.subtaskIndex);
    const w = this.writer;
    if (w === undefined) {
      this.send({ type: 'ack', task: ref, checkpointId, snapshots, timing });
      return;
    }
    const asyncStart = performance.now();
    this.openStorage()
      .then(() => w.writeAll(checkpointId, snapshots))
      .then(
        (written) =>
          this.send({
            type: 'written',
            task: ref,
            checkpointId,
            written,
            timing: { ...timing, asyncMs: performance.now() - asyncStart },
          }),
        (e: unknown) =>
          this.send({
            type: 'write-failed',
            task: ref,
            checkpointId,
            reason: (e as Error).message ?? String(e),
          }),
      );
  }

  /**
   * The storage, opened. NOTE: an open that failed (the storage was unreachable when the slot
   * started) is tried again by the next snapshot, so the checkpoints after an outage succeed.
   */
  private openStorage(): Promise<void> {
    const opened = this.storageOpened!;
    return opened.catch(() => {
      if (this.storageOpened === opened) {
        this.storageOpened = this.storage!.open();
        this.storageOpened.catch(() => {});
      }
      return this.storageOpened;
    });
  }

  onTaskStatus(task: Task): void {
    if (this.log.enabled('debug'))
      this.log.debug(`${task.describe()} is ${task.status}`, {
        vertex: task.vertex.name,
        subtask: task.subtaskIndex,
        status: task.status,
      });
    this.send({ type: 'status', task: taskRef(task.vertex.id, task.subtaskIndex), status: task.status });
  }

  // ---- messages ----

  private onPeer(m: SlotToSlot): void {
    if (m.type === 'frame') {
      const c = this.ins.get(m.channel);
      if (c !== undefined) {
        c.receive(m.frame);
        this.runner.wakeUp();
      }
    } else {
      const c = this.outs.get(m.channel);
      if (c?.credit(m.n) === true) this.runner.wakeUp();
    }
  }

  /** A message from the job manager. */
  onManager(m: ToSlot): void {
    switch (m.type) {
      case 'trigger':
        for (const ref of m.tasks) {
          const t = this.tasksByRef.get(ref);
          if (m.final === true) t?.triggerFinalCheckpoint(m.checkpointId);
          else t?.triggerCheckpoint(m.checkpointId);
        }
        this.runner.wakeUp();
        break;
      case 'complete':
        // Finished tasks too (see `CheckpointCoordinator.complete`).
        for (const t of this.runner.tasks)
          if (t.status === 'running' || t.status === 'finishing' || t.status === 'finished')
            t.notifyCheckpointComplete(m.checkpointId);
        this.runner.wakeUp();
        break;
      case 'abort':
        for (const t of this.runner.tasks) t.abortCheckpoint(m.checkpointId);
        this.runner.wakeUp();
        break;
      case 'redirty':
        this.tasksByRef.get(m.task)?.redirty(m.groups);
        break;
      case 'final':
        (m.commit ? this.runner.publish() : Promise.resolve())
          .finally(() => this.close())
          .then(
            () => {
              this.flushResults();
              this.send({ type: 'finalized' });
            },
            (e: unknown) => this.send({ type: 'failed', error: serializeError(e) }),
          );
        break;
      case 'cancel':
      case 'fail':
        this.lifecycle.cancel();
        break;
      case 'tail':
        this.setTail(m.vertexId, m.rate ?? undefined);
        break;
    }
  }

  /** Turns a live tail on or off here; captured records go out every {@link TAIL_FLUSH_MS}. */
  private setTail(vertexId: number, rate: number | undefined): void {
    if (rate === undefined) this.tails.delete(vertexId);
    else this.tails.set(vertexId, rate);
    this.runner.tail(vertexId, rate, (r) => {
      if (this.tailRecords.length < MAX_TAIL_BUFFER) this.tailRecords.push(r);
    });
    if (this.tails.size > 0 && this.tailTimer === undefined) {
      this.tailTimer = setInterval(() => this.flushTail(), TAIL_FLUSH_MS);
      this.tailTimer.unref();
    } else if (this.tails.size === 0 && this.tailTimer !== undefined) {
      clearInterval(this.tailTimer);
      this.tailTimer = undefined;
      this.flushTail();
    }
  }

  private flushTail(): void {
    if (this.tailRecords.length === 0) return;
    const records = this.tailRecords;
    this.tailRecords = [];
    this.send({ type: 'tail', records });
  }

  /** Closes the operators, and the storage once its writes are done. */
  private async close(): Promise<void> {
    clearInterval(this.idleMetrics);
    if (this.tailTimer !== undefined) clearInterval(this.tailTimer);
    this.tailTimer = undefined;
    this.nodeMetrics.release();
    this.runner.close();
    await this.writer?.settled();
    await this.storage?.close().catch(() => {});
  }

  private flushResults(): void {
    this.runner.flush();
    const r = this.results;
    if (r.adds.length === 0 && r.commits.length === 0) return;
    this.send({ type: 'results', adds: r.adds, commits: r.commits });
    r.adds = [];
    r.commits = [];
  }

  sendMetrics(now = Date.now()): void {
    this.lastMetrics = now;
    this.send({
      type: 'metrics',
      subtasks: this.runner.metrics(),
      runtime: this.nodeMetrics.snapshot(),
      ...(this.init.observe === true ? { samples: this.runner.samples() } : {}),
    });
  }

  /** Runs the slot's subtasks until they finish (or the run is cancelled or fails). */
  async run(): Promise<void> {
    // NOTE: observed, samples go out every 500 ms also while the loop sleeps (nothing to run:
    // an idle input, or a full output waiting for credit), so the job manager sees that too.
    const sampler =
      this.init.observe === true
        ? setInterval(() => {
            if (Date.now() - this.lastMetrics >= 500) this.sendMetrics();
          }, 500)
        : undefined;
    sampler?.unref();
    try {
      await this.runner.run();
    } catch (e) {
      this.lifecycle.fail(e);
    } finally {
      if (sampler !== undefined) clearInterval(sampler);
    }
    if (this.lifecycle.failed) {
      const e = this.lifecycle.error();
      this.log.debug(`slot ${this.init.slot} failed: ${e.message}`, errorFields(e));
    }
    this.afterPass();
    if (this.lifecycle.stopped) await this.close();
    if (this.lifecycle.failed) this.send({ type: 'failed', error: serializeError(this.lifecycle.error()) });
    else {
      this.sendMetrics();
      this.send({ type: 'done', status: this.lifecycle.cancelled ? 'CANCELLED' : 'FINISHED' });
      // NOTE: a failure after the subtasks finished (a finished sink's commit, which a checkpoint
      // of it waits for) still fails the job.
      this.lifecycle.onStop(() => {
        if (this.lifecycle.failed)
          this.send({ type: 'failed', error: serializeError(this.lifecycle.error()) });
      });
    }
  }
}
