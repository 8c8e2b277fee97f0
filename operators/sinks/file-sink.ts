/**
 * An exactly-once file sink (Flink's FileSink, simplified): each subtask writes a part file per
 * transaction — first as a hidden `.inprogress` file, renamed to a hidden `.pending` file when the
 * checkpoint barrier pre-commits it, and renamed to its visible name (`part-<run>-<attempt>-<subtask>-<n>`)
 * when the checkpoint completes.
 * Renames are atomic, and committing an already committed part is a no-op, so a commit repeated
 * after a restore never writes twice; parts of transactions that were never pre-committed by a
 * completed checkpoint are removed.
 *
 * NOTE: durability: a part's data is fsynced before it becomes pending, and the directory is
 * fsynced after each rename, so that after a machine crash (not only a killed process) a pending
 * part a completed checkpoint refers to is there to be published, and a published part stays so.
 * Parts have no size limit: lines are written as they come (512 at a time), never held whole.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../state/errors.js';
import { StorageError } from '../../state/storage/checkpoint-storage.js';
import type { SinkFactory } from '../data-stream.js';
import { toJson } from './format.js';
import { type TransactionContext, TwoPhaseCommitSink } from './two-phase-commit.js';

/** A part file of one transaction. */
interface PartTransaction {
  /** Visible name, e.g. `part-3f9a1c2b7d10-0-1-5.jsonl` (run, attempt, subtask, sequence). */
  name: string;
  /** Records written (0: nothing to publish). */
  count: number;
}

/** Options of {@link FileSink}. */
export interface FileSinkOptions<T> {
  /** How a record becomes a line (default: JSON). */
  format?: (value: T) => string;
  /** Extension of the part files (default `.jsonl`). */
  extension?: string;
}

/** The sink operator; build it with {@link FileSink.jsonLines} or {@link FileSink.lines}. */
export class FileSinkOperator<T> extends TwoPhaseCommitSink<T, PartTransaction> {
  private fd: number | undefined;
  private readonly format: (value: T) => string;
  private readonly extension: string;
  private pendingLines: string[] = [];

  constructor(
    private readonly dir: string,
    options: FileSinkOptions<T> = {},
  ) {
    super();
    if (typeof dir !== 'string' || dir === '')
      throw new InvalidArgumentError(`FileSink needs a directory (a non-empty string), got ${String(dir)}`);
    this.format = options.format ?? ((v: T) => toJson(v));
    this.extension = options.extension ?? '.jsonl';
  }

  override initializeState(): void {
    mkdirSync(this.dir, { recursive: true });
    super.initializeState();
  }

  /** Removes hidden parts of earlier attempts that will never be committed. */
  protected override recover(committing: readonly PartTransaction[]): void {
    const keep = new Set(committing.map((t) => `.${t.name}.pending`));
    const { runId, attemptNumber } = this.ctx.info;
    for (const f of readdirSync(this.dir)) {
      const m = /^\.part-([0-9a-z]+)-(\d+)-\d+-\d+\..*\.(inprogress|pending)$/.exec(f);
      if (m === null || keep.has(f)) continue;
      // Hidden parts of other runs or attempts will never be committed.
      if (m[1] !== runId || Number(m[2]) !== attemptNumber) rmSync(join(this.dir, f), { force: true });
    }
  }

  private inprogressPath(t: PartTransaction): string {
    return join(this.dir, `.${t.name}.inprogress`);
  }
  private pendingPath(t: PartTransaction): string {
    return join(this.dir, `.${t.name}.pending`);
  }

  protected beginTransaction(ctx: TransactionContext): PartTransaction {
    return {
      name: `part-${ctx.uniqueName}${this.extension}`,
      count: 0,
    };
  }

  protected invoke(txn: PartTransaction, value: T): void {
    if (this.fd === undefined) this.fd = openSync(this.inprogressPath(txn), 'w');
    this.pendingLines.push(`${this.format(value)}\n`);
    txn.count++;
    if (this.pendingLines.length >= 512) this.flush();
  }

  private flush(): void {
    if (this.pendingLines.length === 0 || this.fd === undefined) return;
    writeSync(this.fd, this.pendingLines.join(''));
    this.pendingLines = [];
  }

  protected preCommit(txn: PartTransaction): void {
    if (txn.count === 0) return;
    this.flush();
    fsyncSync(this.fd!);
    closeSync(this.fd!);
    this.fd = undefined;
    renameSync(this.inprogressPath(txn), this.pendingPath(txn));
    fsyncDirectory(this.dir);
  }

  protected commit(txn: PartTransaction): void {
    if (txn.count === 0) return;
    const pending = this.pendingPath(txn);
    const target = join(this.dir, txn.name);
    try {
      renameSync(pending, target);
      fsyncDirectory(this.dir);
    } catch (e) {
      // Already committed (by an earlier attempt or another subtask after a restore): done.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !existsSync(target))
        throw new StorageError(
          `file sink: part ${txn.name} of a completed checkpoint cannot be published in ${this.dir}: ${(e as Error).message}`,
          { cause: e },
        );
    }
  }

  protected abort(txn: PartTransaction): void {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
    rmSync(this.inprogressPath(txn), { force: true });
    rmSync(this.pendingPath(txn), { force: true });
  }
}

/** Makes the renames in a directory durable. */
function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Exactly-once file sinks for `stream.sinkTo(...)`. */
export const FileSink = {
  /** One JSON object per line, in part files under `dir`. */
  jsonLines<T>(dir: string): SinkFactory<T> {
    return { name: 'fileSink', create: () => new FileSinkOperator<T>(dir) };
  },
  /** One line per record, formatted by `format`, in part files under `dir`. */
  lines<T>(dir: string, format: (value: T) => string, extension = '.txt'): SinkFactory<T> {
    return { name: 'fileSink', create: () => new FileSinkOperator<T>(dir, { format, extension }) };
  },
};
