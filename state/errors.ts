/**
 * The error hierarchy of tidemark. Every error has a stable `code` and, where it applies, the
 * job, operator and checkpoint it concerns; it survives crossing a thread or process boundary
 * ({@link serializeError} / {@link deserializeError}).
 *
 * NOTE: declared in `state/` because it is the lowest layer: `operators/`, `state/` and `runtime/`
 * all raise these errors.
 */

/** Stable error codes. */
export type ErrorCode =
  | 'USER_FUNCTION_FAILED'
  | 'INVALID_GRAPH'
  | 'INVALID_ARGUMENT'
  | 'JOB_FAILED'
  | 'JOB_CANCELLED'
  | 'STATE_ERROR'
  | 'CHECKPOINT_ERROR'
  | 'STORAGE_ERROR'
  | 'SERIALIZATION_ERROR'
  | 'PROTOCOL_ERROR'
  | 'INTERNAL_ERROR';

/** Where an error happened. */
export interface ErrorContext {
  jobName?: string;
  operatorId?: string;
  operatorName?: string;
  subtaskIndex?: number;
  checkpointId?: number;
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
}

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

/** The job graph is invalid (detected before anything runs). */
export class InvalidGraphError extends TidemarkError {
  constructor(message: string, context: ErrorContext = {}) {
    super('INVALID_GRAPH', message, context);
    this.name = 'InvalidGraphError';
  }
}

/** A job failed; `cause` is the first error that failed it. */
export class JobFailedError extends TidemarkError {
  constructor(message: string, context: ErrorContext, cause: unknown) {
    super('JOB_FAILED', message, context, { cause });
    this.name = 'JobFailedError';
  }
}

/** A job was cancelled before it finished. */
export class JobCancelledError extends TidemarkError {
  constructor(jobName: string) {
    super('JOB_CANCELLED', `job '${jobName}' was cancelled`, { jobName });
    this.name = 'JobCancelledError';
  }
}

/** A plain-data form of an error, for crossing threads and processes. */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  code?: ErrorCode;
  context?: ErrorContext;
  record?: string;
  cause?: SerializedError;
}

/** Turns any thrown value into plain data (keeps the cause chain, code and context). */
export function serializeError(e: unknown, depth = 0): SerializedError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const out: SerializedError = { name: e.name, message: e.message };
  if (e.stack !== undefined) out.stack = e.stack;
  if (e instanceof TidemarkError) {
    out.code = e.code;
    out.context = e.context;
  }
  if (e instanceof UserFunctionError && e.record !== undefined) out.record = e.record;
  if (e.cause !== undefined && depth < 8) out.cause = serializeError(e.cause, depth + 1);
  return out;
}

/** Rebuilds an error serialized by {@link serializeError} (as the matching class where known). */
export function deserializeError(s: SerializedError): Error {
  const cause = s.cause === undefined ? undefined : deserializeError(s.cause);
  let e: Error;
  if (s.code === 'USER_FUNCTION_FAILED')
    e = new UserFunctionError(s.message, s.context ?? {}, s.record, cause);
  else if (s.code === 'INVALID_GRAPH') e = new InvalidGraphError(s.message, s.context ?? {});
  else if (s.code === 'JOB_FAILED') e = new JobFailedError(s.message, s.context ?? {}, cause);
  else if (s.code !== undefined) e = new TidemarkError(s.code, s.message, s.context ?? {}, { cause });
  else {
    e = new Error(s.message, cause === undefined ? undefined : { cause });
    e.name = s.name;
  }
  if (s.stack !== undefined) e.stack = s.stack;
  return e;
}

/** The message of an error and of its causes, one per line (for CLI output). */
export function describeErrorChain(e: unknown): string {
  const lines: string[] = [];
  let cur: unknown = e;
  for (let i = 0; cur !== undefined && i < 8; i++) {
    lines.push(i === 0 ? messageOf(cur) : `caused by: ${messageOf(cur)}`);
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return lines.join('\n');
}

function messageOf(e: unknown): string {
  if (e instanceof Error)
    return e instanceof TidemarkError || e.name === 'Error' ? e.message : `${e.name}: ${e.message}`;
  return String(e);
}
