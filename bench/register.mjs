// Loads what `bin/tidemark.js` loads before a job: the `tidemark` package resolved to its TypeScript
// sources (the `tidemark-source` export condition) and tsx for `.ts` modules. Use it as
// `node --import ./bench/register.mjs bench/run.ts`.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

register('../bin/resolve-hooks.js', import.meta.url, { data: { source: true } });
registerTsx();
