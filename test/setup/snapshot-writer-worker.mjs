// A snapshot writer in another thread or process, for the storage tests: registers tsx, then
// writes `chunks` snapshots of its own (deterministic bytes from the writer's name) for
// checkpoint 1 with the runtime's SnapshotWriter, into the storage given as a StorageSpec, and
// reports the WrittenSnapshot handles. As a worker thread: `workerData`; as a process: argv[2].
import { isMainThread, parentPort, workerData } from 'node:worker_threads';

const { register } = await import('tsx/esm/api');
register();
const args = isMainThread ? JSON.parse(process.argv[2]) : workerData;
const { run } = await import('./snapshot-writer-task.ts');
const written = await run(args);
if (isMainThread) process.stdout.write(`${JSON.stringify(written)}\n`);
else parentPort.postMessage(written);
