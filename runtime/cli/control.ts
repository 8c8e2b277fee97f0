/**
 * The local control channel of a running job: `tidemark run` listens on a Unix socket named after
 * the job id; `tidemark savepoint <job-id>` asks it for a savepoint. One JSON line each way.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, TidemarkError } from '../../state/errors.js';

/** The directory with control sockets (`TIDEMARK_HOME` or `./.tidemark`). */
export function controlDir(): string {
  return resolve(process.env.TIDEMARK_HOME ?? '.tidemark', 'control');
}

function socketPath(jobId: string): string {
  return join(controlDir(), `${jobId.replace(/[^A-Za-z0-9_.-]/g, '_')}.sock`);
}

/** Requests a running job answers. */
export interface ControlHandlers {
  savepoint(): Promise<number>;
}

/** Listens for control requests of a job; returns a function that stops listening. */
export async function listenForControl(jobId: string, handlers: ControlHandlers): Promise<() => void> {
  const path = socketPath(jobId);
  mkdirSync(controlDir(), { recursive: true });
  rmSync(path, { force: true });
  const server: Server = createServer((socket) => {
    let buffer = '';
    socket.on('data', (d) => {
      buffer += d.toString();
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      const line = buffer.slice(0, nl);
      let request: { op?: string };
      try {
        request = JSON.parse(line) as { op?: string };
      } catch {
        socket.end(`${JSON.stringify({ ok: false, error: 'malformed request' })}\n`);
        return;
      }
      if (request.op !== 'savepoint') {
        socket.end(`${JSON.stringify({ ok: false, error: `unknown request '${String(request.op)}'` })}\n`);
        return;
      }
      handlers.savepoint().then(
        (id) => socket.end(`${JSON.stringify({ ok: true, savepoint: id })}\n`),
        (e: unknown) => socket.end(`${JSON.stringify({ ok: false, error: (e as Error).message })}\n`),
      );
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(path, () => res());
  });
  server.unref();
  return () => {
    server.close();
    rmSync(path, { force: true });
  };
}

/** Asks the running job `jobId` for a savepoint; resolves with its id. */
export function requestSavepoint(jobId: string, timeoutMs = 600_000): Promise<number> {
  const path = socketPath(jobId);
  return new Promise((res, rej) => {
    const socket = createConnection(path);
    let buffer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      rej(new TidemarkError('CHECKPOINT_ERROR', `job '${jobId}' did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`${JSON.stringify({ op: 'savepoint' })}\n`));
    socket.on('data', (d) => (buffer += d.toString()));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      rej(
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? new InvalidArgumentError(
              `no running job '${jobId}' here (no control socket at ${path}); start it with tidemark run in this directory`,
            )
          : e,
      );
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        const reply = JSON.parse(buffer) as { ok: boolean; savepoint?: number; error?: string };
        if (reply.ok && reply.savepoint !== undefined) res(reply.savepoint);
        else
          rej(new TidemarkError('CHECKPOINT_ERROR', reply.error ?? 'savepoint failed', { jobName: jobId }));
      } catch {
        rej(new TidemarkError('PROTOCOL_ERROR', `job '${jobId}' sent a malformed reply`));
      }
    });
  });
}
