import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { lastLine, ROOT, runCli } from '../helpers/cli.js';

const exec = promisify(execFile);
const DIST = join(ROOT, 'dist');
const packDir = mkdtempSync(join(tmpdir(), 'tidemark-pack-'));
afterAll(() => rmSync(packDir, { recursive: true, force: true }));
let packed: { filename: string; files: { path: string }[] };

// NOTE: one build for the whole file (it writes dist/, which the tests below read): `npm pack`,
// which builds it as installing from git does, through the `prepare` script.
beforeAll(async () => {
  rmSync(DIST, { recursive: true, force: true });
  const { stdout } = await exec('npm', ['pack', '--json', '--pack-destination', packDir], {
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
  });
  packed = (JSON.parse(stdout) as (typeof packed)[])[0]!;
}, 300_000);

test('npm pack builds dist/ (prepare) and packs what an installation needs, and nothing else', () => {
  const files = packed.files.map((f) => f.path);
  for (const needed of [
    'LICENSE',
    'README.md',
    'package.json',
    'bin/tidemark.js',
    'bin/worker.js',
    'bin/resolve-hooks.js',
    'dist/runtime/index.js',
    'dist/runtime/index.d.ts',
    'dist/runtime/cli/main.js',
    'dist/runtime/distributed/worker-main.js',
    'dist/state/storage/scripts/commit-9.lua',
    'web/index.html',
    'web/app.js',
    'web/style.css',
  ])
    expect(files).toContain(needed);
  expect(
    files.filter((f) => !/^(LICENSE|README\.md|package\.json|bin\/.*|dist\/.*|web\/.*)$/.test(f)),
  ).toEqual([]);
  expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
  expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toMatch(
    /^\s*Apache License\s+Version 2\.0, January 2004/,
  );
  expect(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).license).toBe('Apache-2.0');
});

test('installed from its package in another project, tidemark runs a job there (in one thread and on 2 slots)', async () => {
  const project = join(packDir, 'project');
  const installed = join(project, 'node_modules', 'tidemark');
  mkdirSync(installed, { recursive: true });
  await exec('tar', ['xzf', join(packDir, packed.filename), '-C', installed, '--strip-components=1']);
  expect(existsSync(join(installed, 'runtime'))).toBe(false);
  // NOTE: the dependencies as npm would install them, from this checkout (no network in tests).
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  for (const dep of Object.keys(pkg.dependencies)) {
    // A scoped package (@scope/name) lives in a directory of its scope.
    mkdirSync(dirname(join(project, 'node_modules', dep)), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', dep), join(project, 'node_modules', dep), 'dir');
  }
  writeFileSync(join(project, 'package.json'), '{"name":"a-user-project","type":"module","private":true}\n');
  writeFileSync(
    join(project, 'job.ts'),
    `import { job } from 'tidemark';
export default job((env) => {
  env.fromElements('a', 'b', 'a').map((w) => ({ w, n: 1 })).keyBy((r) => r.w)
    .reduce((a, b) => ({ w: a.w, n: a.n + b.n })).printSummary((r) => r.w, (r) => r.n);
});
`,
  );
  for (const args of [[], ['-p', '2', '--slots', '2']]) {
    const { stdout, stderr } = await exec(
      process.execPath,
      [join(installed, 'bin/tidemark.js'), 'run', 'job.ts', ...args],
      {
        cwd: project,
      },
    );
    expect(stderr).toBe('');
    expect(lastLine(stdout)).toBe('{"a":2,"b":1}');
  }
}, 120_000);

test('npm run build type-checks and emits a dist/ that runs jobs without the sources', async () => {
  // Plain node (no tsx, no source condition) resolves the package to dist/.
  const { stdout } = await exec(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      "const m = await import('tidemark'); const t = await import('tidemark/testing'); console.log(import.meta.resolve('tidemark'), typeof m.job, typeof t.ManualClock)",
    ],
    { cwd: ROOT },
  );
  expect(stdout.trim()).toMatch(/\/dist\/runtime\/index\.js function function$/);
  const r = await runCli(['run', 'examples/wordcount.ts', '--parallelism', '2'], {
    env: { TIDEMARK_USE_BUILD: '1' },
  });
  expect(r.code).toBe(0);
  expect(JSON.parse(lastLine(r.stdout))).toEqual({ hello: 2, world: 1, python: 2, is: 1, fun: 1 });
}, 120_000);

/** Plumbing that must not be part of the published types (names of declarations and members). */
const INTERNAL = [
  'JobGraph',
  'JobVertex',
  'StreamEdge',
  'StreamNode',
  'SchedulingPolicy',
  'SimulationPolicy',
  'ExecutionOptions',
  'RunOptions',
  'SlotWiring',
  'SlotProvider',
  'SlotInit',
  'LocalExecutor',
  'JobRunner',
  'ClusterExecutor',
  'CheckpointCoordinator',
  'ResultCollector',
  'Task',
  'RedisSinkOperator',
  'FileSinkOperator',
  'killSlot',
  'getJobGraph',
  'isJobDefinition',
  'serializeError',
  'deserializeError',
];

// NOTE: inside the package, so that `tidemark` resolves to it as it does for a user: without the
// `tidemark-source` condition, through the `types` of package.json `exports`, to dist/.
const consumerDir = mkdtempSync(join(ROOT, 'test', '.tmp-consumer-'));
afterAll(() => rmSync(consumerDir, { recursive: true, force: true }));

const consumer = `import type * as api from 'tidemark';
import { type ExecuteOptions, FileSink, type JobClient, job, StreamExecutionEnvironment } from 'tidemark';
import { OperatorHarness } from 'tidemark/testing';

export default job((env) => {
  env.fromElements(1, 2).map((x) => x * 2).sinkTo(FileSink.jsonLines<number>('out'));
});
const options: ExecuteOptions = { parallelism: 2, distributed: { slots: 2, jobPath: 'job.ts' } };
const env = StreamExecutionEnvironment.create();
const client: JobClient = env.executeAsync(options);
export const plan: string = env.getExecutionPlan('json');
export const harness = OperatorHarness.forOneInput<number, number>((s) => s.map((x) => x + 1));
// @ts-expect-error killSlot is not published
void client.killSlot(1);
// @ts-expect-error getJobGraph is not published
env.getJobGraph();
// @ts-expect-error a scheduling policy is not an option of execute
env.execute({ policy: {} });
// @ts-expect-error nor is a slot provider
env.execute({ distributed: { slots: 2, jobPath: 'job.ts', provider: {} } });
// @ts-expect-error the job graph is not published
export type Graph = api.JobGraph;
// @ts-expect-error the sinks' operators are not published
export type Sink = api.FileSinkOperator<number>;
`;

test('the published declarations type-check for a user and do not mention the internals', () => {
  const file = join(consumerDir, 'consumer.ts');
  writeFileSync(file, consumer);
  const program = ts.createProgram([file], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2023.d.ts'],
    types: ['node'],
    strict: true,
    noEmit: true,
    skipLibCheck: false,
  });
  const diagnostics = ts
    .getPreEmitDiagnostics(program)
    .map((d) => `${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
  expect(diagnostics).toEqual([]);
  const entries = ['runtime/index.d.ts', 'runtime/testing/index.d.ts'].map((p) => join(DIST, p));
  // The consumer is the only TypeScript source in the program: tidemark came from dist/.
  const sources = program
    .getSourceFiles()
    .map((f) => f.fileName)
    .filter((f) => f.startsWith(ROOT) && !f.endsWith('.d.ts'));
  expect(sources).toEqual([file]);

  const published = publishedDeclarations(program, entries);
  expect(published.size).toBeGreaterThan(200);
  const leaks: string[] = [];
  for (const [where, names] of published)
    for (const name of INTERNAL) if (names.has(name)) leaks.push(`${where} mentions ${name}`);
  expect(leaks).toEqual([]);
});

/**
 * What a user of the built package sees, by declaration: every export of the entries, and every
 * top-level declaration of dist/ that a seen declaration refers to (the types of its members,
 * parameters and results, its base types ...), each with the identifiers it contains.
 */
function publishedDeclarations(program: ts.Program, entries: string[]): Map<string, Set<string>> {
  const checker = program.getTypeChecker();
  const targets = (symbol: ts.Symbol): readonly ts.Declaration[] =>
    ((symbol.flags & ts.SymbolFlags.Alias) !== 0 ? checker.getAliasedSymbol(symbol) : symbol).declarations ??
    [];
  const topLevel = (d: ts.Node): boolean =>
    ts.isSourceFile(d.parent) || (ts.isVariableDeclaration(d) && ts.isSourceFile(d.parent.parent.parent));
  const seen = new Map<ts.Node, Set<string>>();
  const queue: ts.Node[] = [];
  const see = (d: ts.Node) => {
    if (!d.getSourceFile().fileName.startsWith(DIST) || !topLevel(d) || seen.has(d)) return;
    seen.set(d, new Set());
    queue.push(d);
  };
  for (const entry of entries) {
    const file = program.getSourceFile(entry);
    const module = file === undefined ? undefined : checker.getSymbolAtLocation(file);
    if (module === undefined) throw new Error(`${entry} is not part of the program`);
    for (const symbol of checker.getExportsOfModule(module)) for (const d of targets(symbol)) see(d);
  }
  for (let d = queue.pop(); d !== undefined; d = queue.pop()) {
    const names = seen.get(d)!;
    const visit = (node: ts.Node): void => {
      if (ts.isIdentifier(node)) {
        names.add(node.text);
        const symbol = checker.getSymbolAtLocation(node);
        if (symbol !== undefined) for (const target of targets(symbol)) see(target);
      }
      ts.forEachChild(node, visit);
    };
    visit(d);
  }
  const out = new Map<string, Set<string>>();
  for (const [d, names] of seen) {
    const name = (d as ts.Node & { name?: ts.Node }).name;
    const label = `${d.getSourceFile().fileName.slice(DIST.length + 1)}: ${name !== undefined && ts.isIdentifier(name) ? name.text : ts.SyntaxKind[d.kind]}`;
    out.set(label, new Set([...(out.get(label) ?? []), ...names]));
  }
  return out;
}
