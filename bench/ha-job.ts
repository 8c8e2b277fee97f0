/**
 * The job of the failover benchmark (bench/ha.ts): an unbounded, rate-limited generator counted per
 * key into a sink that keeps nothing. Its state is small, so a failover measures the runtime's
 * hand-over, not a large restore. `HA_BENCH_RATE` sets the events per second of each subtask.
 */
import { job } from 'tidemark';

export default job((env) => {
  const rate = Number(process.env.HA_BENCH_RATE ?? 20_000);
  env
    .fromGenerator((i) => ({ k: i % 1000, n: 1 }), { ratePerSecond: rate })
    .uid('events')
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, n: a.n + b.n }))
    .uid('counts')
    .addSink(() => {});
});
