// The framed connection between processes: a message that comes while nobody listens (right
// after the handshake's listener took its message and went) waits for the next listener.
import { connect, createServer, type Socket } from 'node:net';
import { expect, test } from 'vitest';
import { Link } from '../../runtime/distributed/wire.js';
import { encode } from '../../state/snapshot/format.js';

function frame(message: unknown): Buffer {
  const body = encode(message);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

test('messages that come in one read with the last one a listener took are held for the next listener', async () => {
  let sender!: Socket;
  const server = createServer((s) => {
    sender = s;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const link = new Link(socket, 'test peer');
  try {
    // A handshake-like listener: takes one message and goes.
    const first = new Promise<unknown>((resolve) => {
      const take = (m: unknown) => {
        link.off('message', take);
        resolve(m);
      };
      link.on('message', take);
    });
    await new Promise<void>((r) => {
      const wait = () => (sender === undefined ? setTimeout(wait, 5) : r());
      wait();
    });
    // Three frames in one write: they come in one read.
    sender.write(Buffer.concat([frame({ n: 1 }), frame({ n: 2 }), frame({ n: 3 })]));
    expect(await first).toEqual({ n: 1 });
    // The next listener comes a moment later; a fourth frame comes after it.
    await new Promise((r) => setTimeout(r, 50));
    const rest: unknown[] = [];
    link.on('message', (m: unknown) => rest.push(m));
    sender.write(frame({ n: 4 }));
    const deadline = Date.now() + 5000;
    while (rest.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(rest).toEqual([{ n: 2 }, { n: 3 }, { n: 4 }]);
  } finally {
    link.close();
    sender?.destroy();
    server.close();
  }
});
