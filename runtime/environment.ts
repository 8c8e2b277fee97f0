/**
 * The execution environment users build jobs with: the stream API of `operators/` plus execution
 * (`execute`, `executeAsync`) and the job graph (`getJobGraph`, `getExecutionPlan`).
 */
import type { CollectedStream } from '../operators/data-stream.js';
import { type EnvironmentOptions, StreamEnvironment } from '../operators/environment.js';
import { buildJobGraph, type JobGraph, type JobGraphOptions } from './graph/job-graph.js';
import { formatPlan, type PlanFormat } from './graph/plan.js';
import { type ExecutionOptions, type JobResult, LocalExecutor } from './local-executor.js';
import type { JobMetricsSnapshot } from './metrics.js';

/** Options of `execute`. */
export interface ExecuteOptions extends ExecutionOptions, JobGraphOptions {}

/** A running job. */
export interface JobClient {
  readonly jobName: string;
  /** Settles when the job ends: resolves when finished or cancelled, rejects when it fails. */
  readonly result: Promise<JobResult>;
  /** Stops the job. */
  cancel(): void;
  /** Current metrics. */
  metrics(): JobMetricsSnapshot;
}

/** Builds and runs a streaming job. */
export class StreamExecutionEnvironment extends StreamEnvironment {
  /** A new environment. */
  static create(options: EnvironmentOptions = {}): StreamExecutionEnvironment {
    return new StreamExecutionEnvironment(options);
  }

  /** The validated job graph (operators, edges, chains). */
  getJobGraph(options: JobGraphOptions = {}): JobGraph {
    return buildJobGraph(this, options);
  }

  /** The execution plan as text, Graphviz dot or JSON. */
  getExecutionPlan(format: PlanFormat = 'text', options: JobGraphOptions = {}): string {
    return formatPlan(this.getJobGraph(options), format);
  }

  /** Starts the job and returns a client for it. */
  executeAsync(options: ExecuteOptions = {}): JobClient {
    const graph = this.getJobGraph(options);
    const executor = new LocalExecutor(graph, options);
    const handles = this.collectedStreams;
    const result = executor.run().then((r) => {
      fillCollected(handles, r);
      return r;
    });
    return {
      jobName: graph.jobName,
      result,
      cancel: () => executor.cancel(),
      metrics: () => executor.metrics(),
    };
  }

  /** Runs the job to its end (a bounded job) and returns its result. */
  execute(options: ExecuteOptions = {}): Promise<JobResult> {
    return this.executeAsync(options).result;
  }
}

function fillCollected(handles: readonly CollectedStream<unknown>[], result: JobResult): void {
  for (const h of handles) h.values = [...(result.results.get(h.id) ?? [])];
}
