// The entry of a benchmark's worker thread: on Node 20 a worker does not inherit `--import`
// hooks, so it loads ./register.mjs itself, then the module named in `workerData.module`.
import { workerData } from 'node:worker_threads';

await import('./register.mjs');
await import(workerData.module);
