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

/** Writes lines to this process's standard output. */
export function writeStdoutLines(lines: readonly string[]): void {
  if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * Buffers lines and writes them in batches: to standard output, or (in a slot) to `out`, which
 * sends them to the job manager. Final lines (see `LineWriter.writeFinalLine`) go with the batch
 * they were written in, marked as final.
 */
export class BufferedStdout implements LineWriter {
  private lines: string[] = [];
  private finals: string[] = [];
  constructor(
    private readonly out: (lines: string[], finals: string[]) => void = (lines, finals) =>
      writeStdoutLines(finals.length === 0 ? lines : [...lines, ...finals]),
  ) {}
  writeLine(line: string): void {
    this.lines.push(line);
    if (this.lines.length >= 4096) this.flush();
  }
  writeFinalLine(line: string): void {
    this.finals.push(line);
  }
  flush(): void {
    if (this.lines.length === 0 && this.finals.length === 0) return;
    const { lines, finals } = this;
    this.lines = [];
    this.finals = [];
    this.out(lines, finals);
  }
}
