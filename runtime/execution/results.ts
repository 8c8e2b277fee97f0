/**
 * What a run produces: its result, the values of result sinks (exactly once for committed sinks),
 * and print sinks' lines on standard output.
 */
import type { LineWriter, ResultSink } from '../../operators/contract.js';
import type { JobMetricsSnapshot } from '../metrics.js';

/** What a finished job produced. */
export interface JobResult {
  readonly jobName: string;
  readonly status: 'FINISHED' | 'CANCELLED';
  readonly durationMs: number;
  readonly metrics: JobMetricsSnapshot;
  /** Values reported by result sinks, by sink id, in arrival order. */
  readonly results: ReadonlyMap<string, unknown[]>;
}

/**
 * Collects values of result sinks; committed (exactly-once) sinks commit whole transactions,
 * deduplicated by transaction id, so a transaction committed again after a restore counts once.
 */
export class ResultCollector implements ResultSink {
  readonly values = new Map<string, unknown[]>();
  private readonly committed = new Set<string>();
  add(sinkId: string, _subtaskIndex: number, value: unknown): void {
    let list = this.values.get(sinkId);
    if (list === undefined) this.values.set(sinkId, (list = []));
    list.push(value);
  }
  commit(sinkId: string, transactionId: string, values: readonly unknown[]): void {
    const id = `${sinkId}/${transactionId}`;
    let list = this.values.get(sinkId);
    if (list === undefined) this.values.set(sinkId, (list = []));
    if (this.committed.has(id)) return;
    this.committed.add(id);
    list.push(...values);
  }
}

/** Buffers lines and writes them to standard output in batches. */
export class BufferedStdout implements LineWriter {
  private lines: string[] = [];
  writeLine(line: string): void {
    this.lines.push(line);
    if (this.lines.length >= 4096) this.flush();
  }
  flush(): void {
    if (this.lines.length === 0) return;
    process.stdout.write(`${this.lines.join('\n')}\n`);
    this.lines = [];
  }
}
