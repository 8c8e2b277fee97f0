/**
 * Node's own metrics of a thread: event-loop delay, garbage collection pauses, heap; sampled once
 * per second at a negligible cost (a histogram timer every 20 ms, a GC observer, a timer a second).
 *
 * Every thread that runs a job's work has one sampler: the job manager's main thread, each slot's
 * worker thread, and the main thread of each task manager process. Slots send theirs with their
 * operator metrics (the `metrics` message of `protocol.ts`), a task manager adds its own process's
 * to its slots', and the job manager gathers them in {@link RuntimeMetrics}, which
 * `JobClient.metrics()` returns as `runtime` beside the operator metrics
 * (`JobMetricsSnapshot.runtime`):
 *
 * ```ts
 * const { runtime } = client.metrics();
 * runtime?.jobManager;             // NodeMetricsSnapshot of the job manager's main thread
 * runtime?.slots[0]?.thread;       // of slot 0's worker thread
 * runtime?.slots[0]?.process;      // of the task manager process slot 0 runs in (absent: in the job manager's)
 * ```
 *
 * Shape of a {@link NodeMetricsSnapshot} (plain data, figures of the last full second):
 *
 * | field | meaning |
 * | --- | --- |
 * | `timeMs` | when it was taken (epoch ms) |
 * | `windowMs` | the length of the window the rates and the delay cover (about 1000) |
 * | `thread` | `main` or `worker`; `threadId` Node's thread id, `pid` the process id |
 * | `eventLoopDelayMs.p50/p99/max/mean` | event-loop delay (`monitorEventLoopDelay`), ms |
 * | `eventLoopUtilization` | share of the window the loop was busy, 0..1 |
 * | `gc.count`, `gc.pauseMs` | GC pauses in the window and their total, ms |
 * | `gc.pauseMsPerSecond` | `gc.pauseMs` per second of window |
 * | `heap.usedBytes/totalBytes/limitBytes` | this thread's V8 heap (`v8.getHeapStatistics`) |
 * | `heap.externalBytes` | memory of C++ objects bound to this isolate's JS objects |
 * | `rssBytes` | resident set size of the whole process (same for every thread of it) |
 *
 * The job observer serves them as `GET /jobs/:id/runtime`, and `GET /metrics` as gauges labelled
 * by component, slot and task manager (`prometheus.ts`), e.g.
 * `tidemark_node_event_loop_delay_p99_seconds{component="slot",slot="0"}`,
 * `tidemark_node_heap_used_bytes{component="jobmanager"}`,
 * `tidemark_node_gc_pause_seconds_per_second{component="taskmanager",task_manager="host:port"}`.
 */
import {
  type EventLoopUtilization,
  monitorEventLoopDelay,
  PerformanceObserver,
  performance,
} from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { isMainThread, threadId } from 'node:worker_threads';

/** Node's figures of one thread over the last window (about a second). */
export interface NodeMetricsSnapshot {
  timeMs: number;
  windowMs: number;
  thread: 'main' | 'worker';
  threadId: number;
  pid: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number; mean: number };
  eventLoopUtilization: number;
  gc: { count: number; pauseMs: number; pauseMsPerSecond: number };
  heap: { usedBytes: number; totalBytes: number; limitBytes: number; externalBytes: number };
  rssBytes: number;
}

/** A slot's figures: its worker thread, and the task manager process it runs in. */
export interface SlotRuntimeMetrics {
  slot: number;
  /** The slot's worker thread. */
  thread: NodeMetricsSnapshot;
  /** The main thread of the task manager process that runs the slot; absent in the job manager's process. */
  process?: NodeMetricsSnapshot;
}

/** Node's figures of a run: the job manager's main thread and every slot (see the module's comment). */
export interface RuntimeMetrics {
  jobManager: NodeMetricsSnapshot;
  /** By slot index; empty when the job runs in the job manager's thread. */
  slots: SlotRuntimeMetrics[];
}

/** Samples Node's figures of this thread once per `intervalMs` (default 1000). */
export class NodeMetricsSampler {
  private readonly histogram = monitorEventLoopDelay({ resolution: 20 });
  private observer: PerformanceObserver | undefined;
  private timer: NodeJS.Timeout | undefined;
  private gcCount = 0;
  private gcPauseMs = 0;
  private windowStart = 0;
  private elu: EventLoopUtilization | undefined;
  private last: NodeMetricsSnapshot | undefined;

  constructor(private readonly intervalMs = 1000) {}

  get running(): boolean {
    return this.timer !== undefined;
  }

  start(): this {
    if (this.timer !== undefined) return this;
    this.histogram.reset();
    this.histogram.enable();
    this.gcCount = 0;
    this.gcPauseMs = 0;
    this.windowStart = performance.now();
    this.elu = performance.eventLoopUtilization();
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        this.gcCount++;
        this.gcPauseMs += e.duration;
      }
    });
    this.observer.observe({ entryTypes: ['gc'] });
    this.timer = setInterval(() => {
      this.last = this.take();
    }, this.intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.histogram.disable();
    this.observer?.disconnect();
    this.observer = undefined;
  }

  /**
   * The figures of the last full window; before the first window ends (or when stopped), of the
   * window so far.
   */
  snapshot(): NodeMetricsSnapshot {
    return this.last ?? this.peek();
  }

  /** The figures of the window so far, without starting a new one. */
  private peek(): NodeMetricsSnapshot {
    const now = performance.now();
    const windowMs = Math.max(1, now - this.windowStart);
    const h = this.histogram;
    const ms = (ns: number) => (Number.isFinite(ns) ? ns / 1e6 : 0);
    // NOTE: the histogram's timer fires every `resolution` ms: its delays include that much.
    const count = h.count;
    const heap = getHeapStatistics();
    return {
      timeMs: Date.now(),
      windowMs,
      thread: isMainThread ? 'main' : 'worker',
      threadId,
      pid: process.pid,
      eventLoopDelayMs: {
        p50: count === 0 ? 0 : ms(h.percentile(50)),
        p99: count === 0 ? 0 : ms(h.percentile(99)),
        max: count === 0 ? 0 : ms(h.max),
        mean: count === 0 ? 0 : ms(h.mean),
      },
      eventLoopUtilization:
        this.elu === undefined ? 0 : performance.eventLoopUtilization(this.elu).utilization,
      gc: {
        count: this.gcCount,
        pauseMs: this.gcPauseMs,
        pauseMsPerSecond: (this.gcPauseMs * 1000) / windowMs,
      },
      heap: {
        usedBytes: heap.used_heap_size,
        totalBytes: heap.total_heap_size,
        limitBytes: heap.heap_size_limit,
        externalBytes: heap.external_memory,
      },
      rssBytes: process.memoryUsage.rss(),
    };
  }

  /** The figures of the window so far, and starts the next one. */
  private take(): NodeMetricsSnapshot {
    const s = this.peek();
    this.histogram.reset();
    this.gcCount = 0;
    this.gcPauseMs = 0;
    this.windowStart = performance.now();
    this.elu = performance.eventLoopUtilization();
    return s;
  }
}

let shared: { sampler: NodeMetricsSampler; users: number } | undefined;

/**
 * This thread's sampler, started on the first call; `release()` stops it once every user released
 * it. One per thread, however many runs use it.
 */
export function acquireNodeMetrics(): { snapshot(): NodeMetricsSnapshot; release(): void } {
  shared ??= { sampler: new NodeMetricsSampler(), users: 0 };
  const s = shared;
  s.users++;
  s.sampler.start();
  let released = false;
  return {
    snapshot: () => s.sampler.snapshot(),
    release: () => {
      if (released) return;
      released = true;
      if (--s.users === 0) {
        s.sampler.stop();
        if (shared === s) shared = undefined;
      }
    },
  };
}
