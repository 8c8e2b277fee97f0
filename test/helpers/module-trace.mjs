// Preloaded with `node --import` (NODE_OPTIONS): records the URL of every module the process
// resolves, one per line, into the file named by TIDEMARK_MODULE_TRACE. The recording happens in
// module resolution hooks (module-trace-hooks.mjs), which every import, static or dynamic, passes.
import { register } from 'node:module';

const out = process.env.TIDEMARK_MODULE_TRACE;
if (out !== undefined) register('./module-trace-hooks.mjs', import.meta.url, { data: { out } });
