/**
 * A replayable file source: the lines (or JSON lines) of one or more files, one split per file,
 * whose position is the byte offset of the next line — so a restored job resumes exactly where
 * its checkpoint was. Optionally keeps watching the files for appended lines (unbounded).
 *
 * NOTE: files are read with small synchronous reads (64 KiB): local files answer in microseconds,
 * and a reader that never waits for a Promise keeps the per-record path free of them.
 */
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, InvalidRecordError } from '../../state/errors.js';
import {
  END_OF_INPUT,
  type InputStatus,
  MORE_AVAILABLE,
  NOTHING_AVAILABLE,
  type ReaderOutput,
  type Source,
  type SourceReader,
  type SourceReaderContext,
  type SourceSplit,
} from './source.js';

/** One file and how far it was read. */
export interface FileSplit extends SourceSplit {
  readonly path: string;
  /** Byte offset of the next line to read. */
  offset: number;
}

/** Options of {@link FileSource}. */
export interface FileSourceOptions {
  /** Keep watching for appended lines every this many ms (the source never ends). */
  monitorIntervalMs?: number;
}

const CHUNK = 64 * 1024;

/** Reads lines of files; see the module comment. */
export class FileSource<T> implements Source<T, FileSplit> {
  readonly boundedness: 'bounded' | 'unbounded';
  private constructor(
    private readonly paths: readonly string[],
    private readonly parse: (line: string, path: string, offset: number) => T,
    private readonly options: FileSourceOptions,
  ) {
    this.boundedness = options.monitorIntervalMs === undefined ? 'bounded' : 'unbounded';
  }

  /** Every line (without its newline) of the file, or of every file in the directory. */
  static lines(path: string, options: FileSourceOptions = {}): FileSource<string> {
    return new FileSource<string>(FileSource.files(path), (l) => l, options);
  }

  /** Every line parsed as JSON. A line that is not JSON fails the job, naming file and offset. */
  static jsonLines<T>(path: string, options: FileSourceOptions = {}): FileSource<T> {
    return new FileSource<T>(
      FileSource.files(path),
      (line, file, offset) => {
        try {
          return JSON.parse(line) as T;
        } catch (e) {
          throw new InvalidRecordError(
            `${file} at byte ${offset}: not a JSON line (${(e as Error).message}): ${line.slice(0, 120)}`,
          );
        }
      },
      options,
    );
  }

  private static files(path: string): string[] {
    const abs = resolve(path);
    if (!existsSync(abs)) throw new InvalidArgumentError(`file source: ${path} does not exist`);
    if (!statSync(abs).isDirectory()) return [abs];
    return readdirSync(abs)
      .filter((f) => !f.startsWith('.'))
      .sort()
      .map((f) => join(abs, f))
      .filter((f) => statSync(f).isFile());
  }

  createSplits(): FileSplit[] {
    return this.paths.map((p) => ({ splitId: p, path: p, offset: 0 }));
  }

  createReader(ctx: SourceReaderContext): SourceReader<T, FileSplit> {
    return new FileReader(this.parse, this.options, ctx);
  }
}

class FileReader<T> implements SourceReader<T, FileSplit> {
  private readonly splits: FileSplit[] = [];
  private current = 0;
  private fd: number | undefined;
  private fdPath: string | undefined;
  private buffer = Buffer.alloc(0);
  /** File offset of `buffer[0]`. */
  private bufferOffset = 0;
  private readonly chunk = Buffer.alloc(CHUNK);

  constructor(
    private readonly parse: (line: string, path: string, offset: number) => T,
    private readonly options: FileSourceOptions,
    private readonly ctx: SourceReaderContext,
  ) {}

  addSplits(splits: readonly FileSplit[]): void {
    for (const s of splits) this.splits.push({ ...s });
  }

  private open(split: FileSplit): void {
    if (this.fdPath === split.path) return;
    this.closeFile();
    this.fd = openSync(split.path, 'r');
    this.fdPath = split.path;
    this.buffer = Buffer.alloc(0);
    this.bufferOffset = split.offset;
  }

  private closeFile(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.fdPath = undefined;
  }

  pollNext(output: ReaderOutput<T>): InputStatus {
    for (let tries = 0; tries < this.splits.length; tries++) {
      const split = this.splits[this.current % this.splits.length]!;
      this.open(split);
      let nl = this.buffer.indexOf(10, split.offset - this.bufferOffset);
      if (nl < 0) {
        // Read more of the file after what is buffered.
        const n = readSync(this.fd!, this.chunk, 0, CHUNK, this.bufferOffset + this.buffer.length);
        if (n > 0) {
          this.buffer = Buffer.concat([
            this.buffer.subarray(split.offset - this.bufferOffset),
            this.chunk.subarray(0, n),
          ]);
          this.bufferOffset = split.offset;
          return MORE_AVAILABLE;
        }
        // At the end of the file: a last line without a newline counts only for bounded reads.
        const rest = this.buffer.length - (split.offset - this.bufferOffset);
        if (rest > 0 && this.options.monitorIntervalMs === undefined) nl = this.buffer.length;
        else {
          if (this.options.monitorIntervalMs === undefined) {
            output.releaseSplit(split.splitId);
            this.splits.splice(this.current % this.splits.length, 1);
            this.closeFile();
            if (this.splits.length === 0) return END_OF_INPUT;
          } else this.current++;
          continue;
        }
      }
      const start = split.offset - this.bufferOffset;
      let line = this.buffer.toString('utf8', start, nl);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      const at = split.offset;
      split.offset = this.bufferOffset + nl + 1;
      if (nl === this.buffer.length) split.offset = this.bufferOffset + nl;
      if (line.length > 0) output.forSplit(split.splitId).collect(this.parse(line, split.path, at));
      return MORE_AVAILABLE;
    }
    if (this.splits.length === 0) return END_OF_INPUT;
    this.ctx.wakeAt(this.ctx.clock.now() + (this.options.monitorIntervalMs ?? 1000));
    return NOTHING_AVAILABLE;
  }

  snapshotState(): FileSplit[] {
    return this.splits.map((s) => ({ ...s }));
  }

  close(): void {
    this.closeFile();
  }
}
