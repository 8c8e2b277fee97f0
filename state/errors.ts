/**
 * The error hierarchy of tidemark. Every error tidemark raises on purpose is a {@link TidemarkError}
 * with a stable `code` and, where it applies, the job, operator and checkpoint it concerns; it
 * survives crossing a thread or process boundary as itself ({@link serializeError} /
 * {@link deserializeError}): every class is registered by name ({@link registerErrorClass}).
 *
 * NOTE: declared in `state/` because it is the lowest layer: `operators/`, `state/` and `runtime/`
 * all raise these errors. Classes of one concern live with it (the storage's in
 * `storage/checkpoint-storage.ts`, `WireError` in `runtime/distributed/wire.ts`, ...) and register
 * where they are declared, so a class is revived in a process that loaded its module; elsewhere an
 * error comes back as its nearest registered ancestor, with its name, code, context and fields.
 */

/** Stable error codes. */
export type ErrorCode =
  | 'USER_FUNCTION_FAILED'
  | 'INVALID_GRAPH'
  | 'INVALID_ARGUMENT'
  | 'INVALID_RECORD'
  | 'JOB_FAILED'
  | 'JOB_CANCELLED'
  | 'STATE_ERROR'
  | 'CHECKPOINT_ERROR'
  | 'STORAGE_ERROR'
  | 'SERIALIZATION_ERROR'
  | 'PROTOCOL_ERROR'
  | 'INJECTED_FAILURE'
  | 'CHECK_NOT_EXERCISED'
  | 'CHECK_FAILED'
  | 'INTERNAL_ERROR';

/** Where an error happened. */
export interface ErrorContext {
  jobName?: string;
  operatorId?: string;
  operatorName?: string;
  subtaskIndex?: number;
  checkpointId?: number;
}

/**
 * The brand an error class's prototype carries: its registered name (see {@link registerErrorClass}).
 *
 * NOTE: a global symbol, so that two copies of tidemark in one process (a job module that resolves
 * its own installed copy, a bundle) recognise each other's errors: `instanceof` compares brands
 * when the prototype chain does not hold the very class (as Temporal's `symbolBasedInstanceOf`).
 */
const BRAND: unique symbol = Symbol.for('tidemark.errorClass');

/** An error class that {@link registerErrorClass} accepts. */
export type ErrorClass = abstract new (...args: never[]) => Error;

/** Registered error classes by name, and their names by class. */
const classesByName = new Map<string, ErrorClass>();
const namesByClass = new Map<ErrorClass, string>();

// NOTE: the built-in classes revive by name too (a user function's RangeError stays one), but are
// not branded: their prototypes are not ours to change.
for (const builtin of [Error, RangeError, TypeError, SyntaxError, ReferenceError, EvalError, URIError]) {
  classesByName.set(builtin.name, builtin);
  namesByClass.set(builtin, builtin.name);
}

function brandOf(prototype: object): string | undefined {
  return Object.hasOwn(prototype, BRAND) ? (prototype as { [BRAND]: string })[BRAND] : undefined;
}

/** Base class of every error tidemark raises on purpose. */
export class TidemarkError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;
  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TidemarkError';
    this.code = code;
    this.context = context;
  }

  /**
   * `value instanceof SomeTidemarkError`: true for instances of the class itself, and for errors of
   * the same registered class made by another copy of tidemark (see {@link registerErrorClass}).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class right of `instanceof`, a subclass too
    return isInstance(this, value);
  }
}

function isInstance(cls: ErrorClass, value: unknown): boolean {
  if (Function.prototype[Symbol.hasInstance].call(cls, value)) return true;
  const brand = brandOf(cls.prototype);
  if (brand === undefined || typeof value !== 'object' || value === null) return false;
  for (let p: object | null = Object.getPrototypeOf(value); p !== null; p = Object.getPrototypeOf(p))
    if (brandOf(p) === brand) return true;
  return false;
}

/**
 * Registers an error class under a stable name: {@link deserializeError} revives errors of that
 * name as instances of the class, and `instanceof` recognises them across copies of tidemark.
 * Every class tidemark declares is registered where it is declared; register your own error
 * classes (thrown by your functions) the same way, in a module that every process imports.
 */
export function registerErrorClass(name: string, cls: ErrorClass): void {
  const known = classesByName.get(name);
  if (known === cls) return;
  if (known !== undefined)
    throw new InvalidArgumentError(`an error class named '${name}' is already registered`);
  Object.defineProperty(cls.prototype, BRAND, { value: name });
  classesByName.set(name, cls);
  namesByClass.set(cls, name);
}

/** The registered error classes by name, the built-in ones included (for tests and tools). */
export function registeredErrorClasses(): ReadonlyMap<string, ErrorClass> {
  return new Map(classesByName);
}

registerErrorClass('TidemarkError', TidemarkError);

/** A value given to tidemark (an argument, an option, a setting) is not valid. */
export class InvalidArgumentError extends TidemarkError {
  constructor(message: string, context: ErrorContext = {}) {
    super('INVALID_ARGUMENT', message, context);
    this.name = 'InvalidArgumentError';
  }
}
registerErrorClass('InvalidArgumentError', InvalidArgumentError);

/**
 * A record cannot be processed: it has no timestamp where one is needed, its key is not a valid
 * key, or its bytes are not what the source expects.
 */
export class InvalidRecordError extends TidemarkError {
  constructor(message: string, context: ErrorContext = {}) {
    super('INVALID_RECORD', message, context);
    this.name = 'InvalidRecordError';
  }
}
registerErrorClass('InvalidRecordError', InvalidRecordError);

/**
 * State, timers or a function's context were used where they are not available (keyed state off a
 * keyed stream, timers outside a keyed function, ...) or registered inconsistently.
 */
export class StateError extends TidemarkError {
  constructor(message: string, context: ErrorContext = {}) {
    super('STATE_ERROR', message, context);
    this.name = 'StateError';
  }
}
registerErrorClass('StateError', StateError);

/** A user function (map, reduce, process, sink, ...) threw. */
export class UserFunctionError extends TidemarkError {
  constructor(
    message: string,
    context: ErrorContext,
    /** A printable, truncated form of the record being processed, if any. */
    readonly record: string | undefined,
    cause: unknown,
  ) {
    super('USER_FUNCTION_FAILED', message, context, { cause });
    this.name = 'UserFunctionError';
  }
}
registerErrorClass('UserFunctionError', UserFunctionError);

/** The job graph is invalid (detected before anything runs). */
export class InvalidGraphError extends TidemarkError {
  constructor(message: string, context: ErrorContext = {}) {
    super('INVALID_GRAPH', message, context);
    this.name = 'InvalidGraphError';
  }
}
registerErrorClass('InvalidGraphError', InvalidGraphError);

/** A job failed; `cause` is the first error that failed it. */
export class JobFailedError extends TidemarkError {
  constructor(message: string, context: ErrorContext, cause: unknown) {
    super('JOB_FAILED', message, context, { cause });
    this.name = 'JobFailedError';
  }
}
registerErrorClass('JobFailedError', JobFailedError);

/** A job was cancelled before it finished. */
export class JobCancelledError extends TidemarkError {
  constructor(jobName: string) {
    super('JOB_CANCELLED', `job '${jobName}' was cancelled`, { jobName });
    this.name = 'JobCancelledError';
  }
}
registerErrorClass('JobCancelledError', JobCancelledError);

/** A plain-data form of an error, for crossing threads and processes (structured clone, msgpackr). */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  /** The registered names of the error's class and of its ancestors, most derived first. */
  classes?: string[];
  /** The error's own data fields (`code`, `context`, a subclass's own, such as `record`). */
  fields?: Record<string, unknown>;
  cause?: SerializedError;
}

/** Causes kept at most (a longer chain, or a cycle, is cut). */
const MAX_CAUSES = 8;

/**
 * Turns any thrown value into plain data: message, stack, class names, own data fields and the
 * cause chain.
 *
 * NOTE: fields are copied generically (every own enumerable property that is plain data), so a
 * subclass's fields cross without a serializer per class; a field that is not plain data (a
 * function, a connection) is left out rather than failing the transport.
 */
export function serializeError(e: unknown, depth = 0): SerializedError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const out: SerializedError = { name: e.name, message: e.message };
  if (e.stack !== undefined) out.stack = e.stack;
  const classes: string[] = [];
  for (let p: object | null = Object.getPrototypeOf(e); p !== null; p = Object.getPrototypeOf(p)) {
    const own = Object.hasOwn(p, 'constructor') ? (p as { constructor: ErrorClass }).constructor : undefined;
    const name = brandOf(p) ?? (own === undefined ? undefined : namesByClass.get(own));
    if (name !== undefined) classes.push(name);
  }
  if (classes.length > 0) out.classes = classes;
  const fields: Record<string, unknown> = {};
  let any = false;
  for (const [key, value] of Object.entries(e)) {
    if (key === 'name' || key === 'message' || key === 'stack' || key === 'cause') continue;
    if (value === undefined || !isPlainData(value, 0)) continue;
    fields[key] = value;
    any = true;
  }
  if (any) out.fields = fields;
  if (e.cause !== undefined && depth < MAX_CAUSES) out.cause = serializeError(e.cause, depth + 1);
  return out;
}

/** True for values that cross structured clone and msgpackr unchanged. */
function isPlainData(v: unknown, depth: number): boolean {
  if (v === null || v === undefined) return true;
  const t = typeof v;
  if (t === 'string' || t === 'number' || t === 'boolean' || t === 'bigint') return true;
  if (t !== 'object' || depth > 8) return false;
  if (v instanceof Date) return true;
  if (Array.isArray(v)) return v.every((x) => isPlainData(x, depth + 1));
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.values(v as object).every((x) => isPlainData(x, depth + 1));
}

/**
 * Rebuilds an error serialized by {@link serializeError} as an instance of its class (the first
 * of its classes registered here; `Error` if none is), with its message, stack, fields and causes.
 *
 * NOTE: the instance is made without running the class's constructor (whose parameters differ
 * from class to class): `Reflect.construct(Error, ...)` with the class as `new.target` gives a
 * real `Error` with the class's prototype, and the fields are then set as the constructor had.
 */
export function deserializeError(s: SerializedError): Error {
  const cause = s.cause === undefined ? undefined : deserializeError(s.cause);
  let cls: ErrorClass = Error;
  for (const name of s.classes ?? [s.name]) {
    const known = classesByName.get(name);
    if (known !== undefined) {
      cls = known;
      break;
    }
  }
  const e = Reflect.construct(
    Error,
    cause === undefined ? [s.message] : [s.message, { cause }],
    cls,
  ) as Error;
  for (const [key, value] of Object.entries(s.fields ?? {}))
    Object.defineProperty(e, key, { value, writable: true, enumerable: true, configurable: true });
  if (e.name !== s.name) e.name = s.name;
  if (s.stack !== undefined) e.stack = s.stack;
  return e;
}

/**
 * The message of an error and of its causes, one per line (for CLI output). A cause whose message
 * was already said (a wrapping error usually repeats it: "job 'x' failed: <cause>") is left out.
 */
export function describeErrorChain(e: unknown): string {
  const lines: string[] = [];
  let cur: unknown = e;
  for (let i = 0; cur !== undefined && i < 8; i++) {
    const message = messageOf(cur);
    if (i === 0) lines.push(message);
    else if (!lines.some((l) => l.includes(message))) lines.push(`caused by: ${message}`);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return lines.join('\n');
}

function messageOf(e: unknown): string {
  if (e instanceof Error)
    return e instanceof TidemarkError || e.name === 'Error' ? e.message : `${e.name}: ${e.message}`;
  return String(e);
}
