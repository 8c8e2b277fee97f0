/**
 * The job manager's web server (node:http): the REST API of docs/rest-api.md over the observers
 * of the jobs it runs, Prometheus metrics, and the dashboard's static files.
 *
 * NOTE: reading is open; changing a job (POST, PATCH) needs the web token when one is configured,
 * and else comes from a loopback address only (see docs/rest-api.md, "Tokens").
 */
import { timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobVertex } from '../graph/job-graph.js';
import type { JobObserver, TailListener } from './job-observer.js';
import { createMetricsRegistry } from './prometheus.js';
import { TailThrottle } from './tail.js';
import type { ClusterOverview, ErrorResponse, JobsResponse, SavepointRequest } from './types.js';

/** Options of {@link startWebServer}. */
export interface WebServerOptions {
  /** Default 127.0.0.1. */
  host?: string | undefined;
  /** 0: any free port. */
  port: number;
  /** Needed (as `Authorization: Bearer ...`) by POST and PATCH; without one, only loopback may. */
  token?: string | undefined;
  /** The jobs served. */
  observers: () => readonly JobObserver[];
  version: string;
}

/** A running web server. */
export interface WebServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly allow?: string,
  ) {
    super(message);
  }
}

/** The dashboard's directory: `web/` of the package (from source or dist/). */
function webRoot(): string | undefined {
  for (const rel of ['../../web', '../../../web']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  return undefined;
}

const require = createRequire(import.meta.url);

/** Browser builds served under /vendor/, resolved from the installed packages. */
function vendorFile(name: string): string | undefined {
  try {
    switch (name) {
      case 'uPlot.iife.min.js':
        return join(dirname(require.resolve('uplot/package.json')), 'dist', 'uPlot.iife.min.js');
      case 'uPlot.min.css':
        return join(dirname(require.resolve('uplot/package.json')), 'dist', 'uPlot.min.css');
      case 'dagre.min.js':
        return join(dirname(require.resolve('@dagrejs/dagre/package.json')), 'dist', 'dagre.min.js');
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

const STATIC = new Set(['index.html', 'app.js', 'style.css', 'favicon.svg']);
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

function isLoopback(address: string | undefined): boolean {
  return (
    address === '127.0.0.1' ||
    address === '::1' ||
    address === '::ffff:127.0.0.1' ||
    address?.startsWith('127.') === true
  );
}

/** Starts the web server; resolves once it listens. */
export async function startWebServer(options: WebServerOptions): Promise<WebServer> {
  const registry = createMetricsRegistry(options.observers);
  const root = webRoot();
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof HttpError) sendError(res, e.status, e.message, e.allow);
      else sendError(res, 500, `internal error: ${(e as Error).message ?? String(e)}`);
    });
  });

  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Cache-Control': 'no-store',
      'Content-Length': Buffer.byteLength(text),
    });
    res.end(text);
  };
  const sendError = (res: ServerResponse, status: number, message: string, allow?: string) => {
    if (res.headersSent) {
      res.end();
      return;
    }
    if (allow !== undefined) res.setHeader('Allow', allow);
    json(res, status, { errors: [message], status } satisfies ErrorResponse);
  };

  const findJob = (id: string): JobObserver => {
    const o = options.observers().find((x) => x.jobId === id);
    if (o === undefined) throw new HttpError(404, `no job '${id}' here (GET /jobs lists the jobs)`);
    return o;
  };
  const findVertex = (o: JobObserver, raw: string): JobVertex => {
    if (!/^\d+$/.test(raw))
      throw new HttpError(
        400,
        `vertex id '${raw}' is not a number (GET /jobs/${encodeURIComponent(o.jobId)}/plan lists them)`,
      );
    const v = o.vertex(Number(raw));
    if (v === undefined)
      throw new HttpError(
        404,
        `job '${o.jobId}' has no vertex ${raw} (it has ${o.graph.vertices.map((x) => x.id).join(', ')})`,
      );
    return v;
  };
  const methods = (req: IncomingMessage, allowed: string[]) => {
    if (!allowed.includes(req.method ?? 'GET'))
      throw new HttpError(
        405,
        `${req.method} is not allowed on ${req.url?.split('?')[0]} (allowed: ${allowed.join(', ')})`,
        allowed.join(', '),
      );
  };
  const authorize = (req: IncomingMessage) => {
    const token = options.token;
    if (token === undefined) {
      if (!isLoopback(req.socket.remoteAddress))
        throw new HttpError(
          401,
          `changing a job from another host (${req.socket.remoteAddress}) needs a web token: start the job manager with --web-token-file`,
        );
      // NOTE: a web page of any site can send a simple POST to a loopback port (cross-site request
      // forgery); browsers say where it came from (Origin), the CLI and curl do not.
      if (req.headers.origin !== undefined)
        throw new HttpError(
          403,
          `changing a job from a web page (${req.headers.origin}) needs a web token: start the job manager with --web-token-file`,
        );
      return;
    }
    const header = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(header);
    const given = Buffer.from(m?.[1] ?? '');
    const want = Buffer.from(token);
    if (m === null || given.length !== want.length || !timingSafeEqual(given, want))
      throw new HttpError(
        401,
        m === null
          ? 'this call changes a job: it needs Authorization: Bearer <web token>'
          : 'wrong web token',
      );
  };
  const readBody = async (req: IncomingMessage): Promise<unknown> => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > 64 * 1024) throw new HttpError(400, 'request body larger than 64 KiB');
      chunks.push(c as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8').trim();
    if (text === '') return {};
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new HttpError(400, `request body is not JSON: ${(e as Error).message}`);
    }
  };
  const savepointBody = (body: unknown, path: string): SavepointRequest => {
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new HttpError(400, `${path}: the body must be a JSON object`);
    const b = body as Record<string, unknown>;
    const out: SavepointRequest = {};
    for (const key of Object.keys(b))
      if (!['triggerId', 'cancelJob', 'drain', 'targetDirectory', 'formatType'].includes(key))
        throw new HttpError(400, `${path}: unknown field '${key}' (known: triggerId, cancelJob)`);
    if (b.triggerId !== undefined) {
      if (typeof b.triggerId !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(b.triggerId))
        throw new HttpError(
          400,
          `${path}: triggerId must be a string of 1 to 64 letters, digits, '_', '.' or '-'`,
        );
      out.triggerId = b.triggerId;
    }
    if (b.cancelJob !== undefined) {
      if (typeof b.cancelJob !== 'boolean')
        throw new HttpError(400, `${path}: cancelJob must be true or false`);
      out.cancelJob = b.cancelJob;
    }
    return out;
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let parts: string[];
    try {
      parts = url.pathname
        .split('/')
        .filter((p) => p !== '')
        .map(decodeURIComponent);
    } catch {
      throw new HttpError(400, `malformed path ${url.pathname}`);
    }
    const path = url.pathname;
    if (parts.length === 0 || (parts.length === 1 && STATIC.has(parts[0]!))) {
      methods(req, ['GET', 'HEAD']);
      const name = parts[0] ?? 'index.html';
      if (root === undefined || !existsSync(join(root, name)))
        throw new HttpError(404, `no dashboard file ${name} (web/ is missing); the REST API is under /jobs`);
      return sendFile(res, join(root, name));
    }
    if (parts[0] === 'vendor' && parts.length === 2) {
      methods(req, ['GET', 'HEAD']);
      const file = vendorFile(parts[1]!);
      if (file === undefined || !existsSync(file)) throw new HttpError(404, `no vendor file ${parts[1]}`);
      return sendFile(res, file);
    }
    if (path === '/metrics') {
      methods(req, ['GET']);
      const text = await registry.metrics();
      res.writeHead(200, { 'Content-Type': registry.contentType, 'Cache-Control': 'no-store' });
      res.end(text);
      return;
    }
    if (path === '/overview') {
      methods(req, ['GET']);
      const obs = options.observers();
      const figures = obs[0]?.overviewFigures() ?? { taskManagers: 0, slots: 0 };
      const count = (states: string[]) => obs.filter((o) => states.includes(o.state)).length;
      const body: ClusterOverview = {
        version: options.version,
        taskManagers: figures.taskManagers,
        slotsTotal: figures.slots,
        jobsRunning: count(['INITIALIZING', 'RUNNING', 'RESTARTING', 'CANCELLING']),
        jobsFinished: count(['FINISHED']),
        jobsCancelled: count(['CANCELED']),
        jobsFailed: count(['FAILED']),
      };
      return json(res, 200, body);
    }
    if (parts[0] !== 'jobs') throw new HttpError(404, `no such path: ${path}`);
    if (parts.length === 1 || (parts.length === 2 && parts[1] === 'overview')) {
      methods(req, ['GET']);
      return json(res, 200, { jobs: options.observers().map((o) => o.summary()) } satisfies JobsResponse);
    }
    const o = findJob(parts[1]!);
    const rest = parts.slice(2);
    if (rest.length === 0) {
      methods(req, ['GET', 'PATCH']);
      if (req.method === 'PATCH') {
        authorize(req);
        const mode = url.searchParams.get('mode') ?? 'cancel';
        if (mode !== 'cancel') throw new HttpError(400, `mode '${mode}' is not supported (only mode=cancel)`);
        if (!o.running) throw new HttpError(409, `job '${o.jobId}' has already ended (${o.state})`);
        o.cancel();
        return json(res, 202, { jobId: o.jobId, state: o.state });
      }
      return json(res, 200, o.details());
    }
    const [section, a, b, c] = rest;
    if (section === 'plan' && rest.length === 1) {
      methods(req, ['GET']);
      return json(res, 200, o.plan());
    }
    if (section === 'runtime' && rest.length === 1) {
      methods(req, ['GET']);
      return json(res, 200, o.runtime());
    }
    if (section === 'exceptions' && rest.length === 1) {
      methods(req, ['GET']);
      return json(res, 200, o.exceptions());
    }
    if (section === 'checkpoints') {
      if (rest.length === 1) {
        methods(req, ['GET']);
        return json(res, 200, o.checkpointsView());
      }
      if (a === 'details' && rest.length === 3) {
        methods(req, ['GET']);
        if (!/^\d+$/.test(b!)) throw new HttpError(400, `checkpoint id '${b}' is not a number`);
        const d = o.checkpointDetails(Number(b));
        if (d === undefined)
          throw new HttpError(
            404,
            `job '${o.jobId}' has no checkpoint ${b} in its history (GET /jobs/${encodeURIComponent(o.jobId)}/checkpoints lists it)`,
          );
        return json(res, 200, d);
      }
    }
    if (section === 'savepoints' || section === 'stop') {
      if (rest.length === 1) {
        methods(req, ['POST']);
        authorize(req);
        const body = savepointBody(await readBody(req), path);
        if (!o.running) throw new HttpError(409, `job '${o.jobId}' has already ended (${o.state})`);
        if (o.checkpointing === undefined)
          throw new HttpError(
            409,
            `job '${o.jobId}' runs without checkpointing: savepoints need --checkpoint-interval`,
          );
        const id = o.triggerSavepoint({ ...body, ...(section === 'stop' ? { cancelJob: true } : {}) });
        return json(res, 202, { 'request-id': id });
      }
      if (section === 'savepoints' && rest.length === 2) {
        methods(req, ['GET']);
        const s = o.savepointStatus(a!);
        if (s === undefined) throw new HttpError(404, `job '${o.jobId}' has no savepoint request '${a}'`);
        return json(res, 200, s);
      }
    }
    if (section === 'vertices' && a !== undefined) {
      const v = findVertex(o, a);
      if (rest.length === 2) {
        methods(req, ['GET']);
        return json(res, 200, o.vertexDetails(v));
      }
      if (rest.length === 3 && b === 'watermarks') {
        methods(req, ['GET']);
        return json(res, 200, o.watermarks(v));
      }
      if (rest.length === 3 && b === 'backpressure') {
        methods(req, ['GET']);
        return json(res, 200, o.backpressure(v));
      }
      if (rest.length === 3 && b === 'tail') {
        methods(req, ['GET']);
        const raw = url.searchParams.get('rate') ?? '10';
        if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 100)
          throw new HttpError(400, `rate '${raw}' is not a whole number of records per second from 1 to 100`);
        if (!o.running)
          throw new HttpError(
            409,
            `job '${o.jobId}' has ended (${o.state}): there is no live tail to follow`,
          );
        return serveTail(res, o, v, Number(raw));
      }
      void c;
    }
    throw new HttpError(404, `no such path: ${path}`);
  }

  /**
   * A live tail as server-sent events (see `observe/tail.ts`): a `message` event per record shown
   * (`TailEvent`), a comment every 15 s to keep proxies from closing it, and an `end` event when
   * the job ends. The capture is on while the stream is open.
   */
  function serveTail(res: ServerResponse, o: JobObserver, v: JobVertex, rate: number) {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write(`retry: 3000\n: live tail of vertex ${v.id} (${v.name}), at most ${rate} records/s\n\n`);
    const throttle = new TailThrottle(rate);
    // A client that reads slower than it is sent to: records are dropped (and counted) until it catches up.
    let blocked = false;
    let closed = false;
    const listener: TailListener = {
      rate,
      record(r) {
        if (closed) return;
        if (blocked) {
          throttle.drop(r);
          return;
        }
        const event = throttle.offer(r);
        if (event !== undefined && !res.write(`data: ${event}\n\n`)) {
          blocked = true;
          res.once('drain', () => {
            blocked = false;
          });
        }
      },
      end(state) {
        if (closed) return;
        res.end(`event: end\ndata: ${JSON.stringify({ state })}\n\n`);
        cleanup();
      },
    };
    const unsubscribe = o.subscribeTail(v, listener);
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    keepAlive.unref();
    function cleanup(): void {
      if (closed) return;
      closed = true;
      clearInterval(keepAlive);
      unsubscribe();
    }
    // NOTE: the response's close (the client went, or the server closes); the request's comes
    // as soon as its (empty) body was read.
    res.on('close', cleanup);
  }

  function sendFile(res: ServerResponse, file: string): void {
    const data = readFileSync(file);
    const ext = file.slice(file.lastIndexOf('.') + 1);
    res.writeHead(200, {
      'Content-Type': TYPES[ext] ?? 'application/octet-stream',
      'Content-Length': data.length,
      'Cache-Control': 'no-cache',
    });
    res.end(data);
  }

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${shown}:${port}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
