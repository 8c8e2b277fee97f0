/**
 * The live tail of a vertex (`GET /jobs/:id/vertices/:vid/tail`): a sample of the records its
 * subtasks emit, taken only while someone listens.
 *
 * - In the subtasks: the job manager turns the capture on for a vertex (`JobRunner.setTail`, then
 *   each attempt's executor: in this thread, or a `tail` message to every slot, relayed by task
 *   managers). Each subtask of the vertex then wraps the `collect` of its last operator that is
 *   not a sink (a vertex that ends in a sink: the records its sink receives) with a
 *   {@link tailTap}: a token bucket that lets through at most its share of `ratePerSecond`
 *   records a second (the rate over the vertex's parallelism), and counts the others. Turned off, the operator's own `collect` is put back: nothing runs per
 *   record while nobody listens.
 * - Captured records ({@link TailRecord}, the value already JSON text, at most 2 kB) go to the
 *   job manager: at once in this thread, batched every 100 ms by a slot.
 * - Per listener ({@link TailThrottle}), at most `rate` records in any second; a record not sent
 *   adds itself and the records its subtask skipped to the `skipped` of the next one sent.
 */
import type { TailEvent } from './types.js';

/** A record captured by a subtask (plain data: slots send these to the job manager). */
export interface TailRecord {
  vertexId: number;
  subtaskIndex: number;
  /** Event time, `null` without one. */
  timestamp: number | null;
  /** The record as JSON text (a JSON string of its beginning when longer than {@link MAX_TAIL_VALUE}). */
  value: string;
  /** Records the subtask emitted since its previous captured one and did not capture. */
  skipped: number;
}

/** The longest value shown, in characters of JSON. */
export const MAX_TAIL_VALUE = 2048;

/** Records per second a subtask captures when `ratePerSecond` are wanted of its vertex of `parallelism`. */
export function subtaskTailRate(ratePerSecond: number, parallelism: number): number {
  return Math.max(1, Math.ceil(ratePerSecond / Math.max(1, parallelism)));
}

function replacer(_key: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Map) return Object.fromEntries(v);
  if (v instanceof Set) return [...v];
  return v;
}

/** `value` as JSON text for the tail: at most {@link MAX_TAIL_VALUE} characters, never throws. */
export function tailText(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, replacer);
  } catch {
    text = undefined; // cyclic
  }
  if (text === undefined) {
    let s: string;
    try {
      s = String(value);
    } catch {
      s = Object.prototype.toString.call(value);
    }
    text = JSON.stringify(s);
  }
  if (text.length > MAX_TAIL_VALUE) text = JSON.stringify(`${text.slice(0, MAX_TAIL_VALUE)}…`);
  return text;
}

/**
 * A `collect` hook that captures at most `ratePerSecond` of the records it sees a second (a token
 * bucket of a second's worth: a window's burst of results shows as well as a steady stream), as
 * {@link TailRecord}s to `emit`.
 */
export function tailTap(
  vertexId: number,
  subtaskIndex: number,
  ratePerSecond: number,
  emit: (r: TailRecord) => void,
): (value: unknown, timestamp: number) => void {
  const perMs = ratePerSecond / 1000;
  let tokens = ratePerSecond;
  let last = performance.now();
  let skipped = 0;
  return (value, timestamp) => {
    const now = performance.now();
    tokens = Math.min(ratePerSecond, tokens + (now - last) * perMs);
    last = now;
    if (tokens < 1) {
      skipped++;
      return;
    }
    tokens--;
    emit({
      vertexId,
      subtaskIndex,
      timestamp: Number.isFinite(timestamp) ? timestamp : null,
      value: tailText(value),
      skipped,
    });
    skipped = 0;
  };
}

/** One listener's share of a tail: at most `rate` records in any second (see the module comment). */
export class TailThrottle {
  /** When the events of the last second were sent (a ring of `rate`). */
  private readonly sent: number[];
  private next = 0;
  private skipped = 0;

  constructor(readonly rate: number) {
    this.sent = new Array<number>(rate).fill(Number.NEGATIVE_INFINITY);
  }

  /** The event to send for `r`, or undefined when it is dropped (counted in the next one). */
  offer(r: TailRecord, now = Date.now()): string | undefined {
    if (now - this.sent[this.next]! < 1000) {
      this.skipped += 1 + r.skipped;
      return undefined;
    }
    this.sent[this.next] = now;
    this.next = (this.next + 1) % this.rate;
    const skipped = this.skipped + r.skipped;
    this.skipped = 0;
    return tailEventJson(r, skipped);
  }

  /** Drops `r` (the connection cannot take more now): counted in the next event. */
  drop(r: TailRecord): void {
    this.skipped += 1 + r.skipped;
  }
}

/** The JSON of a {@link TailEvent} (the value is JSON text already). */
export function tailEventJson(r: TailRecord, skipped: number): string {
  const head: Omit<TailEvent, 'value'> = {
    subtaskIndex: r.subtaskIndex,
    timestamp: r.timestamp,
    skipped,
  };
  return `{"subtaskIndex":${head.subtaskIndex},"timestamp":${head.timestamp},"skipped":${head.skipped},"value":${r.value}}`;
}
