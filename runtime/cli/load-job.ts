/** Loads a job module (TypeScript or JavaScript) and checks that it exports a job. */
import { existsSync, statSync } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InvalidArgumentError, registerErrorClass } from '../../state/errors.js';
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

/** Imports `file` and returns its job (the default export, or an export named `job`). */
export async function loadJob(file: string): Promise<LoadedJob> {
  const path = resolve(file);
  if (!existsSync(path) || !statSync(path).isFile()) throw new UsageError(`job module not found: ${file}`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (e) {
    const msg = e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e);
    const hint = /require\(\) ES Module|Cannot use import statement outside a module/.test(msg)
      ? ' (it is an ES module outside an ESM package: name it .mts, or add "type": "module" to its package.json)'
      : '';
    throw new UsageError(`could not load job module ${file}: ${msg}${hint}`);
  }
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
