/**
 * The wire between processes (job manager ↔ task managers, task manager ↔ task manager): a TCP
 * connection, optionally TLS (mutual with a CA), carrying length-prefixed msgpackr frames,
 * size-limited and checked, after a mutual challenge–response authentication with a shared token
 * (HMAC-SHA256), so only peers that know the token (or, with mutual TLS, hold a certificate of
 * the cluster's CA) can join a job. Every socket of a distributed run is made here:
 * {@link listenPeers} on the accepting side, {@link connectPeer} on the connecting side.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { InvalidArgumentError, registerErrorClass, TidemarkError } from '../../state/errors.js';
import { decode, encode } from '../../state/snapshot/format.js';
import type { LogLevel } from '../log.js';
import type { Challenge, Hello, HelloAnswer, Opening } from './protocol.js';

/** Largest frame accepted (a bigger length prefix means a broken or hostile peer). */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;
/** Largest frame accepted from a connecting peer before it authenticated. */
export const HANDSHAKE_MAX_FRAME_BYTES = 64 * 1024;
/** How long an incomplete frame may wait for its next byte by default. */
export const DEFAULT_FRAME_TIMEOUT_MS = 60_000;
/** How long the handshake (TLS included) may take by default. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Refused connections from one address are logged once per this interval by default. */
export const DEFAULT_REFUSAL_LOG_INTERVAL_MS = 10_000;
const HELLO = 'tidemark/1';

/**
 * TLS between the processes of a cluster (Flink's `security.ssl.internal.*`), as PEM text. Every
 * process (job manager and task managers) needs a certificate and its key: task managers accept
 * data connections from each other too.
 */
export interface ClusterTlsOptions {
  /** This process's certificate (chain), PEM. */
  cert: string | Buffer;
  /** The certificate's private key, PEM. */
  key: string | Buffer;
  /**
   * The CA that signed the certificates of the cluster, PEM. Given, TLS is mutual: each side
   * requires the other's certificate and accepts only certificates this CA signed (host names are
   * not checked: holding a certificate of the cluster's CA is the identity). Without it, a
   * connecting side checks the other's certificate against the system's CAs and its host name,
   * and no client certificate is asked for (the token authenticates).
   */
  ca?: string | Buffer | undefined;
}

/** Options of a {@link Link}. */
export interface LinkOptions {
  /**
   * An incomplete frame that gets no byte for this long closes the connection (default
   * {@link DEFAULT_FRAME_TIMEOUT_MS}). Keep it above the heartbeat timeout: a cut link shorter
   * than that should only pause a run.
   */
  frameTimeoutMs?: number | undefined;
}

/** Options of {@link connectPeer}. */
export interface ConnectOptions extends LinkOptions {
  /** TLS (default: plain TCP); the peer must use TLS too. */
  tls?: ClusterTlsOptions | undefined;
  /** Bound of the handshake (default {@link DEFAULT_HANDSHAKE_TIMEOUT_MS}). */
  handshakeTimeoutMs?: number | undefined;
}

/** Options of {@link listenPeers}. */
export interface ListenOptions extends ConnectOptions {
  /** Where refused connections are logged. */
  /** Where refused connections are logged (level `warn`). */
  log?: ((line: string, level?: LogLevel) => void) | undefined;
  /**
   * Refused connections from one address are logged once per this interval, then counted (default
   * {@link DEFAULT_REFUSAL_LOG_INTERVAL_MS}).
   */
  refusalLogIntervalMs?: number | undefined;
}

/** A protocol error: a malformed frame, failed authentication, a wrong protocol. */
export class WireError extends TidemarkError {
  constructor(message: string) {
    super('PROTOCOL_ERROR', message);
    this.name = 'WireError';
  }
}
registerErrorClass('WireError', WireError);

/**
 * An authenticated, framed connection. Emits 'message' (decoded object), 'close' and 'error'.
 * Messages that come while nobody listens for them are held, in order, until someone does.
 */
export class Link extends EventEmitter {
  private buffer: Buffer = Buffer.alloc(0);
  private closed = false;
  /** Frames above this size break the connection (smaller while a connecting peer is unauthenticated). */
  maxFrameBytes = MAX_FRAME_BYTES;
  private readonly frameTimeoutMs: number;
  /** Watches an incomplete frame (see {@link LinkOptions.frameTimeoutMs}). */
  private partialTimer: NodeJS.Timeout | undefined;
  /** Whether a whole frame came yet (the first bytes tell a peer of another kind). */
  private framed = false;
  // NOTE: the handshake's listener takes the peer's last handshake message and goes; whoever
  // listens next does so a moment later. A message the peer sent right behind it (the job
  // manager's first heartbeat, or its deployment) can come in the same read, and was dropped.
  private held: unknown[] = [];
  /** When the peer last sent anything (a byte of any frame counts: a big frame is not silence). */
  lastHeardAt = Date.now();
  constructor(
    readonly socket: Socket,
    /** For messages: who the peer is. */
    readonly peer: string,
    options: LinkOptions = {},
  ) {
    super();
    this.frameTimeoutMs = options.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => {
      this.closed = true;
      this.stopWatchingPartial();
      this.emit('close');
    });
    socket.on('error', (e) => this.emit('error', tlsProblem(e, peer) ?? e));
    this.on('newListener', (event: string) => {
      if (event === 'message' && this.held.length > 0) queueMicrotask(() => this.release());
    });
  }

  /** Sends one message. */
  send(message: unknown): void {
    if (this.closed) return;
    const body = encode(message);
    if (body.length > MAX_FRAME_BYTES)
      throw new WireError(
        `a message of ${body.length} bytes is larger than the frame limit of ${MAX_FRAME_BYTES}`,
      );
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length, 0);
    this.socket.write(Buffer.concat([head, body]));
  }

  private onData(d: Buffer): void {
    this.lastHeardAt = Date.now();
    this.buffer = this.buffer.length === 0 ? d : Buffer.concat([this.buffer, d]);
    while (this.buffer.length >= 4) {
      const n = this.buffer.readUInt32BE(0);
      if (n > this.maxFrameBytes) {
        this.broken(
          (this.framed ? undefined : foreignProtocol(this.buffer)) ??
            `a frame of ${n} bytes is larger than the limit of ${this.maxFrameBytes}`,
        );
        return;
      }
      if (this.buffer.length < 4 + n) break;
      const body = this.buffer.subarray(4, 4 + n);
      this.buffer = this.buffer.subarray(4 + n);
      this.framed = true;
      let message: unknown;
      try {
        message = decode(body);
      } catch (e) {
        this.broken(`a malformed frame: ${(e as Error).message}`);
        return;
      }
      if (this.held.length > 0 || this.listenerCount('message') === 0) this.held.push(message);
      else this.emit('message', message);
    }
    if (this.buffer.length > 0 && this.partialTimer === undefined && !this.closed) this.watchPartial();
  }

  /**
   * Closes the connection when an incomplete frame gets no byte for the frame timeout: a peer
   * that sends part of a frame and stalls must not hold a connection and its buffer for ever.
   */
  private watchPartial(): void {
    // NOTE: checked from setImmediate, after the event loop's poll phase (as `watchSilence`): a
    // process that was busy longer than the timeout reads what came meanwhile before it judges.
    const check = () => {
      this.partialTimer = undefined;
      if (this.closed || this.buffer.length === 0) return;
      const idleMs = Date.now() - this.lastHeardAt;
      if (idleMs < this.frameTimeoutMs) {
        this.partialTimer = arm(this.frameTimeoutMs - idleMs);
        return;
      }
      const have = this.buffer.length;
      this.broken(
        have < 4
          ? `an incomplete frame header (${have} of 4 bytes) and nothing more for ${idleMs} ms`
          : `an incomplete frame (${have - 4} of ${this.buffer.readUInt32BE(0)} bytes) and nothing more for ${idleMs} ms`,
      );
    };
    const arm = (ms: number) => {
      const t = setTimeout(() => setImmediate(check), ms);
      t.unref();
      return t;
    };
    this.partialTimer = arm(this.frameTimeoutMs);
  }

  private stopWatchingPartial(): void {
    if (this.partialTimer !== undefined) clearTimeout(this.partialTimer);
    this.partialTimer = undefined;
  }

  /** Emits the held messages while someone listens. */
  private release(): void {
    while (this.held.length > 0 && this.listenerCount('message') > 0) this.emit('message', this.held.shift());
  }

  private broken(reason: string): void {
    this.emit('error', new WireError(`connection with ${this.peer}: ${reason}; closing it`));
    this.close();
  }

  close(): void {
    this.closed = true;
    this.stopWatchingPartial();
    this.socket.destroy();
  }

  /**
   * Closes the connection after what was sent is flushed (a refusal must reach the peer: `close`
   * drops writes still queued, and a close with unread input resets the connection); destroyed
   * anyway after `graceMs`.
   */
  end(graceMs = 2000): void {
    this.closed = true;
    this.stopWatchingPartial();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), graceMs).unref();
  }
}

/** What the first bytes of a connection say when they are no frame of ours, if they say something. */
function foreignProtocol(head: Buffer): string | undefined {
  if (head[1] === 0x03 && (head[0] === 0x16 || head[0] === 0x15))
    return `the peer speaks TLS (a TLS ${head[0] === 0x16 ? 'handshake' : 'alert'}) and this process does not: give every process of the cluster the same TLS settings (--tls-cert, --tls-key, --tls-ca)`;
  const text = head.subarray(0, 16).toString('latin1');
  if (/^[\x20-\x7e\r\n]{4,}$/.test(text))
    return `not a tidemark peer: it sent text (${JSON.stringify(text)}...)`;
  return undefined;
}

/**
 * A TLS error as the user should read it: which side did not accept what, and what to check.
 * Undefined for an error that is not about TLS.
 */
function tlsProblem(e: Error, peer: string): WireError | undefined {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string') return undefined;
  const reason = (e as { reason?: unknown }).reason;
  const detail = `${typeof reason === 'string' ? reason : e.message.split('\n')[0]} (${code})`;
  if (/^ERR_SSL_(WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|RECORD_LAYER_FAILURE|HTTP_REQUEST)/.test(code))
    return new WireError(
      `${peer} does not speak TLS: ${detail}; give every process of the cluster the same TLS settings (--tls-cert, --tls-key, --tls-ca)`,
    );
  if (
    /^ERR_SSL_(TLSV13_ALERT_CERTIFICATE_REQUIRED|TLSV1_ALERT_UNKNOWN_CA|SSLV3_ALERT_BAD_CERTIFICATE)/.test(
      code,
    )
  )
    return new WireError(
      `${peer} did not accept this process's TLS certificate: ${detail}; it must be signed by the CA the peer trusts (--tls-ca)`,
    );
  if (
    /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_|CERT_|ERR_TLS_CERT_ALTNAME_INVALID)/.test(
      code,
    )
  )
    return new WireError(
      `the TLS certificate of ${peer} was not accepted: ${detail}; it must be signed by the CA of --tls-ca`,
    );
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'))
    return new WireError(`TLS with ${peer} failed: ${detail}`);
  return undefined;
}

/**
 * Calls `onSilent` once, with how long it has been, when nothing came over `link` for
 * `timeoutMs` (a peer behind a cut link or a hung host sends no error: only silence). Returns a
 * function that stops watching; watching also stops when the link closes.
 */
export function watchSilence(
  link: Link,
  timeoutMs: number,
  onSilent: (silentMs: number) => void,
): () => void {
  let immediate: NodeJS.Immediate | undefined;
  // NOTE: checked from setImmediate, after the event loop's poll phase: when the loop was blocked
  // longer than the timeout, the data that arrived meanwhile is read before the check, so a busy
  // process does not take its own stall for the peer's silence.
  const check = () => {
    immediate = undefined;
    const silentMs = Date.now() - link.lastHeardAt;
    if (silentMs < timeoutMs) return;
    stop();
    onSilent(silentMs);
  };
  const timer = setInterval(
    () => {
      immediate ??= setImmediate(check);
    },
    Math.max(10, Math.min(1000, timeoutMs / 4)),
  );
  timer.unref();
  const stop = () => {
    clearInterval(timer);
    if (immediate !== undefined) clearImmediate(immediate);
    link.off('close', stop);
  };
  link.once('close', stop);
  return stop;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function proof(token: string, nonce: string, role: string): string {
  return createHmac('sha256', token).update(`${HELLO}:${role}:${nonce}`).digest('hex');
}

function sameProof(a: unknown, b: string): boolean {
  if (typeof a !== 'string' || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

function once(link: Link, timeoutMs: number, onClose = '(wrong token?)'): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => done(new WireError(`${link.peer} did not answer the handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMessage = (m: Record<string, unknown>) => done(undefined, m);
    const onError = (e: Error) => done(e);
    const onClosed = () =>
      done(new WireError(`${link.peer} closed the connection during the handshake ${onClose}`));
    const done = (e?: Error, m?: Record<string, unknown>) => {
      clearTimeout(timer);
      link.off('message', onMessage);
      link.off('error', onError);
      link.off('close', onClosed);
      if (e !== undefined) reject(e);
      else resolve(m!);
    };
    link.on('message', onMessage);
    link.on('error', onError);
    link.on('close', onClosed);
  });
}

/**
 * The accepting side of the handshake: sends a challenge, checks the peer's opening and proof,
 * proves itself in turn. Returns the peer's hello (what it says it is). Closes the connection
 * when the handshake fails. Until the peer proved it knows the token, its frames are limited to
 * {@link HANDSHAKE_MAX_FRAME_BYTES}.
 */
export async function acceptPeer(
  link: Link,
  token: string,
  timeoutMs = DEFAULT_HANDSHAKE_TIMEOUT_MS,
): Promise<Hello> {
  link.maxFrameBytes = HANDSHAKE_MAX_FRAME_BYTES;
  try {
    const nonce = randomBytes(16).toString('hex');
    link.send({ hello: HELLO, nonce } satisfies Challenge);
    const deadline = Date.now() + timeoutMs;
    // NOTE: the connecting side speaks first (its opening), so that a TLS server facing a peer
    // without TLS sees bytes at once and refuses it, instead of both sides waiting for the other.
    const opening = await once(link, timeoutMs);
    if (opening.hello !== HELLO)
      throw new WireError(`${link.peer} speaks ${String(opening.hello)}, not ${HELLO}`);
    const reply = await once(link, Math.max(1, deadline - Date.now()));
    if (reply.hello !== HELLO)
      throw new WireError(`${link.peer} speaks ${String(reply.hello)}, not ${HELLO}`);
    if (!sameProof(reply.proof, proof(token, nonce, 'client'))) {
      link.send({ refused: 'authentication failed: wrong token' } satisfies HelloAnswer);
      throw new WireError(`${link.peer} failed to authenticate (wrong token)`);
    }
    link.maxFrameBytes = MAX_FRAME_BYTES;
    link.send({ proof: proof(token, String(reply.nonce), 'server') } satisfies HelloAnswer);
    return reply as unknown as Hello;
  } catch (e) {
    // NOTE: flushed first: the peer must read the refusal, not a reset (it would try again).
    link.end();
    throw e;
  }
}

/**
 * The connecting side of the handshake; `hello` tells the peer what this process is. With
 * `options.tls` the connection is TLS (the peer must use it too).
 */
export async function connectPeer(
  host: string,
  port: number,
  token: string,
  hello: DistributiveOmit<Hello, 'hello' | 'proof' | 'nonce'>,
  options: ConnectOptions = {},
): Promise<Link> {
  const timeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const socket = await openSocket(host, port, options.tls, timeoutMs);
  const link = new Link(socket, `${host}:${port}`, options);
  try {
    const deadline = Date.now() + timeoutMs;
    link.send({ hello: HELLO } satisfies Opening);
    const challenge = await once(
      link,
      timeoutMs,
      options.tls === undefined
        ? '(does it use TLS? then this process needs the same TLS settings: --tls-cert, --tls-key, --tls-ca)'
        : '(does it accept this certificate?)',
    );
    if (typeof challenge.refused === 'string')
      throw new WireError(`${host}:${port} refused the connection: ${challenge.refused}`);
    if (challenge.hello !== HELLO)
      throw new WireError(`${host}:${port} speaks ${String(challenge.hello)}, not ${HELLO}`);
    const nonce = randomBytes(16).toString('hex');
    link.send({
      ...hello,
      hello: HELLO,
      proof: proof(token, String(challenge.nonce), 'client'),
      nonce,
    } satisfies Hello);
    const answer = await once(link, Math.max(1, deadline - Date.now()));
    if (typeof answer.refused === 'string')
      throw new WireError(`${host}:${port} refused the connection: ${answer.refused}`);
    if (!sameProof(answer.proof, proof(token, nonce, 'server')))
      throw new WireError(`${host}:${port} failed to prove it knows the token`);
    return link;
  } catch (e) {
    link.close();
    throw e;
  }
}

/** A connected socket to `host:port`: plain TCP, or TLS with `tls`. */
function openSocket(
  host: string,
  port: number,
  tls: ClusterTlsOptions | undefined,
  timeoutMs: number,
): Promise<Socket> {
  const where = `${host}:${port}`;
  const socket =
    tls === undefined
      ? netConnect({ host, port })
      : tlsConnect({
          host,
          port,
          cert: tls.cert,
          key: tls.key,
          minVersion: 'TLSv1.3',
          // NOTE: with the cluster's CA, a certificate it signed is the identity (as Flink's
          // internal SSL with its own truststore): peers are often reached by addresses that
          // no certificate names (a task manager's data host is what the job manager saw).
          ...(tls.ca === undefined ? {} : { ca: tls.ca, checkServerIdentity: () => undefined }),
          ...(/^[\d.]+$|:/.test(host) ? {} : { servername: host }),
        });
  return new Promise<Socket>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new WireError(
          `cannot connect to ${where}: no ${tls === undefined ? 'connection' : 'TLS session'} within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      socket.destroy();
      const tlsError = tlsProblem(e, where);
      reject(tlsError ?? new WireError(`cannot connect to ${where}: ${e.message}`));
    });
  });
}

/**
 * Listens on `host:port` (TLS with `options.tls`) for peers that know the token, and calls
 * `onPeer` with each one that completed the handshake (it must listen for the link's errors).
 * A connection refused (not TLS, a certificate not accepted, a wrong token, garbage, a stalled
 * handshake) is closed and logged, at most once per address per `refusalLogIntervalMs`, with a
 * count of the others.
 */
export async function listenPeers(
  address: { host: string; port: number },
  token: string,
  options: ListenOptions,
  onPeer: (link: Link, hello: Hello) => void,
): Promise<Server> {
  const tls = options.tls;
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const refusals = new RefusalLog(options.log ?? (() => {}), options.refusalLogIntervalMs);
  const peerOf = (socket: Socket) =>
    `${(socket.remoteAddress ?? '?').replace(/^::ffff:/, '')}:${socket.remotePort ?? '?'}`;
  const hostOf = (socket: Socket) => (socket.remoteAddress ?? '?').replace(/^::ffff:/, '');
  const accept = (socket: Socket, refusal?: { reason: string; told: string }) => {
    const link = new Link(socket, peerOf(socket), options);
    let refused = false;
    const refuse = (reason: string) => {
      if (refused) return;
      refused = true;
      refusals.report(hostOf(socket), `refused ${link.peer}: ${reason}`);
      link.close();
    };
    const onError = (e: Error) => refuse(e.message);
    link.on('error', onError);
    if (refusal !== undefined) {
      // Over TLS the peer can read why; it is closed once the frame is out (at the latest a
      // second later, for a peer that does not read).
      link.send({ refused: refusal.told } satisfies HelloAnswer);
      refused = true;
      refusals.report(hostOf(socket), `refused ${link.peer}: ${refusal.reason}`);
      socket.end();
      setTimeout(() => link.close(), 1000).unref();
      return;
    }
    acceptPeer(link, token, handshakeTimeoutMs).then(
      (hello) => {
        link.off('error', onError);
        onPeer(link, hello);
      },
      (e: unknown) => refuse((e as Error).message),
    );
  };
  let server: Server;
  if (tls === undefined) server = createServer((socket) => accept(socket));
  else {
    const mutual = tls.ca !== undefined;
    server = createTlsServer(
      {
        cert: tls.cert,
        key: tls.key,
        minVersion: 'TLSv1.3',
        handshakeTimeout: handshakeTimeoutMs,
        // NOTE: the client's certificate is checked here rather than by OpenSSL, so that the
        // refusal says why, on both sides (OpenSSL would only drop the connection).
        ...(mutual ? { ca: tls.ca, requestCert: true, rejectUnauthorized: false } : {}),
      },
      (socket: TLSSocket) => {
        if (!mutual || socket.authorized) accept(socket);
        else {
          const why =
            Object.keys(socket.getPeerCertificate()).length > 0
              ? `was not accepted (${String(socket.authorizationError)}): it must be signed by the CA of the peer's --tls-ca`
              : 'is missing: mutual TLS needs one (--tls-cert, --tls-key)';
          accept(socket, {
            reason: `its TLS certificate ${why}`,
            told: `this process's TLS certificate ${why}`,
          });
        }
      },
    );
    // NOTE: a TLS socket whose handshake failed is already destroyed, its address gone: it is
    // taken from the raw socket under it (Node's `_parent`), noted when it connected.
    const addresses = new WeakMap<Socket, { peer: string; host: string }>();
    server.on('connection', (raw: Socket) => addresses.set(raw, { peer: peerOf(raw), host: hostOf(raw) }));
    server.on('tlsClientError', (e: Error, socket: TLSSocket) => {
      const raw = (socket as unknown as { _parent?: Socket })._parent;
      const where = (raw === undefined ? undefined : addresses.get(raw)) ?? {
        peer: peerOf(socket),
        host: hostOf(socket),
      };
      const peer = where.peer;
      const code = (e as { code?: unknown }).code;
      const reason =
        code === 'ECONNRESET'
          ? 'it closed the connection during the TLS handshake (does it trust this certificate? it must be signed by the CA of its --tls-ca)'
          : (tlsProblem(e, peer)?.message ?? e.message);
      refusals.report(where.host, `refused ${peer}: ${reason}`);
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) =>
      reject(new WireError(`cannot listen on ${address.host}:${address.port}: ${e.message}`)),
    );
    server.listen(address.port, address.host, () => resolve());
  });
  return server;
}

/**
 * Logs refused connections at most once per peer address per interval: the first one as it
 * comes, the others counted and summed up when the interval ends (1000 connections of garbage
 * are two lines, not 1000).
 */
export class RefusalLog {
  private readonly recent = new Map<string, { suppressed: number; last: string }>();
  constructor(
    private readonly log: (line: string, level?: LogLevel) => void,
    private readonly intervalMs = DEFAULT_REFUSAL_LOG_INTERVAL_MS,
  ) {}

  /** Logs `line` about a connection from `address`, unless one from there was logged lately. */
  report(address: string, line: string): void {
    // NOTE: bounded: past 1024 addresses in one interval, the others share one entry.
    const key = this.recent.has(address) || this.recent.size < 1024 ? address : 'other addresses';
    const entry = this.recent.get(key);
    if (entry !== undefined) {
      entry.suppressed++;
      entry.last = line;
      return;
    }
    this.log(line, 'warn');
    const fresh = { suppressed: 0, last: line };
    this.recent.set(key, fresh);
    setTimeout(() => {
      this.recent.delete(key);
      if (fresh.suppressed > 0)
        this.log(
          `${fresh.suppressed} more connection(s) from ${key} refused in the last ${Math.round(this.intervalMs / 1000)} s; the last: ${fresh.last}`,
          'warn',
        );
    }, this.intervalMs).unref();
  }
}

/**
 * Checks that connections will be authenticated: by a token of at least 8 characters, or by
 * mutual TLS (a CA given).
 */
export function checkAuthentication(token: string, tls: ClusterTlsOptions | undefined): void {
  if (token.length >= 8 || (token === '' && tls?.ca !== undefined)) return;
  throw new InvalidArgumentError(
    token === ''
      ? 'connections between hosts must be authenticated: give a shared token (at least 8 characters) or mutual TLS (a CA)'
      : 'the shared token must have at least 8 characters',
  );
}

/** `host:port` → parts (port required). */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(address);
  if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65535)
    throw new WireError(`'${address}' is not host:port`);
  return { host: m[1] === '' ? '0.0.0.0' : m[1]!.replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) };
}
