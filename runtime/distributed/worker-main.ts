/**
 * The entry of a slot's worker thread (loaded by bin/worker.js after it registered tsx): builds
 * the job from its module and runs this slot's subtasks.
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { serializeError, TidemarkError } from '../../state/errors.js';
import { loadJob } from '../cli/load-job.js';
import { buildJob } from '../job.js';
import { configureLogging, type LogSettings, logWarning } from '../log.js';
import type { FromSlot, SlotInit, ToSlot } from './protocol.js';
import { planHash, Slot } from './slot.js';

const { init, peers, log } = workerData as {
  init: SlotInit;
  peers: (MessagePort | undefined)[];
  log?: LogSettings;
};
// The slot logs as its process does (see `startWorker`); warnings too (bin/worker.js printed
// those until now).
if (log !== undefined) configureLogging(log);
process.removeAllListeners('warning');
process.on('warning', logWarning);
const port = parentPort!;
const send = (m: FromSlot) => port.postMessage(m);

async function main(): Promise<void> {
  const loaded = await loadJob(init.jobPath);
  const env = await buildJob(loaded.definition, { jobName: loaded.name, ...init.overrides });
  const graph = env.getJobGraph(init.overrides);
  const hash = planHash(graph);
  if (hash !== init.planHash)
    throw new TidemarkError(
      'INVALID_GRAPH',
      `slot ${init.slot}: the job module ${init.jobPath} built a different plan here (${hash}) than in the job manager (${init.planHash}); a job module must build the same graph in every process`,
    );
  const slot = new Slot(init, graph, peers, send);
  port.on('message', (m: ToSlot) => slot.onManager(m));
  send({ type: 'ready', planHash: hash });
  await slot.run();
}

main().catch((e: unknown) => send({ type: 'failed', error: serializeError(e) }));
