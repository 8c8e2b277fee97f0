// The layering of DESIGN.md, checked on every import of the sources: `state/` imports nothing of
// `operators/` or `runtime/`; `operators/` imports only `state/`; `runtime/operator/` (an
// operator's runtime: context, timers, metrics) imports only `operators/` and `state/`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { expect, test } from 'vitest';
import { ROOT } from '../helpers/cli.js';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Every relative import of a file, as a path from the repository root. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g))
    out.push(relative(ROOT, resolve(dirname(file), m[1]!)));
  return out;
}

const rules: [string, string[]][] = [
  ['state', ['state']],
  ['operators', ['operators', 'state']],
  ['runtime/operator', ['runtime/operator', 'operators', 'state']],
];

test.each(rules)('%s/ imports only %j', (folder, allowed) => {
  const wrong: string[] = [];
  for (const file of sources(join(ROOT, folder)))
    for (const target of imports(file))
      if (!allowed.some((a) => target === a || target.startsWith(`${a}/`)))
        wrong.push(`${relative(ROOT, file)} -> ${target}`);
  expect(wrong).toEqual([]);
});
