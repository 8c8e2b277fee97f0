// Module resolution hooks of the `tidemark` command (registered before any job module loads):
// - from a source checkout, resolve the `tidemark` package to its TypeScript sources (the
//   `tidemark-source` export condition);
// - a job module outside any project that depends on tidemark still finds `tidemark` (this one);
// - a .ts/.js module outside any ES module package (no package.json, or one without "type") that
//   is written as an ES module (import/export) is loaded as one, as Node detects it for .js.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let options = { source: false };

export function initialize(data) {
  options = data ?? options;
}

const packageJson = new URL('../package.json', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  let ctx = context;
  if (options.source && !(context.conditions ?? []).includes('tidemark-source'))
    ctx = { ...context, conditions: [...(context.conditions ?? []), 'tidemark-source'] };
  let resolved;
  try {
    resolved = await nextResolve(specifier, ctx);
  } catch (e) {
    if (specifier === 'tidemark' || specifier.startsWith('tidemark/'))
      return nextResolve(specifier, { ...ctx, parentURL: packageJson });
    throw e;
  }
  return detectModule(resolved);
}

/** Scope directory -> whether its nearest package.json has no "type" (or there is none). */
const typeless = new Map();

function hasNoType(dir) {
  const known = typeless.get(dir);
  if (known !== undefined) return known;
  let result;
  try {
    result = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).type === undefined;
  } catch (e) {
    // No package.json here: the parent's decides (none at all: no type).
    result = e.code === 'ENOENT' && dirname(dir) !== dir ? hasNoType(dirname(dir)) : e.code === 'ENOENT';
  }
  typeless.set(dir, result);
  return result;
}

// An import or export declaration at the start of a line (not TypeScript's `import x = require()`
// or `export =`, which are CommonJS).
const ESM_SYNTAX =
  /^[ \t]*(?:import[ \t]*(?:[{*'"]|type[ \t]|[\w$]+[ \t]*(?:,|from[ \t'"]))|export(?:[ \t]*[{*]|[ \t]+(?![ \t]*=)))/m;

/**
 * NOTE: left to tsx, such a module is taken for CommonJS (it is outside an ES module package),
 * compiled, then read again by Node's CommonJS loader, which finds ES module syntax and fails
 * with "Cannot require() ES Module ... in a cycle".
 */
function detectModule(resolved) {
  const { url } = resolved;
  if (resolved.format === 'module' || !url.startsWith('file:') || url.includes('/node_modules/'))
    return resolved;
  if (!/\.(?:ts|tsx|js|jsx)$/.test(new URL(url).pathname)) return resolved;
  const path = fileURLToPath(url);
  if (!hasNoType(dirname(path))) return resolved;
  let source;
  try {
    source = readFileSync(path, 'utf8');
  } catch {
    return resolved;
  }
  return ESM_SYNTAX.test(source) ? { ...resolved, format: 'module' } : resolved;
}
