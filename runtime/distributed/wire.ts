/**
 * The wire between processes (job manager ↔ task managers, task manager ↔ task manager): a TCP
 * connection carrying length-prefixed msgpackr frames, size-limited and checked, after a mutual
 * challenge–response authentication with a shared token (HMAC-SHA256), so only peers that know
 * the token can join a job.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { registerErrorClass, TidemarkError } from '../../state/errors.js';
import { decode, encode } from '../../state/snapshot/format.js';
import type { Challenge, Hello, HelloAnswer } from './protocol.js';

/** Largest frame accepted (a bigger length prefix means a broken or hostile peer). */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;
const HELLO = 'tidemark/1';

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
  ) {
    super();
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => {
      this.closed = true;
      this.emit('close');
    });
    socket.on('error', (e) => this.emit('error', e));
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
      if (n > MAX_FRAME_BYTES) {
        this.broken(`a frame of ${n} bytes is larger than the limit of ${MAX_FRAME_BYTES}`);
        return;
      }
      if (this.buffer.length < 4 + n) return;
      const body = this.buffer.subarray(4, 4 + n);
      this.buffer = this.buffer.subarray(4 + n);
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
    this.socket.destroy();
  }
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

function once(link: Link, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => done(new WireError(`${link.peer} did not answer the handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMessage = (m: Record<string, unknown>) => done(undefined, m);
    const onError = (e: Error) => done(e);
    const onClose = () =>
      done(new WireError(`${link.peer} closed the connection during the handshake (wrong token?)`));
    const done = (e?: Error, m?: Record<string, unknown>) => {
      clearTimeout(timer);
      link.off('message', onMessage);
      link.off('error', onError);
      link.off('close', onClose);
      if (e !== undefined) reject(e);
      else resolve(m!);
    };
    link.on('message', onMessage);
    link.on('error', onError);
    link.on('close', onClose);
  });
}

/**
 * The accepting side of the handshake: sends a challenge, checks the peer's proof, proves itself
 * in turn. Returns the peer's hello (what it says it is).
 */
export async function acceptPeer(link: Link, token: string, timeoutMs = 10_000): Promise<Hello> {
  const nonce = randomBytes(16).toString('hex');
  link.send({ hello: HELLO, nonce } satisfies Challenge);
  const reply = await once(link, timeoutMs);
  if (reply.hello !== HELLO) {
    link.close();
    throw new WireError(`${link.peer} speaks ${String(reply.hello)}, not ${HELLO}`);
  }
  if (!sameProof(reply.proof, proof(token, nonce, 'client'))) {
    link.send({ refused: 'authentication failed: wrong token' } satisfies HelloAnswer);
    link.close();
    throw new WireError(`${link.peer} failed to authenticate (wrong token)`);
  }
  link.send({ proof: proof(token, String(reply.nonce), 'server') } satisfies HelloAnswer);
  return reply as unknown as Hello;
}

/** The connecting side of the handshake; `hello` tells the peer what this process is. */
export async function connectPeer(
  host: string,
  port: number,
  token: string,
  hello: DistributiveOmit<Hello, 'hello' | 'proof' | 'nonce'>,
  timeoutMs = 10_000,
): Promise<Link> {
  const socket = netConnect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', (e) => reject(new WireError(`cannot connect to ${host}:${port}: ${e.message}`)));
  });
  const link = new Link(socket, `${host}:${port}`);
  const challenge = await once(link, timeoutMs);
  if (challenge.hello !== HELLO) {
    link.close();
    throw new WireError(`${host}:${port} speaks ${String(challenge.hello)}, not ${HELLO}`);
  }
  const nonce = randomBytes(16).toString('hex');
  link.send({
    ...hello,
    hello: HELLO,
    proof: proof(token, String(challenge.nonce), 'client'),
    nonce,
  } satisfies Hello);
  const answer = await once(link, timeoutMs);
  if (typeof answer.refused === 'string') {
    link.close();
    throw new WireError(`${host}:${port} refused the connection: ${answer.refused}`);
  }
  if (!sameProof(answer.proof, proof(token, nonce, 'server'))) {
    link.close();
    throw new WireError(`${host}:${port} failed to prove it knows the token`);
  }
  return link;
}

/** `host:port` → parts (port required). */
export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(address);
  if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65535)
    throw new WireError(`'${address}' is not host:port`);
  return { host: m[1] === '' ? '0.0.0.0' : m[1]!.replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) };
}
