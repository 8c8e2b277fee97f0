/**
 * Per-subtask copies of user function objects.
 *
 * NOTE: Flink gives every parallel subtask its own deserialized copy of a function. Here several
 * subtasks of one operator can share a thread, so each gets a copy of the function *object*: same
 * prototype, with plain-data fields (plain objects, arrays, Maps, Sets) deep-copied and anything
 * else (functions, class instances such as clients) shared. Plain functions (closures) are not
 * copied: what they capture is shared by the subtasks of one thread, which is what makes
 * `addSink((v) => results.push(v))` work in tests.
 */
export function copyFunction<F>(fn: F): F {
  if (typeof fn !== 'object' || fn === null) return fn;
  const copy = Object.create(Object.getPrototypeOf(fn)) as Record<string | symbol, unknown>;
  const seen = new Map<unknown, unknown>();
  for (const key of Reflect.ownKeys(fn)) {
    const d = Object.getOwnPropertyDescriptor(fn, key)!;
    if ('value' in d) d.value = copyData(d.value, seen);
    Object.defineProperty(copy, key, d);
  }
  return copy as F;
}

function copyData(v: unknown, seen: Map<unknown, unknown>): unknown {
  if (typeof v !== 'object' || v === null) return v;
  const done = seen.get(v);
  if (done !== undefined) return done;
  if (Array.isArray(v)) {
    const a: unknown[] = [];
    seen.set(v, a);
    for (const x of v) a.push(copyData(x, seen));
    return a;
  }
  if (v instanceof Map) {
    const m = new Map();
    seen.set(v, m);
    for (const [k, x] of v) m.set(k, copyData(x, seen));
    return m;
  }
  if (v instanceof Set) {
    const s = new Set();
    seen.set(v, s);
    for (const x of v) s.add(copyData(x, seen));
    return s;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return v;
  const o: Record<string, unknown> = proto === null ? Object.create(null) : {};
  seen.set(v, o);
  for (const [k, x] of Object.entries(v)) o[k] = copyData(x, seen);
  return o;
}
