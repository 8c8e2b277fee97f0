// Entry of a tidemark slot (worker thread). On Node 20 a worker does not inherit --import hooks:
// it registers the module resolution hooks and tsx itself before loading the runtime and the job.
import { register } from 'node:module';
import { workerData } from 'node:worker_threads';

// Warnings (a storage's, a user function's) as one line each, as the command prints them, without
// Node's --trace-warnings hint (runtime/cli/main.ts).
process.removeAllListeners('warning');
process.on('warning', (w) => {
  process.stderr.write(`tidemark: warning: ${w.name === 'Warning' ? '' : `${w.name}: `}${w.message}\n`);
});
const fromSource = workerData.init.fromSource === true;
register('./resolve-hooks.js', import.meta.url, { data: { source: fromSource } });
const { register: registerTsx } = await import('tsx/esm/api');
registerTsx();
await import(
  fromSource ? '../runtime/distributed/worker-main.ts' : '../dist/runtime/distributed/worker-main.js'
);
