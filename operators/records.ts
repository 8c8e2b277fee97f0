/**
 * Records are values: an operator's output is shared, not copied, with every operator after it
 * (two branches of a split see the same object), so changing a record in place changes it for the
 * others too. Strict records (test runs: `tidemark/testing`, or `execute({ strictRecords: true })`)
 * freeze every record an operator emits, so that such a change throws where it happens; the
 * error then says what went wrong ({@link frozenRecordHint}).
 */

/**
 * Deeply freezes the plain objects and arrays of a record (class instances, maps, sets, dates and
 * typed arrays are left as they are) and returns it.
 */
export function freezeRecord<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) freezeDeep(value);
  return value;
}

function freezeDeep(v: object): void {
  const array = Array.isArray(v);
  if (!array) {
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) return;
  }
  // NOTE: frozen before its members, so that a cycle back to it ends the walk.
  Object.freeze(v);
  const members = array ? (v as unknown[]) : Object.values(v);
  for (const m of members) if (typeof m === 'object' && m !== null && !Object.isFrozen(m)) freezeDeep(m);
}

/** What V8 says when strict-mode code writes to a frozen object. */
const FROZEN_WRITE = /read only property|object is not extensible|Cannot delete property/;

/**
 * The explanation to add to a user function's error when it is a write to a frozen record (empty
 * otherwise): the function changed a record in place.
 */
export function frozenRecordHint(e: unknown, record: unknown): string {
  if (!(e instanceof TypeError) || !FROZEN_WRITE.test(e.message)) return '';
  if (typeof record !== 'object' || record === null || !Object.isFrozen(record)) return '';
  return (
    ' (a record was mutated in place. Records are values: what an operator emits is shared with every' +
    ' operator after it, and two branches see the same object, so return a changed copy,' +
    ' e.g. { ...record, field: newValue }, instead; strict records in tests freeze records to catch this)'
  );
}
