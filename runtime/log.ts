/**
 * Logs of tidemark: structured records (through pino) with the job, vertex, subtask, slot and
 * checkpoint they are about as fields, written to standard error in one of three formats:
 *
 * - `line`: one human line per record, as tidemark always wrote them (`[job] restored from
 *   checkpoint 3`, `tidemark: warning: ...`, `[taskmanager] ...`): the default off a terminal, so
 *   that what scripts and tests read does not change;
 * - `pretty`: pino-pretty's coloured lines, time and level first, fields after the message: the
 *   default on a terminal;
 * - `json`: one JSON object per line (`level`, `time`, `pid`, `hostname`, `msg` and the fields:
 *   `job`, `vertex`, `subtask`, `checkpoint`, `slot`, `attempt`, `component` ...).
 *
 * The level and format come from `--log-level` / `--log-format` (see `cli/main.ts`), or else the
 * environment (`TIDEMARK_LOG_LEVEL`, `TIDEMARK_LOG_FORMAT`). Every thread of a process logs the
 * same way: a slot's worker thread is given its process's settings ({@link logSettings}) and logs
 * to its standard error, which Node forwards to the process's.
 *
 * NOTE: every format writes synchronously to `process.stderr` (pino-pretty as a function, not a
 * transport's worker thread): no line is lost when the process exits right after it.
 *
 * Messages pass through {@link redactSecrets}: a URL's password never reaches a log.
 */
import pino from 'pino';
import { prettyFactory } from 'pino-pretty';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['line', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** How a process logs. */
export interface LogSettings {
  level: LogLevel;
  format: LogFormat;
  /** Colours in the pretty format (default: when standard error is a terminal). */
  colorize?: boolean;
}

/** Fields of a record: what it is about. */
export interface LogFields {
  /** The job id (as checkpoints are stored under). */
  job?: string;
  /** The vertex (operator chain) a slot's record is about; of a task's error, the operator that failed. */
  vertex?: string;
  /** The subtask index (from 0). */
  subtask?: number;
  checkpoint?: number;
  /** The slot (worker thread) index. */
  slot?: number;
  /** The attempt of the job (0, then one more per restart). */
  attempt?: number;
  /** What logs: `jobmanager`, `taskmanager`, `slot`, `cli`. */
  component?: string;
  [field: string]: unknown;
}

/** A logger: records at a level, with the fields of the logger and of the call. */
export interface Logger {
  trace(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** Whether records at `level` are written. */
  enabled(level: LogLevel): boolean;
  /**
   * A logger adding `fields` to every record; `linePrefix` (line format only) replaces the prefix
   * of the line: `[job] `, `[taskmanager] ` (default: the parent's).
   */
  child(fields: LogFields, options?: { linePrefix?: string }): Logger;
}

const RANK: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50 };

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

export function isLogFormat(value: unknown): value is LogFormat {
  return typeof value === 'string' && (LOG_FORMATS as readonly string[]).includes(value);
}

/**
 * The settings of a process that configured none: the environment's (`TIDEMARK_LOG_LEVEL`,
 * `TIDEMARK_LOG_FORMAT`, ignored when not valid), else `info`, and `pretty` on a terminal, `line`
 * elsewhere.
 */
export function defaultLogSettings(env: NodeJS.ProcessEnv = process.env): LogSettings {
  const tty = process.stderr.isTTY === true;
  return {
    level: isLogLevel(env.TIDEMARK_LOG_LEVEL) ? env.TIDEMARK_LOG_LEVEL : 'info',
    format: isLogFormat(env.TIDEMARK_LOG_FORMAT) ? env.TIDEMARK_LOG_FORMAT : tty ? 'pretty' : 'line',
    colorize: tty,
  };
}

/** Where records go: a record, rendered, is one write to standard error. */
interface Sink {
  readonly settings: LogSettings;
  write(level: LogLevel, msg: string, fields: LogFields, prefix: string): void;
}

let current: Sink | undefined;
let out: (text: string) => void = (text) => {
  process.stderr.write(text);
};

/** Sets how this process (thread) logs; unset settings keep their current value. */
export function configureLogging(settings: Partial<LogSettings>): void {
  const base = current?.settings ?? defaultLogSettings();
  const next: LogSettings = {
    level: settings.level ?? base.level,
    format: settings.format ?? base.format,
    colorize: settings.colorize ?? base.colorize ?? false,
  };
  current = makeSink(next);
}

/** This process's log settings (to pass to its worker threads). */
export function logSettings(): LogSettings {
  return { ...sink().settings };
}

/**
 * Replaces where rendered records are written (default: `process.stderr`); returns a function
 * that puts the previous writer back. For tests.
 */
export function setLogOutput(write: (text: string) => void): () => void {
  const previous = out;
  out = write;
  return () => {
    out = previous;
  };
}

function sink(): Sink {
  current ??= makeSink(defaultLogSettings());
  return current;
}

function makeSink(settings: LogSettings): Sink {
  const rank = RANK[settings.level];
  if (settings.format === 'line')
    return {
      settings,
      write(level, msg, _fields, prefix) {
        if (RANK[level] < rank) return;
        out(`${prefix}${msg}\n`);
      },
    };
  const pretty =
    settings.format === 'pretty'
      ? prettyFactory({
          colorize: settings.colorize === true,
          singleLine: true,
          ignore: 'pid,hostname',
          translateTime: 'SYS:HH:MM:ss.l',
        })
      : undefined;
  const logger = pino(
    {
      level: settings.level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    { write: (s: string) => out(pretty === undefined ? s : pretty(s)) },
  );
  return {
    settings,
    write(level, msg, fields) {
      if (RANK[level] < rank) return;
      logger[level](fields, msg);
    },
  };
}

/**
 * `text` with the password of every URL in it replaced by `***` (`redis://user:***@host`), as
 * `redactUrl` does for one URL.
 */
export function redactSecrets(text: string): string {
  return text.includes('@')
    ? text.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^:@/?#\s]*):[^@\s]*@/gi, '$1:***@')
    : text;
}

class FieldLogger implements Logger {
  constructor(
    private readonly fields: LogFields,
    private readonly prefix: (level: LogLevel) => string,
  ) {}

  private write(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    const s = sink();
    if (RANK[level] < RANK[s.settings.level]) return;
    s.write(
      level,
      redactSecrets(msg),
      fields === undefined ? this.fields : { ...this.fields, ...fields },
      this.prefix(level),
    );
  }
  trace(msg: string, fields?: LogFields): void {
    this.write('trace', msg, fields);
  }
  debug(msg: string, fields?: LogFields): void {
    this.write('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.write('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.write('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.write('error', msg, fields);
  }
  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[sink().settings.level];
  }
  child(fields: LogFields, options: { linePrefix?: string } = {}): Logger {
    const prefix = options.linePrefix;
    return new FieldLogger({ ...this.fields, ...fields }, prefix === undefined ? this.prefix : () => prefix);
  }
}

/**
 * The root logger of tidemark. In the line format its lines start `tidemark: ` (warnings
 * `tidemark: warning: `), as the command's own messages always did.
 */
export const log: Logger = new FieldLogger({}, (level) =>
  level === 'warn' ? 'tidemark: warning: ' : 'tidemark: ',
);

/** The logger of a job: its lines start `[job] ` in the line format. */
export function jobLogger(jobId: string, fields: LogFields = {}): Logger {
  return log.child({ job: jobId, ...fields }, { linePrefix: `[${jobId}] ` });
}

/**
 * The fields of an error's context (see `ErrorContext`): the vertex (operator) and subtask that
 * failed, the checkpoint; from the first error of its cause chain that names them.
 */
export function errorFields(e: unknown): LogFields {
  const fields: LogFields = {};
  let c: unknown = e;
  for (let i = 0; c instanceof Error && i < 8; i++, c = c.cause) {
    const ctx = (c as { context?: unknown }).context;
    if (ctx === null || typeof ctx !== 'object') continue;
    const x = ctx as {
      operatorName?: unknown;
      operatorId?: unknown;
      subtaskIndex?: unknown;
      checkpointId?: unknown;
    };
    if (fields.vertex === undefined && typeof x.operatorName === 'string') fields.vertex = x.operatorName;
    if (fields.operator === undefined && typeof x.operatorId === 'string') fields.operator = x.operatorId;
    if (fields.subtask === undefined && typeof x.subtaskIndex === 'number') fields.subtask = x.subtaskIndex;
    if (fields.checkpoint === undefined && typeof x.checkpointId === 'number')
      fields.checkpoint = x.checkpointId;
  }
  if (e instanceof Error) fields.errorName = e.name;
  return fields;
}

/**
 * Logs a process warning (`process.emitWarning`: a storage's, a user function's) as one record,
 * without Node's `--trace-warnings` hint: `tidemark: warning: ...` in the line format.
 */
export function logWarning(w: Error): void {
  const code = (w as { code?: unknown }).code;
  log.warn(`${w.name === 'Warning' ? '' : `${w.name}: `}${w.message}`, {
    ...(typeof code === 'string' ? { code } : {}),
  });
}
