/** Loads a job module (TypeScript or JavaScript) and checks that it exports a job. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InvalidArgumentError, registerErrorClass } from '../../state/errors.js';
import { type ExecutionContext, type JobClient, setExecutionContext } from '../environment.js';
import { isJobDefinition, type JobDefinition } from '../job.js';

/** A mistake in how the CLI was called (exit code 2). */
export class UsageError extends InvalidArgumentError {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
registerErrorClass('UsageError', UsageError);

/** A loaded job module. */
export interface LoadedJob {
  definition: JobDefinition;
  /** The job's name: its own, or the module's file name. */
  name: string;
  path: string;
}

/** A module that ran its jobs itself while it was loaded (`await env.execute()` at its top level). */
export interface SelfExecutedModule {
  /** The jobs it started, in order. */
  executions: JobClient[];
  path: string;
}

/**
 * Imports `file` and returns its job (the default export, or an export named `job`). A module
 * that starts a job itself while it is loaded is refused before that job starts: `command` (e.g.
 * `tidemark plan`) needs a job it runs itself.
 */
export async function loadJob(file: string, command = 'tidemark'): Promise<LoadedJob> {
  const loaded = await loadJobModule(file, {
    beforeExecute: () => {
      throw new UsageError(
        `${file} runs its job itself when it is loaded (env.execute()); ${command} needs a module whose default export is job((env) => { ... }) from 'tidemark'`,
      );
    },
    started: () => {},
  });
  if ('definition' in loaded) return loaded;
  throw new UsageError(`${file} ran a job when loaded, which ${command} cannot use`);
}

/**
 * Imports `file`: returns its job, or, if the module started jobs itself while it was loaded (as a
 * program calling `env.execute()` does), those jobs. `context` sees each such job before it
 * starts (and may refuse it by throwing) and once it has started.
 */
export async function loadJobModule(
  file: string,
  context: ExecutionContext,
): Promise<LoadedJob | SelfExecutedModule> {
  const path = resolve(file);
  if (!existsSync(path) || !statSync(path).isFile()) throw new UsageError(`job module not found: ${file}`);
  const executions: JobClient[] = [];
  let refusal: unknown;
  let mod: Record<string, unknown>;
  setExecutionContext({
    beforeExecute: (jobName) => {
      try {
        context.beforeExecute(jobName);
      } catch (e) {
        refusal ??= e;
        throw e;
      }
    },
    started: (client) => {
      executions.push(client);
      context.started(client);
    },
  });
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (e) {
    if (refusal !== undefined) throw refusal;
    // A job the module ran itself that failed: reported as that job's failure.
    if (executions.length > 0) return { executions, path };
    throw new UsageError(`could not load job module ${file}: ${describeLoadError(e, path)}`);
  } finally {
    setExecutionContext(undefined);
  }
  if (refusal !== undefined) throw refusal;
  if (executions.length > 0) return { executions, path };
  const candidate = isJobDefinition(mod.default)
    ? mod.default
    : isJobDefinition(mod.job)
      ? mod.job
      : undefined;
  if (candidate === undefined)
    throw new UsageError(
      `${file} does not export a job: its default export must be job((env) => { ... }) from 'tidemark'`,
    );
  return { definition: candidate, name: candidate.name ?? basename(path, extname(path)), path };
}

/** Why a module could not be loaded, in one line: a syntax error with its file, line and column. */
function describeLoadError(e: unknown, path: string): string {
  const message = e instanceof Error ? e.message : String(e);
  // TypeScript, compiled by esbuild through tsx: "Transform failed with 1 error:\n<file>:<line>:<column>: ERROR: <text>"
  const transform = /^(.*):(\d+):(\d+): ERROR: (.*)$/m.exec(message);
  if (message.startsWith('Transform failed') && transform !== null) {
    const [, reported = '', line, column, text] = transform;
    return `syntax error at ${sourceFile(reported, path)}:${line}:${Number(column) + 1}: ${text}`;
  }
  // JavaScript, parsed by V8, whose message does not say where: esbuild says it.
  if (e instanceof SyntaxError) {
    const found = syntaxErrorIn(path);
    if (found !== undefined) return found;
  }
  const first = message.split('\n')[0] ?? '';
  if (/require\(\) ES Module|Cannot use import statement outside a module/.test(first))
    return `it is an ES module (import/export) in a CommonJS package ("type": "commonjs" in its package.json): name it .mts, or set "type": "module"`;
  return first;
}

/**
 * The file esbuild named. NOTE: tsx names a `.mts` or `.cts` module `.ts` when it compiles it: the
 * job module's name but for the extension is the job module; another such name, the `.mts` or
 * `.cts` file that exists.
 */
function sourceFile(reported: string, path: string): string {
  const stem = (p: string) => p.slice(0, p.length - extname(p).length);
  if (stem(reported) === stem(path)) return path;
  if (existsSync(reported) || extname(reported) !== '.ts') return reported;
  return [`${stem(reported)}.mts`, `${stem(reported)}.cts`].find((p) => existsSync(p)) ?? reported;
}

/** Minimal view of esbuild's transform (a dependency of tsx, which loads job modules). */
interface EsbuildTransform {
  transformSync(source: string, options: { loader: string; sourcefile: string; format: string }): unknown;
}

/** The first syntax error of the module at `path`, as esbuild finds it, if it finds one. */
function syntaxErrorIn(path: string): string | undefined {
  let esbuild: EsbuildTransform;
  let source: string;
  try {
    const require = createRequire(import.meta.url);
    esbuild = createRequire(require.resolve('tsx/package.json'))('esbuild') as EsbuildTransform;
    source = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const ext = extname(path).slice(1);
  const loader = { mts: 'ts', cts: 'ts', mjs: 'js', cjs: 'js' }[ext] ?? ext;
  try {
    esbuild.transformSync(source, { loader, sourcefile: path, format: 'esm' });
    return undefined;
  } catch (e) {
    const first = (e as { errors?: { text: string; location?: { line: number; column: number } }[] })
      .errors?.[0];
    if (first?.location === undefined) return undefined;
    return `syntax error at ${path}:${first.location.line}:${first.location.column + 1}: ${first.text}`;
  }
}
