// SSE transport: headers, framing, envelopes, wildcards, multi-topic, isolation, heartbeat, h2c.
import { EventSource } from 'eventsource';
import {
  suite, assert, eq, publishOk, openSSE, subscribe, curlStream, waitFor, sleep, trunc, topicPath,
} from './lib.mjs';

const t = suite(import.meta.url);

t.test('response headers and first bytes (retry:, ": ok")', async (c) => {
  const b = await c.broker({ config: { sse: { retry: '2s' } } });
  const s = await openSSE(b.base, '/sub/hdr.t');
  c.defer(() => s.close());
  eq(s.status, 200, 'status');
  assert(/^text\/event-stream/.test(s.headers['content-type'] || ''), `Content-Type: ${s.headers['content-type']}`);
  assert(/no-cache/.test(s.headers['cache-control'] || ''), `Cache-Control: ${s.headers['cache-control']}`);
  eq(s.headers['x-accel-buffering'], 'no', 'X-Accel-Buffering');
  await s.waitOk();
  const txt = s.text();
  assert(/^retry: ?2000\r?\n/.test(txt), `stream must start with "retry: 2000" (sse.retry 2s); first bytes ${JSON.stringify(txt.slice(0, 80))}`);
  const afterRetry = txt.replace(/^retry: ?\d+\r?\n/, '');
  assert(/^(\r?\n)?: ?ok\r?\n/.test(afterRetry), `": ok" comment must follow retry; first bytes ${JSON.stringify(txt.slice(0, 80))}`);
  // explicit /sse path and default retry 3 s
  const b2 = await c.broker();
  const s2 = await subscribe(b2.base, '/sse?topic=hdr.t', { accept: null });
  c.defer(() => s2.close());
  assert(/^retry: ?3000\r?\n/.test(s2.text()), `/sse default sse.retry 3s: first bytes ${JSON.stringify(s2.text().slice(0, 80))}`);
});

t.test('message has id (= publish id), event name and data', async (c) => {
  const b = await c.broker();
  const s = await subscribe(b.base, '/sub/msg.t');
  c.defer(() => s.close());
  const id1 = await publishOk(b.base, 'msg.t', 'hello world', { headers: { 'X-Event': 'greet' } });
  const id2 = await publishOk(b.base, 'msg.t', 'plain');
  const id3 = await publishOk(b.base, 'msg.t', 'q', { query: 'event=from.query' });
  await s.waitMessages(3, 5000);
  const m = s.messages;
  eq(m.map((e) => [e.id, e.event, e.data]), [[id1, 'greet', 'hello world'], [id2, null, 'plain'], [id3, 'from.query', 'q']], 'events');
  // raw: the event name line precedes data, and an event without name has no event: line
  const raw = s.text();
  assert(new RegExp(`id: ?${id1}\\r?\\nevent: ?greet\\r?\\ndata: ?hello world\\r?\\n\\r?\\n`).test(raw) ||
    new RegExp(`event: ?greet\\r?\\nid: ?${id1}\\r?\\ndata: ?hello world\\r?\\n\\r?\\n`).test(raw), `raw framing of event 1: ${JSON.stringify(raw)}`);
  assert(new RegExp(`id: ?${id2}\\r?\\ndata: ?plain\\r?\\n\\r?\\n`).test(raw), `raw framing of event 2 (no event: line): ${JSON.stringify(raw)}`);
});

t.test('payload CR, LF, CRLF each start a new data: line (raw bytes); empty payload', async (c) => {
  const b = await c.broker();
  const s = await subscribe(b.base, '/sub/nl.t');
  c.defer(() => s.close());
  const payload = 'a\rb\nc\r\nd\n\ne';
  const id = await publishOk(b.base, 'nl.t', payload);
  const id2 = await publishOk(b.base, 'nl.t', 'end\n');
  await s.waitMessages(2, 5000);
  const raw = s.text();
  const at = raw.indexOf(`${id}`);
  assert(at >= 0, `id ${id} not in stream`);
  const m = /\r?\n\r?\n/.exec(raw.slice(at));
  const block = raw.slice(at, at + m.index + m[0].length);
  const lines = block.split(/\r\n|\n/).slice(1, -2).map((l) => l.replace(/^data: ?/, 'data:'));
  eq(lines, ['data:a', 'data:b', 'data:c', 'data:d', 'data:', 'data:e'],
    `data lines of ${JSON.stringify(payload)} (raw block ${JSON.stringify(block)})`);
  assert(!/\r(?!\n)/.test(block), `a bare CR leaked into the SSE block: ${JSON.stringify(block)}`);
  eq(s.messages[0].data, 'a\nb\nc\nd\n\ne', 'parsed data');
  eq(s.messages[1].data, 'end\n', 'trailing LF → an extra empty data line');
  void id2;
});

t.test('?envelope=1 sends one JSON object {id,topic,event,data}', async (c) => {
  const b = await c.broker();
  const s = await subscribe(b.base, '/sub/env.t?envelope=1');
  c.defer(() => s.close());
  const id1 = await publishOk(b.base, 'env.t', 'line1\nline2', { headers: { 'X-Event': 'ev1' } });
  const id2 = await publishOk(b.base, 'env.t', '[1,2,3]', { headers: { 'Content-Type': 'application/json' } });
  await s.waitMessages(2, 5000);
  const [e1, e2] = s.messages;
  eq(e1.dataLines.length, 1, `envelope must be a single data: line, got ${JSON.stringify(e1.dataLines)}`);
  const j1 = JSON.parse(e1.data); const j2 = JSON.parse(e2.data);
  eq([j1.id, j1.topic, j1.event, j1.data], [id1, 'env.t', 'ev1', 'line1\nline2'], 'envelope 1');
  eq([j2.id, j2.topic, j2.data], [id2, 'env.t', [1, 2, 3]], 'envelope 2');
  assert(j2.event === undefined || j2.event === null, `envelope 2 event should be absent/null, got ${JSON.stringify(j2.event)}`);
  eq(e1.id, id1, 'SSE id line with envelope');
});

t.test('wildcards: chat.* and chat.> get matching topics only', async (c) => {
  const b = await c.broker();
  const star = await subscribe(b.base, '/sub/chat.*');
  const tail = await subscribe(b.base, `/sub/${topicPath('chat.>')}`);
  const mid = await subscribe(b.base, '/sub/news.*.live');
  c.defer(() => { star.close(); tail.close(); mid.close(); });
  const pubs = ['chat', 'chat.a', 'chat.b', 'chat.a.b', 'chatx.a', 'news.a', 'xchat.a', 'chat.room-1.x.y', 'news.sports.live', 'news.live', 'news.a.b.live'];
  for (const p of pubs) await publishOk(b.base, p, p);
  await publishOk(b.base, 'chat.zz', 'END');
  await publishOk(b.base, 'news.end.live', 'END');
  await star.waitFor((s) => s.messages.some((m) => m.data === 'END'), 5000, 'END on chat.*');
  await tail.waitFor((s) => s.messages.some((m) => m.data === 'END'), 5000, 'END on chat.>');
  await mid.waitFor((s) => s.messages.some((m) => m.data === 'END'), 5000, 'END on news.*.live');
  eq(star.messages.map((m) => m.data), ['chat.a', 'chat.b', 'END'], 'chat.* received');
  eq(tail.messages.map((m) => m.data), ['chat.a', 'chat.b', 'chat.a.b', 'chat.room-1.x.y', 'END'], 'chat.> received');
  eq(mid.messages.map((m) => m.data), ['news.sports.live', 'END'], 'news.*.live received');
  // raw (unencoded) '>' in the path and in the query
  const rawTail = await subscribe(b.base, '/sub?topic=chat.>');
  c.defer(() => rawTail.close());
  await publishOk(b.base, 'chat.q.r', 'raw');
  await rawTail.waitMessages(1, 5000, 'message on /sub?topic=chat.> (raw >)');
  eq(rawTail.messages[0].data, 'raw', 'raw > subscription');
});

t.test('multi-topic /sub?topic=a&topic=b; other topics isolated', async (c) => {
  const b = await c.broker();
  const ab = await subscribe(b.base, '/sub?topic=multi.a&topic=multi.b&envelope=1');
  const other = await subscribe(b.base, '/sub/multi.c');
  const viaSse = await subscribe(b.base, '/sse?topic=multi.b&topic=multi.a', { accept: null });
  c.defer(() => { ab.close(); other.close(); viaSse.close(); });
  const sent = [];
  for (let i = 0; i < 10; i++) {
    const tp = ['multi.a', 'multi.b', 'multi.x', 'multi.a.b'][i % 4];
    const id = await publishOk(b.base, tp, `m${i}`);
    sent.push({ tp, id, data: `m${i}` });
  }
  const endId = await publishOk(b.base, 'multi.c', 'END');
  await publishOk(b.base, 'multi.b', 'END');
  await ab.waitFor((s) => s.messages.some((m) => JSON.parse(m.data).data === 'END'), 5000, 'END on a+b');
  await viaSse.waitFor((s) => s.messages.some((m) => m.data === 'END'), 5000, 'END on /sse a+b');
  await other.waitMessages(1, 5000);
  const want = sent.filter((x) => x.tp === 'multi.a' || x.tp === 'multi.b');
  eq(ab.messages.slice(0, -1).map((m) => { const j = JSON.parse(m.data); return [j.topic, m.id, j.data]; }),
    want.map((x) => [x.tp, x.id, x.data]), 'a+b subscription (order and content)');
  eq(viaSse.messages.slice(0, -1).map((m) => m.data), want.map((x) => x.data), '/sse?topic=b&topic=a');
  await sleep(200);
  eq(other.messages.map((m) => [m.id, m.data]), [[endId, 'END']], 'multi.c subscriber got only its own message');
});

t.test('overlapping topics in one subscription deliver each message once (live and replay)', async (c) => {
  const b = await c.broker();
  const id0 = await publishOk(b.base, 'ov.zero', 'zero');
  const s = await subscribe(b.base, '/sub?topic=ov.a&topic=ov.*&topic=ov.a&topic=ov.>&envelope=1');
  c.defer(() => s.close());
  const ids = [];
  for (const tp of ['ov.a', 'ov.b', 'ov.a.x', 'ov.a']) ids.push(await publishOk(b.base, tp, tp));
  await s.waitMessages(4, 5000);
  await sleep(300);
  eq(s.messages.map((m) => m.id), ids, 'live: each message once');
  const r = await subscribe(b.base, `/sub?topic=ov.a&topic=ov.*&topic=ov.>&lastEventId=${encodeURIComponent(id0)}`);
  c.defer(() => r.close());
  await r.waitMessages(4, 5000);
  await sleep(300);
  eq(r.messages.map((m) => m.id), ids, 'replay: each message once, in order');
  const lp = await (await fetch(`${b.base}/poll?topic=ov.a&topic=ov.*&topic=ov.>&cursor=${encodeURIComponent(id0)}&timeout=1`)).json();
  eq(lp.messages.map((m) => m.id), ids, 'long-poll: each message once, in order');
});

t.test('heartbeat ": ping" every sse.heartbeat (1s)', async (c) => {
  const b = await c.broker({ config: { sse: { heartbeat: '1s' } } });
  const s = await subscribe(b.base, '/sub/hb.t');
  c.defer(() => s.close());
  const t0 = Date.now();
  await s.waitFor((x) => x.comments.filter((m) => m.text === 'ping').length >= 2, 5000, 'two ": ping" comments within 5 s');
  const el = Date.now() - t0;
  assert(el >= 900, `two pings came too fast (${el} ms) for a 1 s heartbeat`);
  assert(/(^|\n): ?ping\r?\n/.test(s.text()), 'ping comment framing');
  // default heartbeat (15 s) does not ping within 2 s
  const b2 = await c.broker();
  const s2 = await subscribe(b2.base, '/sub/hb.t');
  c.defer(() => s2.close());
  await sleep(2000);
  eq(s2.comments.filter((m) => m.text === 'ping').length, 0, 'pings within 2 s with default 15 s heartbeat');
});

t.test('curl -N over HTTP/1.1 and SSE over h2c (curl --http2-prior-knowledge)', async (c) => {
  const b = await c.broker();
  for (const [label, extra, statusRe] of [
    ['HTTP/1.1', ['--http1.1'], /^HTTP\/1\.1 200/m],
    ['h2c prior knowledge', ['--http2-prior-knowledge'], /^HTTP\/2 200/m],
  ]) {
    const cu = curlStream(['-sS', '-N', '-D', '-', ...extra, '-H', 'Accept: text/event-stream', `${b.base}/sub/curl.t`]);
    c.defer(() => cu.kill());
    await cu.waitFor((o) => /: ?ok\r?\n/.test(o), 8000, `${label}: ": ok"`);
    assert(statusRe.test(cu.stdout()), `${label}: status line ${JSON.stringify(cu.stdout().split('\n')[0])}`);
    assert(/^content-type: text\/event-stream/im.test(cu.stdout()), `${label}: content-type in ${JSON.stringify(cu.stdout().slice(0, 400))}`);
    const id = await publishOk(b.base, 'curl.t', `via ${label}`, { headers: { 'X-Event': 'x' } });
    await cu.waitFor((o) => o.includes(`data: via ${label}`), 5000, `${label}: data`);
    assert(new RegExp(`id: ?${id}\\r?\\n`).test(cu.stdout()), `${label}: id line ${id}`);
    const id2 = await publishOk(b.base, 'curl.t', 'second');
    await cu.waitFor((o) => o.includes(`id: ${id2}`) && /data: second\r?\n\r?\n/.test(o), 5000, `${label}: second message`);
    await cu.kill();
  }
});

t.test('npm eventsource client: onmessage, named events, lastEventId', async (c) => {
  const b = await c.broker();
  const es = new EventSource(`${b.base}/sub/es.t`);
  c.defer(() => es.close());
  const got = [];
  es.onmessage = (e) => got.push(['message', e.data, e.lastEventId]);
  es.addEventListener('named', (e) => got.push(['named', e.data, e.lastEventId]));
  let opened = false; let err = null;
  es.onopen = () => { opened = true; };
  es.onerror = (e) => { err = e; };
  await waitFor(() => opened, 8000, 'EventSource open', () => `error ${err && (err.message || err.code)}`);
  await sleep(100);
  const id1 = await publishOk(b.base, 'es.t', 'one');
  const id2 = await publishOk(b.base, 'es.t', 'two\nlines', { headers: { 'X-Event': 'named' } });
  await waitFor(() => got.length >= 2, 5000, 'two events via eventsource', () => JSON.stringify(got));
  eq(got, [['message', 'one', id1], ['named', 'two\nlines', id2]], 'eventsource events');
  assert(!err, `eventsource error: ${err && (err.message || err.code)}`);
  es.close();
});

await t.run();
