#!/usr/bin/env node
// The `tidemark` command. From a source checkout it runs the TypeScript sources through tsx;
// from a build (or with TIDEMARK_USE_BUILD=1) it runs dist/. Job modules are loaded with tsx either way.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

const root = new URL('../', import.meta.url);
const fromSource = process.env.TIDEMARK_USE_BUILD !== '1' && existsSync(new URL('runtime/cli/main.ts', root));
register('./resolve-hooks.js', import.meta.url, { data: { source: fromSource } });
const { register: registerTsx } = await import('tsx/esm/api');
registerTsx();
const entry = fromSource ? new URL('runtime/cli/main.ts', root) : new URL('dist/runtime/cli/main.js', root);
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
