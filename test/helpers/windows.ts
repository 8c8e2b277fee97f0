// Helpers for window tests: observe result timestamps, and reference (batch) window computations
// written independently of the operator.
import type { DataStream } from 'tidemark';

/** Follows a stream with a step that pairs every record with its timestamp (`null` for none). */
export function withTimestamps<T>(s: DataStream<T>): DataStream<[T, number | null]> {
  return s.process<[T, number | null]>({
    processElement(v, ctx, out) {
      out.collect([v, ctx.timestamp()]);
    },
  });
}

/** Reference: the tumbling window `[start, end)` holding `ts` (largest `offset + k * size` <= ts). */
export function tumblingWindow(ts: number, size: number, offset = 0): [number, number] {
  const start = offset + Math.floor((ts - offset) / size) * size;
  return [start, start + size];
}

/** Reference: every sliding window `[s, s + size)` with `s = offset + k * slide` that holds `ts`. */
export function slidingWindows(ts: number, size: number, slide: number, offset = 0): [number, number][] {
  const out: [number, number][] = [];
  for (let k = Math.floor((ts - offset) / slide); ; k--) {
    const s = offset + k * slide;
    if (s + size <= ts) break;
    if (s <= ts) out.push([s, s + size]);
  }
  return out;
}

/**
 * Reference: the sessions of a set of timestamps with a gap (each element covers `[ts, ts + gap)`;
 * covers that overlap or touch form one session).
 */
export function sessions(
  timestamps: readonly number[],
  gap: number,
): { start: number; end: number; members: number[] }[] {
  const sorted = [...timestamps].sort((a, b) => a - b);
  const out: { start: number; end: number; members: number[] }[] = [];
  for (const ts of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && ts <= last.end) {
      last.end = Math.max(last.end, ts + gap);
      last.members.push(ts);
    } else out.push({ start: ts, end: ts + gap, members: [ts] });
  }
  return out;
}

/** Groups values by a string key. */
export function groupBy<T>(values: readonly T[], key: (v: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const v of values) {
    const k = key(v);
    const list = m.get(k);
    if (list === undefined) m.set(k, [v]);
    else list.push(v);
  }
  return m;
}

/** Sorts a copy by the JSON form of the values (a canonical order to compare multisets). */
export function sortedByJson<T>(values: readonly T[]): T[] {
  return [...values].sort((a, b) =>
    JSON.stringify(a) < JSON.stringify(b) ? -1 : JSON.stringify(a) > JSON.stringify(b) ? 1 : 0,
  );
}
