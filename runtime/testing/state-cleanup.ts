/**
 * State hygiene: once the watermark has passed the last event by the job's horizon (its longest
 * window or session gap, plus the allowed lateness), a job that cleans up after itself holds no
 * keyed state and no timer any more, except state it declares long-lived (a running total per
 * key). State left behind grows without bound in a job that runs for ever: a deduplication flag
 * never cleared, a timer never deleted.
 */
import type { DataStream } from '../../operators/data-stream.js';
import { registerErrorClass, TidemarkError } from '../../state/errors.js';
import type { Key } from '../../state/hash.js';
import { ManualClock } from '../clock.js';
import { StreamExecutionEnvironment } from '../environment.js';
import type { Task } from '../task/task.js';
import type { TimedEvent } from './properties.js';
import { SimulationPolicy } from './simulation.js';
import { fromTestStream, TestStream } from './test-stream.js';

/** Options of {@link checkStateCleanup}. */
export interface StateCleanupOptions<T> {
  /**
   * How far past the last event's timestamp the watermark goes before the state is looked at: the
   * longest any record may keep state (a window's size, a session gap, a deduplication's time to
   * live) plus the allowed lateness.
   */
  horizonMs: number;
  /** The event time of an input record (default: its `timestamp` field, as in {@link TimedEvent}). */
  timestamp?: (event: T) => number;
  /**
   * The input's watermark lags its largest timestamp by this much (default 0: records in order);
   * records later than that are late, as a bounded-out-of-orderness strategy would make them.
   */
  maxOutOfOrdernessMs?: number;
  /**
   * State and timer services that may stay: a state's name (`'total'`), a timer service's name
   * (`'user-timers'`), or either prefixed by an operator's name (`'running-total/total'`).
   */
  longLived?: readonly string[];
  /** Moves processing time forward by this much after the final watermark (default 0). */
  advanceProcessingTimeMs?: number;
  /** Default 2. */
  parallelism?: number;
  /** Interleaving and timing (default 1). */
  seed?: number;
}

/** State or timers an operator kept after the horizon. */
export interface LeftoverState {
  operator: string;
  /** A state's name, or a timer service's. */
  state: string;
  kind: 'state' | 'event-time timers' | 'processing-time timers';
  /** The keys that hold it, over all subtasks. */
  keys: Key[];
  /** For timers: the earliest one's time. */
  earliest?: number;
}

/** The error of a job that kept state or timers past its horizon. */
export class StateNotCleanedError extends TidemarkError {
  constructor(
    message: string,
    readonly leftovers: LeftoverState[],
  ) {
    super('CHECK_FAILED', message);
    this.name = 'StateNotCleanedError';
  }
}
registerErrorClass('StateNotCleanedError', StateNotCleanedError);

function show(k: Key): string {
  return typeof k === 'string' ? JSON.stringify(k) : String(k);
}

function describeLeftover(l: LeftoverState): string {
  const keys =
    l.keys.slice(0, 8).map(show).join(', ') + (l.keys.length > 8 ? `, … (${l.keys.length - 8} more)` : '');
  const what =
    l.kind === 'state'
      ? `state '${l.state}'`
      : `${l.kind} of '${l.state}'${l.earliest === undefined ? '' : ` (the earliest at ${l.earliest})`}`;
  return `operator '${l.operator}', ${what}: ${l.keys.length} key${l.keys.length === 1 ? '' : 's'}: ${keys}`;
}

/** Every keyed state and timer the tasks hold now, merged over subtasks. */
function leftovers(tasks: readonly Task[]): LeftoverState[] {
  const byId = new Map<string, LeftoverState & { keySet: Map<string, Key> }>();
  const add = (operator: string, state: string, kind: LeftoverState['kind'], key: Key, at?: number) => {
    const id = `${operator}\u0000${kind}\u0000${state}`;
    let l = byId.get(id);
    if (l === undefined) byId.set(id, (l = { operator, state, kind, keys: [], keySet: new Map() }));
    l.keySet.set(show(key), key);
    if (at !== undefined && (l.earliest === undefined || at < l.earliest)) l.earliest = at;
  };
  for (const task of tasks)
    for (const m of task.members) {
      const operator = m.node.name;
      const backend = m.keyed;
      if (backend !== undefined)
        for (const id of backend.stateNames()) {
          const name = id.startsWith('ns:') ? id.slice(3) : id;
          for (const key of backend.keys(id)) add(operator, name, 'state', key);
        }
      for (const [service, svc] of m.timerServices)
        for (const [, t] of svc.snapshotByKeyGroup()) {
          for (let i = 0; i < t.event.length; i += 3)
            add(operator, service, 'event-time timers', t.event[i] as Key, t.event[i + 2] as number);
          for (let i = 0; i < t.processing.length; i += 3)
            add(
              operator,
              service,
              'processing-time timers',
              t.processing[i] as Key,
              t.processing[i + 2] as number,
            );
        }
    }
  return [...byId.values()].map(({ keySet, ...l }) => ({
    ...l,
    keys: [...keySet.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, k]) => k),
  }));
}

/** A policy that hands the check the run's tasks. */
class InspectingPolicy extends SimulationPolicy {
  tasks: readonly Task[] = [];
  started(tasks: readonly Task[]): void {
    this.tasks = tasks;
  }
}

/**
 * Runs `job` on `events` (replayed in their order, with their timestamps, from one source), then
 * advances the watermark to the last event's timestamp plus `horizonMs` and, once everything is
 * processed and before the end of input, checks that no operator holds keyed state or timers any
 * more, except those declared `longLived`. Throws {@link StateNotCleanedError} naming each
 * operator, state or timer service, and the keys that hold it. Runs under a seeded simulation with
 * strict records. Resolves to nothing (so that it can be a fast-check property's result).
 */
export async function checkStateCleanup<T>(
  job: (env: StreamExecutionEnvironment, input: DataStream<T>) => unknown,
  events: readonly T[],
  options: StateCleanupOptions<T>,
): Promise<void> {
  const timestampOf =
    options.timestamp ?? ((e: T) => (e as unknown as TimedEvent<unknown, unknown>).timestamp);
  const seed = options.seed ?? 1;
  const parallelism = options.parallelism ?? 2;
  const last = events.reduce((m, e) => Math.max(m, timestampOf(e)), Number.NEGATIVE_INFINITY);
  const watermark = events.length === 0 ? 0 : last + options.horizonMs;
  const clock = new ManualClock(0);
  const policy = new InspectingPolicy({ seed, clockTickProbability: 0.05, maxClockTickMs: 10 }, clock);
  let seen: LeftoverState[] | undefined;
  const script = TestStream.replay(events, timestampOf, {
    maxOutOfOrdernessMs: options.maxOutOfOrdernessMs ?? 0,
  }).advanceWatermarkTo(watermark);
  if ((options.advanceProcessingTimeMs ?? 0) > 0)
    script.advanceProcessingTime(options.advanceProcessingTimeMs!);
  script.inspect(() => {
    seen = leftovers(policy.tasks);
  });
  const env = new StreamExecutionEnvironment({ parallelism, bufferCapacity: 4 });
  job(env, fromTestStream(env, script));
  await env.execute({ clock, policy, timeSliceMs: 1_000_000, strictRecords: true });
  if (seen === undefined) throw new Error('checkStateCleanup: the job ended before its state was looked at');
  const declared = new Set(options.longLived ?? []);
  const isLongLived = (l: LeftoverState) => declared.has(l.state) || declared.has(`${l.operator}/${l.state}`);
  const bad = seen.filter((l) => !isLongLived(l));
  if (bad.length > 0)
    throw new StateNotCleanedError(
      `state left after the watermark passed the last event (at ${last}) by the horizon of ${options.horizonMs} ms (watermark ${watermark}; parallelism ${parallelism}, seed ${seed}):\n${bad.map((l) => `  ${describeLeftover(l)}\n`).join('')}  clear state when it is done with (or give it a timer that does), delete timers that are no longer needed; declare state that lives on by design with longLived: ['<state>'] or ['<operator>/<state>']`,
      bad,
    );
}
