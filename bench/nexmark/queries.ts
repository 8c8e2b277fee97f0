/**
 * The Nexmark queries as the benchmark runs them: each query's stream from its example module,
 * its hand-written baseline, and the checker both feed their results to.
 */
import type { DataStream } from 'tidemark';
import type { Event, NexmarkConfig } from '../../examples/nexmark/generator.js';
import * as q0 from '../../examples/nexmark/q0.js';
import * as q1 from '../../examples/nexmark/q1.js';
import * as q2 from '../../examples/nexmark/q2.js';
import * as q3 from '../../examples/nexmark/q3.js';
import * as q4 from '../../examples/nexmark/q4.js';
import * as q5 from '../../examples/nexmark/q5.js';
import * as q7 from '../../examples/nexmark/q7.js';
import * as q8 from '../../examples/nexmark/q8.js';
import * as q11 from '../../examples/nexmark/q11.js';
import * as q12 from '../../examples/nexmark/q12.js';
import { baselines, checkers, type QueryName, type ResultChecker } from './baselines.js';
import { QUERY_NAMES } from './names.js';

/** A query of the benchmark, with its result type erased (the pieces stay consistent inside). */
export interface BenchQuery {
  readonly name: QueryName;
  /** Adds the query to a job, its results going to `checker` (tidemark's sink). */
  attach(events: DataStream<Event>, checker: ResultChecker<never>): DataStream<unknown>;
  /** A fresh checker for the query's results. */
  checker(): ResultChecker<never>;
  /** Runs the hand-written loop over `count` events into `checker`. */
  baseline(count: number, config: NexmarkConfig, checker: ResultChecker<never>): void;
  /** False when results depend on the wall clock (q12), so runs cannot be compared. */
  readonly deterministic: boolean;
  /**
   * For windowed queries, how far a result's window end lies after the result's timestamp (1 where
   * results carry the window's end - 1, 0 where they carry its end), so that emit latency can be
   * measured; undefined for the other queries.
   */
  readonly windowEndAfterTimestamp: number | undefined;
}

function query<Q extends QueryName, T>(
  name: Q,
  build: (events: DataStream<Event>) => DataStream<T>,
  options: { deterministic?: boolean; windowEndAfterTimestamp?: number } = {},
): BenchQuery {
  const baseline = baselines[name] as unknown as (
    count: number,
    c: NexmarkConfig,
    out: ResultChecker<T>,
  ) => void;
  return {
    name,
    attach: (events, checker) => {
      const out = checker as unknown as ResultChecker<T>;
      const results = build(events);
      results.addSink((r) => out.add(r)).name(`${name} sink`);
      return results as DataStream<unknown>;
    },
    checker: () => checkers[name]() as unknown as ResultChecker<never>,
    baseline: (count, config, checker) => baseline(count, config, checker as unknown as ResultChecker<T>),
    deterministic: options.deterministic ?? true,
    windowEndAfterTimestamp: options.windowEndAfterTimestamp,
  };
}

/** Every query of the benchmark, in order. */
export const QUERIES: readonly BenchQuery[] = [
  query('q0', q0.build),
  query('q1', q1.build),
  query('q2', q2.build),
  query('q3', q3.build),
  query('q4', q4.build),
  // q5's results carry their window's maxTimestamp; q7's the window's end (see its module).
  query('q5', q5.build, { windowEndAfterTimestamp: 1 }),
  query('q7', q7.build, { windowEndAfterTimestamp: 0 }),
  query('q8', q8.build),
  query('q11', q11.build),
  query('q12', q12.build, { deterministic: false }),
];

if (QUERIES.map((q) => q.name).join() !== QUERY_NAMES.join())
  throw new Error('bench/nexmark/names.ts does not list the queries of bench/nexmark/queries.ts');

/** The query called `name`. */
export function queryByName(name: string): BenchQuery {
  const q = QUERIES.find((x) => x.name === name);
  if (q === undefined)
    throw new Error(`unknown query '${name}' (known: ${QUERIES.map((x) => x.name).join(', ')})`);
  return q;
}
