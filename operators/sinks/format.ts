/** JSON with bigints (as numbers' digits) and Maps/Sets (as arrays), for printing and files. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof Map) return [...v];
    if (v instanceof Set) return [...v];
    return v;
  });
}

/** How the print sink shows a record: strings as they are, anything else as JSON. */
export function formatRecord(value: unknown): string {
  return typeof value === 'string' ? value : (toJson(value) ?? String(value));
}
