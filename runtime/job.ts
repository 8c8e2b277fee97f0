/**
 * Job modules: a job is a module whose default export is `job((env) => { ... })`. Every process
 * and thread that runs part of the job imports the module and builds the same graph.
 */
import type { EnvironmentOptions } from '../operators/environment.js';
import { InvalidArgumentError } from '../state/errors.js';
import { StreamExecutionEnvironment } from './environment.js';

const JOB = Symbol.for('tidemark.job');

/** Builds a job's graph on the environment it is given. */
export type JobBuilder = (env: StreamExecutionEnvironment) => void | Promise<void>;

/** A job definition, the default export of a job module. */
export interface JobDefinition {
  readonly [JOB]: true;
  /** The job's name (default: the module's file name). */
  readonly name: string | undefined;
  /** Environment defaults of the job (the CLI's flags override them). */
  readonly options: EnvironmentOptions;
  readonly build: JobBuilder;
}

/** Declares a job: `export default job((env) => { env.fromElements(...)...print(); })`. */
export function job(build: JobBuilder, options: EnvironmentOptions & { name?: string } = {}): JobDefinition {
  if (typeof build !== 'function')
    throw new InvalidArgumentError('job() needs a function that builds the job graph');
  const { name, ...envOptions } = options;
  return { [JOB]: true, name, options: envOptions, build };
}

/** True if `value` was made by {@link job}. */
export function isJobDefinition(value: unknown): value is JobDefinition {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[JOB] === true;
}

/** Creates an environment and builds a job on it. */
export async function buildJob(
  definition: JobDefinition,
  options: EnvironmentOptions = {},
): Promise<StreamExecutionEnvironment> {
  const env = new StreamExecutionEnvironment({
    ...definition.options,
    ...(definition.name === undefined ? {} : { jobName: definition.name }),
    ...stripUndefined(options),
  });
  await definition.build(env);
  return env;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
