/**
 * ioredis, loaded on first use: a job that uses no Redis does not pay for loading it (about 0.1 s
 * in every process and in every slot's worker thread).
 */
import { createRequire } from 'node:module';
import type * as IORedis from 'ioredis';

const require = createRequire(import.meta.url);
let loaded: typeof IORedis | undefined;

/** The ioredis module. */
export function ioredis(): typeof IORedis {
  loaded ??= require('ioredis') as typeof IORedis;
  return loaded;
}
