// SIGTERM: SSE streams end with rt.shutdown, held polls are answered, exit 0 within shutdown.drain, and new
// connections are refused while the drain lasts (WebSocket close 1001: test_ws_interop.mjs, test_ws_browser.mjs).
import net from 'node:net';
import {
  suite, assert, eq, publishOk, poll, subscribe, curlStream, openSSE, sleep, waitFor, trunc,
} from './lib.mjs';

const t = suite(import.meta.url);

t.test('100 SSE streams + held long-poll: rt.shutdown on each stream, poll answered, exit 0 within drain 5s', async (c) => {
  const b = await c.broker({ config: { shutdown: { drain: '5s' } } });
  const subs = [];
  c.defer(() => subs.forEach((s) => s.close()));
  for (let k = 0; k < 100; k += 20) {
    subs.push(...await Promise.all(Array.from({ length: 20 }, (_, j) => subscribe(b.base, `/sub/sd.t${(k + j) % 7}`, { okTimeout: 15000 }))));
  }
  // some traffic first so the streams are not idle
  for (let i = 0; i < 7; i++) await publishOk(b.base, `sd.t${i}`, `before-${i}`);
  await waitFor(() => subs.every((s) => s.messages.length >= 1), 8000, 'every stream got its message');
  // a held long-poll
  let pollOutcome = null;
  const held = poll(b.base, { topic: 'sd.held', timeout: 30 }, { timeout: 20000 })
    .then((r) => { pollOutcome = { status: r.status, text: r.text, json: r.json, ms: r.ms }; })
    .catch((e) => { pollOutcome = { error: `${e.message} ${e.cause ? e.cause.code || e.cause.message : ''}` }; });
  await sleep(500);
  assert(pollOutcome === null, `the long-poll returned before SIGTERM: ${JSON.stringify(pollOutcome)}`);

  const tSig = Date.now();
  const res = await b.stop({ timeout: 15000 });
  const exitMs = Date.now() - tSig;
  await Promise.race([held, sleep(3000)]);
  await Promise.race([Promise.all(subs.map((s) => s.done)), sleep(3000)]);
  c.info(`SIGTERM → exit ${JSON.stringify({ code: res.code, signal: res.signal })} after ${exitMs} ms (drain 5s)`);
  assert(!res.killed, `broker ignored SIGTERM for 15 s and had to be SIGKILLed`);
  eq([res.code, res.signal], [0, null], 'exit status after SIGTERM');
  assert(exitMs <= 6000, `exit took ${exitMs} ms, more than shutdown.drain 5s (+1 s slack)`);

  const noShutdown = subs.filter((s) => !s.events.some((e) => e.event === 'rt.shutdown'));
  assert(noShutdown.length === 0, `${noShutdown.length}/100 SSE streams got no "event: rt.shutdown"; e.g. tail ${JSON.stringify(noShutdown[0] && noShutdown[0].text().slice(-200))}`);
  const notLast = subs.filter((s) => s.events[s.events.length - 1].event !== 'rt.shutdown');
  assert(notLast.length === 0, `${notLast.length} streams had events after rt.shutdown`);
  const notEnded = subs.filter((s) => !s.ended);
  assert(notEnded.length === 0, `${notEnded.length} streams were not closed`);
  const ev = subs[0].events.find((e) => e.event === 'rt.shutdown');
  assert(!ev.hasId, `rt.shutdown carries an id line (${ev.id}); a reconnect would resume from it`);

  assert(pollOutcome !== null, 'the held long-poll got no answer within 3 s of exit');
  assert(!pollOutcome.error, `the held long-poll was not answered, the connection failed: ${pollOutcome.error}`);
  assert(pollOutcome.status === 200 || pollOutcome.status === 503, `held long-poll answered with ${pollOutcome.status} ${trunc(pollOutcome.text)}`);
  if (pollOutcome.status === 200) {
    assert(pollOutcome.json && typeof pollOutcome.json.cursor === 'string' && Array.isArray(pollOutcome.json.messages),
      `held long-poll answer is not {"cursor","messages"}: ${trunc(pollOutcome.text)}`);
  }
  assert(pollOutcome.ms < exitMs + 1500, `held long-poll answered only after ${pollOutcome.ms} ms`);
  c.info(`held long-poll answered at shutdown: ${pollOutcome.status} ${trunc(pollOutcome.text.trim(), 200)}`);
}, { timeout: 50000 });

t.test('SSE over h2c (curl --http2-prior-knowledge) and HTTP/1.1 curl get rt.shutdown; exit 0', async (c) => {
  const b = await c.broker({ config: { shutdown: { drain: '5s' } } });
  const h2 = curlStream(['-sS', '-N', '--http2-prior-knowledge', '-H', 'Accept: text/event-stream', `${b.base}/sub/sd.h2`]);
  const h1 = curlStream(['-sS', '-N', '-H', 'Accept: text/event-stream', `${b.base}/sub/sd.h2`]);
  c.defer(() => h2.kill());
  c.defer(() => h1.kill());
  await h2.waitFor((o) => /: ?ok\r?\n/.test(o), 8000, 'h2c stream ": ok"');
  await h1.waitFor((o) => /: ?ok\r?\n/.test(o), 8000, 'HTTP/1.1 curl stream ": ok"');
  const id = await publishOk(b.base, 'sd.h2', 'before');
  await h2.waitFor((o) => o.includes(id), 5000, 'h2c message');
  const res = await b.stop({ timeout: 12000 });
  const [e2, e1] = await Promise.all([Promise.race([h2.exit, sleep(4000)]), Promise.race([h1.exit, sleep(4000)])]);
  eq([res.code, res.signal], [0, null], 'exit status');
  assert(res.ms <= 6000, `exit took ${res.ms} ms (drain 5s)`);
  assert(/event: ?rt\.shutdown\r?\n/.test(h2.stdout()), `h2c stream: no rt.shutdown in ${JSON.stringify(h2.stdout().slice(-300))}`);
  assert(/event: ?rt\.shutdown\r?\n/.test(h1.stdout()), `HTTP/1.1 stream: no rt.shutdown in ${JSON.stringify(h1.stdout().slice(-300))}`);
  assert(e2 && e1, 'curl did not exit after the server shut down');
  c.info(`curl exits after shutdown: h2c ${JSON.stringify(e2)} (stderr ${JSON.stringify(h2.stderr().trim())}), http/1.1 ${JSON.stringify(e1)} (stderr ${JSON.stringify(h1.stderr().trim())})`);
}, { timeout: 40000 });

t.test('idle broker: SIGTERM → exit 0 promptly', async (c) => {
  const b = await c.broker({ config: { shutdown: { drain: '5s' } } });
  await publishOk(b.base, 'idle.t', 'x');
  const res = await b.stop({ timeout: 10000 });
  eq([res.code, res.signal], [0, null], 'exit status');
  assert(res.ms < 3000, `idle shutdown took ${res.ms} ms`);
});

t.test('a client that stops reading does not hold the exit past shutdown.drain (2s)', async (c) => {
  const b = await c.broker({ config: { shutdown: { drain: '2s' }, limits: { max_queue_bytes: 67108864, max_message_bytes: 65536 } } });
  const s = await openSSE(b.base, '/sub/stuck.t');
  c.defer(() => s.close());
  await s.waitOk();
  s.res.pause();
  s.res.socket.pause();
  const big = 'x'.repeat(60000);
  for (let i = 0; i < 80; i++) await publishOk(b.base, 'stuck.t', big); // ~4.8 MB towards a client that reads nothing
  await sleep(300);
  const res = await b.stop({ timeout: 12000 });
  c.info(`stuck client: exit ${JSON.stringify({ code: res.code, signal: res.signal })} after ${res.ms} ms (drain 2s)`);
  assert(!res.killed, 'broker ignored SIGTERM for 12 s with a stuck client and had to be SIGKILLed');
  eq([res.code, res.signal], [0, null], 'exit status');
  assert(res.ms <= 3500, `exit took ${res.ms} ms with shutdown.drain 2s`);
}, { timeout: 40000 });

t.test('while draining, new connections are refused at once (not accepted and left hanging); open streams still get their goodbye', async (c) => {
  const b = await c.broker({ config: { shutdown: { drain: '4s' }, limits: { max_queue_bytes: 67108864 } } });
  // a client that reads nothing keeps the drain going until shutdown.drain
  const stuck = await openSSE(b.base, '/sub/drain.stuck');
  c.defer(() => stuck.close());
  await stuck.waitOk();
  stuck.res.pause();
  stuck.res.socket.pause();
  const big = 'x'.repeat(60000);
  for (let i = 0; i < 80; i++) await publishOk(b.base, 'drain.stuck', big);
  const good = await subscribe(b.base, '/sub/drain.good');
  c.defer(() => good.close());
  const tSig = Date.now();
  const stopping = b.stop({ timeout: 12000 });
  await good.waitFor((s) => s.events.some((e) => e.event === 'rt.shutdown'), 3000, 'rt.shutdown on the reading stream');
  await sleep(300);
  const attempts = [];
  for (let i = 0; i < 5 && Date.now() - tSig < 3000; i++) {
    const t0 = Date.now();
    const outcome = await new Promise((resolve) => {
      const sock = net.connect(b.port, '127.0.0.1');
      sock.setTimeout(2000, () => { sock.destroy(); resolve('no answer within 2 s'); });
      sock.on('connect', () => sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
      sock.on('data', (d) => { sock.destroy(); resolve(d.toString().split('\r\n')[0]); });
      sock.on('error', (e) => resolve(e.code));
      sock.on('close', () => resolve('closed'));
    });
    attempts.push({ outcome, ms: Date.now() - t0, at: Date.now() - tSig });
    await sleep(200);
  }
  const res = await stopping;
  eq([res.code, res.signal, !!res.killed], [0, null, false], 'exit after SIGTERM');
  assert(attempts.length >= 3, `too few connection attempts during the drain: ${JSON.stringify(attempts)}`);
  const bad = attempts.filter((a) => a.ms > 500 || !/ECONNREFUSED|ECONNRESET|^HTTP\/1\.1 503 |closed/.test(a.outcome));
  assert(bad.length === 0, `connections during the drain were not refused at once: ${JSON.stringify(attempts)}`);
  c.info(`during the drain (${res.ms} ms): ${JSON.stringify(attempts)}`);
}, { timeout: 40000 });

await t.run();
