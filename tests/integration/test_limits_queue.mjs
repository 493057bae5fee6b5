// limits.max_queue_bytes bounds everything one subscriber holds: the bytes waiting for it and the batch being
// written to its socket together stay within the limit plus one message (rtbroker_subscriber_queue_peak_bytes on
// /metrics). Counting only the waiting bytes would let a subscriber that reads nothing hold a full batch more.
import net from 'node:net';
import { suite, assert, trunc, sleep, waitFor } from './lib.mjs';
import { metric } from './limitslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 60000 });

/** A raw WebSocket on path (rt.v1 when asked) that has read its 101 and is paused. */
function rawWebSocket(c, port, p, protocol) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    c.defer(() => s.destroy());
    let head = '';
    s.on('error', reject);
    s.on('connect', () => s.write(`GET ${p} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : ''}\r\n`));
    s.on('data', function onData(d) {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.off('data', onData);
      s.pause();
      if (!head.startsWith('HTTP/1.1 101')) reject(new Error(`${p}: no upgrade: ${trunc(head)}`));
      else resolve(s);
    });
  });
}

/** Client text frames (masked with a zero key), all in one buffer: the broker reads them in one go. */
function frames(texts) {
  return Buffer.concat(texts.map((t) => {
    const payload = Buffer.from(t);
    assert(payload.length < 65536, 'frames(): payloads under 64 KiB');
    const head = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length])
      : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 255]);
    return Buffer.concat([head, Buffer.alloc(4), payload]);
  }));
}

t.test('a subscriber that reads nothing holds at most limits.max_queue_bytes plus one message (waiting + being written)', async (c) => {
  const LIMIT = 64 * 1024;
  const MSG = 2000; // a raw WebSocket frame of 2004 bytes: the limit holds 32, fewer than one write takes (64)
  const BURST = 16; // published together: dispatched as one batch, written to the socket as one
  const STUCK = 4;
  const b = await c.broker({
    config: { workers: 1, limits: { max_queue_bytes: LIMIT, publish_per_connection: 0, publish_per_subject: 0 } },
  });
  const port = Number(new URL(b.base).port);
  // subscribers that never read again: the kernel's buffers fill, then the broker's queues (several, as each socket
  // stops taking bytes at its own point of the stream: in one of them a whole batch is left being written)
  for (let i = 0; i < STUCK; i++) await rawWebSocket(c, port, '/sub/q.t');
  // the publisher: each burst in one write, so that its messages reach the hub, and the subscriber's socket, together
  const pub = await rawWebSocket(c, port, '/ws', 'rt.v1');
  let acked = 0;
  let carry = '';
  pub.on('data', (d) => {
    const text = carry + d.toString('latin1');
    acked += (text.match(/"type":"ok"/g) || []).length;
    carry = text.slice(-16);
  });
  pub.resume();
  const slow0 = await metric(b.base, 'rtbroker_slow_consumer_closes_total');
  const op = JSON.stringify({ op: 'pub', topic: 'q.t', data: 'q'.repeat(MSG), ref: 'p' });
  let bursts = 0;
  let slow = slow0;
  for (; bursts < 600 && slow < slow0 + STUCK; bursts++) {
    pub.write(frames(Array.from({ length: BURST }, () => op)));
    const want = (bursts + 1) * BURST;
    await waitFor(() => acked >= want, 5000, `acks for burst ${bursts + 1}`, () => `${acked} of ${want}`);
    slow = await metric(b.base, 'rtbroker_slow_consumer_closes_total');
  }
  assert(slow === slow0 + STUCK, `the ${STUCK} subscribers that read nothing were not all cut off after ${bursts} bursts of ${BURST} × ${MSG} bytes`);
  await sleep(100);
  const peak = await metric(b.base, 'rtbroker_subscriber_queue_peak_bytes');
  const bound = LIMIT + MSG + 4 + 64; // one message's frame, and the close frame queued once it is cut off
  assert(Number.isFinite(peak), 'no rtbroker_subscriber_queue_peak_bytes on /metrics');
  assert(peak <= bound, `one subscriber held ${peak} bytes queued (waiting + being written); limits.max_queue_bytes ${LIMIT} + one message allows ${bound}`);
  assert(peak > LIMIT / 2, `the queue never filled (peak ${peak}): the test did not reach the limit`);
  c.info(`cut off after ${bursts} bursts (${(bursts * BURST * MSG / 1048576).toFixed(1)} MiB published); peak held by one subscriber ${peak} bytes (limit ${LIMIT})`);
});

await t.run();
