/**
 * The job module the benchmark's "2 slots" runs import in every slot (worker thread): the query
 * named by `NEXMARK_BENCH_QUERY` over `NEXMARK_EVENTS` generated events, into the query's checker
 * in each slot, which nobody reads (printing them from two threads would measure the terminal).
 *
 * NOTE: worker threads start with a copy of the parent's `process.env`, so the two variables
 * are set in the parent before the run starts.
 */
import { job } from 'tidemark';
import { eventCountFromEnv, nexmarkStream } from '../../examples/nexmark/generator.js';
import { queryByName } from './queries.js';

export default job((env) => {
  const name = process.env.NEXMARK_BENCH_QUERY;
  if (name === undefined) throw new Error('bench/nexmark/slot-job.ts needs NEXMARK_BENCH_QUERY');
  const q = queryByName(name);
  q.attach(nexmarkStream(env, { count: eventCountFromEnv() }), q.checker());
});
