// The testing toolkit's reference stays complete: every export of `tidemark/testing` has an
// entry in docs/testing.md and is used in a runnable example (a test under examples/), and every
// link of the page leads to a file.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as testing from 'tidemark/testing';
import { describe, expect, test } from 'vitest';
import { ROOT } from '../helpers/cli.js';

const DOC = join(ROOT, 'docs/testing.md');
const doc = readFileSync(DOC, 'utf8');

function files(dir: string, suffix: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p, suffix) : p.endsWith(suffix) ? [p] : [];
  });
}
const examples = files(join(ROOT, 'examples'), '.test.ts').map((f) => readFileSync(f, 'utf8'));
const helpers = Object.keys(testing).sort();
const word = (name: string) => new RegExp(`\\b${name}\\b`);

describe('docs/testing.md', () => {
  test.each(helpers)('%s has an entry (a heading) and a runnable example', (name) => {
    const headings = doc.split('\n').filter((l) => /^#{2,3} /.test(l));
    expect(
      headings.some((h) => word(name).test(h)),
      `no heading of docs/testing.md names ${name}`,
    ).toBe(true);
    expect(
      examples.some((src) => word(name).test(src)),
      `no test under examples/ uses ${name}`,
    ).toBe(true);
  });

  test('its links lead to files', () => {
    const links = [...doc.matchAll(/\]\(([^)#]+)(#[^)]*)?\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(10);
    for (const link of links) expect(existsSync(resolve(dirname(DOC), link)), link).toBe(true);
  });

  test('the README links to it', () => {
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain('](docs/testing.md)');
  });
});
