/**
 * Global test setup: one `redis-server` for the whole run (unless `TIDEMARK_REDIS_URL` names one),
 * its URL handed to tests as `inject('redisUrl')`; tests isolate themselves with a unique key
 * prefix. Stopped at teardown.
 */
import type { TestProject } from 'vitest/node';
import { type RedisTestServer, redisServerAvailable, startRedis } from './redis.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the Redis server shared by the run's tests (no key prefix: each test picks its own). */
    redisUrl: string;
  }
}

let server: RedisTestServer | undefined;

/** Starts the shared Redis (or takes `TIDEMARK_REDIS_URL`) and provides its URL. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const fromEnv = process.env['TIDEMARK_REDIS_URL'];
  if (fromEnv !== undefined && fromEnv !== '') {
    project.provide('redisUrl', fromEnv);
    return async () => {};
  }
  if (!redisServerAvailable())
    throw new Error(
      'The tests need Redis: redis-server is not installed. Install it (Debian/Ubuntu: `apt-get install -y redis-server`) or set TIDEMARK_REDIS_URL=redis://host:port to use a running server.',
    );
  server = await startRedis();
  project.provide('redisUrl', server.url);
  return async () => {
    await server?.stop();
    server = undefined;
  };
}
