/**
 * Assertions on an operator harness's ordered output (Flink's `TestHarnessUtil`): watermarks and
 * watermark statuses by position, records as a multiset between them.
 */
import type { HarnessEvent } from './harness.js';
import { canonical, diffResults } from './properties.js';

/** Renders one output event compactly: `"a"@5`, `WM(9)`, `IDLE`. */
export function formatHarnessEvent<T>(e: HarnessEvent<T>): string {
  if ('watermark' in e) return `WM(${e.watermark})`;
  if ('watermarkStatus' in e) return e.watermarkStatus;
  return `${JSON.stringify(e.record, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}@${e.timestamp ?? 'none'}`;
}

interface Segments<T> {
  /** The watermarks and statuses, in order. */
  markers: HarnessEvent<T>[];
  /** The records before the first marker, between each two, and after the last. */
  records: { record: T; timestamp: number | null }[][];
}

function segments<T>(events: readonly HarnessEvent<T>[]): Segments<T> {
  const markers: HarnessEvent<T>[] = [];
  const records: { record: T; timestamp: number | null }[][] = [[]];
  for (const e of events) {
    if ('record' in e) records[records.length - 1]!.push(e);
    else {
      markers.push(e);
      records.push([]);
    }
  }
  return { markers, records };
}

/**
 * Asserts that `actual` (e.g. `h.events()`) equals `expected` as Flink's
 * `TestHarnessUtil.assertOutputEqualsSorted` does: the same watermarks and watermark statuses in
 * the same order, and between each two of them the same records (value and timestamp) in any
 * order. (Flink checks the records only as one sorted list, and their count between watermarks;
 * this checks each stretch between watermarks on its own, which is stricter.) Records are equal
 * when their canonical JSON is, or, with `comparator`, when it returns 0 (to compare on some
 * fields only). Throws a readable diff otherwise.
 */
export function assertOutputEqualsSorted<T>(
  expected: readonly HarnessEvent<T>[],
  actual: readonly HarnessEvent<T>[],
  comparator?: (a: T, b: T) => number,
): void {
  const ex = segments(expected);
  const ac = segments(actual);
  const show = (events: readonly HarnessEvent<T>[]) =>
    events.map(formatHarnessEvent).join(' ') || '(nothing)';
  const fail = (what: string) => {
    throw new Error(
      `output differs from the expected one (watermarks and statuses by position, records as a set between them): ${what}\n  expected: ${show(expected)}\n  actual:   ${show(actual)}`,
    );
  };
  const exMarkers = ex.markers.map(formatHarnessEvent);
  const acMarkers = ac.markers.map(formatHarnessEvent);
  if (exMarkers.join(' ') !== acMarkers.join(' '))
    fail(`watermarks and statuses are [${acMarkers.join(' ')}], expected [${exMarkers.join(' ')}]`);
  for (let i = 0; i < ex.records.length; i++) {
    const where =
      ex.markers.length === 0
        ? 'in the records'
        : i === 0
          ? `before ${exMarkers[0]}`
          : i === ex.markers.length
            ? `after ${exMarkers[i - 1]}`
            : `between ${exMarkers[i - 1]} and ${exMarkers[i]}`;
    const e = ex.records[i]!;
    const a = ac.records[i]!;
    if (comparator === undefined) {
      const diff = diffResults(canonical(e), canonical(a));
      if (diff !== '') fail(`${where}:\n${diff}`);
      continue;
    }
    const order = (x: { record: T; timestamp: number | null }, y: { record: T; timestamp: number | null }) =>
      comparator(x.record, y.record) || compareTimestamps(x.timestamp, y.timestamp);
    const es = [...e].sort(order);
    const as = [...a].sort(order);
    if (es.length !== as.length || es.some((x, j) => order(x, as[j]!) !== 0))
      fail(
        `${where}: records [${as.map(formatHarnessEvent).join(' ')}], expected [${es.map(formatHarnessEvent).join(' ')}]`,
      );
  }
}

function compareTimestamps(a: number | null, b: number | null): number {
  const x = a ?? Number.NEGATIVE_INFINITY;
  const y = b ?? Number.NEGATIVE_INFINITY;
  return x === y ? 0 : x < y ? -1 : 1;
}
