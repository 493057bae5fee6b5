// SSE resume: Last-Event-ID header, lastEventId= / since= query, gaps, malformed ids.
import { EventSource } from 'eventsource';
import {
  suite, assert, eq, expectError, publishOk, openSSE, subscribe, waitFor, sleep, seqOf, epochOf,
  firstNonIncreasing, rawRequest, trunc,
} from './lib.mjs';

const t = suite(import.meta.url);

/** An npm-eventsource client that sends Last-Event-ID on its first request too. */
function eventSource(url, lastEventId) {
  const es = new EventSource(url, {
    fetch: (input, init) => fetch(input, {
      ...init,
      headers: { ...init.headers, ...(lastEventId && !(init.headers || {})['Last-Event-ID'] ? { 'Last-Event-ID': lastEventId } : {}) },
    }),
  });
  const h = { es, msgs: [], gaps: [], errors: [], opened: 0 };
  es.onopen = () => { h.opened++; };
  es.onmessage = (e) => h.msgs.push({ id: e.lastEventId, data: e.data });
  es.addEventListener('rt.gap', (e) => h.gaps.push(e.data));
  es.onerror = (e) => h.errors.push(e.message || e.code || 'error');
  return h;
}

t.test('Last-Event-ID (npm eventsource): exactly the 50 missed, in order, then live, no duplicate', async (c) => {
  const b = await c.broker();
  const url = `${b.base}/sub/res.t`;
  const a = eventSource(url);
  c.defer(() => a.es.close());
  await waitFor(() => a.opened, 8000, 'first EventSource open', () => a.errors.join(','));
  await sleep(100);
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(await publishOk(b.base, 'res.t', `m${i}`));
  await waitFor(() => a.msgs.length >= 5, 5000, '5 live messages', () => JSON.stringify(a.msgs));
  eq(a.msgs.map((m) => m.id), ids, 'first 5 ids (MessageEvent.lastEventId)');
  const last = a.msgs[4].id;
  a.es.close();
  for (let i = 5; i < 55; i++) ids.push(await publishOk(b.base, 'res.t', `m${i}`));
  const r = eventSource(url, last);
  c.defer(() => r.es.close());
  await waitFor(() => r.msgs.length >= 50, 8000, '50 replayed messages', () => `${r.msgs.length} got, errors ${r.errors}`);
  for (let i = 55; i < 60; i++) ids.push(await publishOk(b.base, 'res.t', `m${i}`));
  await waitFor(() => r.msgs.length >= 55, 5000, '5 live messages after replay', () => `${r.msgs.length} got`);
  await sleep(300);
  eq(r.msgs.map((m) => m.id), ids.slice(5), 'resumed ids (50 replayed then 5 live)');
  eq(r.msgs.map((m) => m.data), ids.slice(5).map((_, i) => `m${i + 5}`), 'resumed payloads');
  eq(r.gaps.length, 0, 'no rt.gap on a clean resume');
  eq(r.opened, 1, 'no reconnects of the resumed EventSource');
});

t.test('resume while a publisher publishes continuously: no gap, no duplicate across 3 reconnects', async (c) => {
  const b = await c.broker({ config: { history: { max_messages: 5000 } } });
  const topic = 'cont.t';
  let s = await subscribe(b.base, `/sub/${topic}`);
  c.defer(() => s && s.close());
  const published = []; // in publish order (sequential publisher)
  let pubDone = false; let pubErr = null;
  const publisher = (async () => {
    try {
      for (let i = 0; i < 600; i++) {
        published.push(await publishOk(b.base, topic, `n${i}`));
        if (i % 20 === 0) await sleep(10);
      }
    } catch (e) { pubErr = e; }
    pubDone = true;
  })();
  const received = []; // {id,data}
  const take = (st) => st.messages.map((m) => ({ id: m.id, data: m.data }));
  let gaps = 0;
  for (let round = 0; round < 3; round++) {
    await s.waitFor((x) => x.messages.length >= 40 || pubDone, 15000, `round ${round}: 40 messages`);
    s.close();
    await s.done;
    gaps += s.events.filter((e) => e.event === 'rt.gap').length;
    received.push(...take(s));
    if (!received.length) throw new Error('nothing received before the first reconnect');
    const last = received[received.length - 1].id;
    await sleep(30 + round * 40); // the publisher goes on meanwhile
    s = await subscribe(b.base, `/sub/${topic}`, { headers: { 'Last-Event-ID': last } });
  }
  await publisher;
  if (pubErr) throw pubErr;
  const lastPub = published[published.length - 1];
  await s.waitFor((x) => x.messages.some((m) => m.id === lastPub), 10000, `last published id ${lastPub}`);
  gaps += s.events.filter((e) => e.event === 'rt.gap').length;
  received.push(...take(s));
  s.close();
  eq(gaps, 0, 'rt.gap events during clean resumes');
  const ids = received.map((m) => m.id);
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  assert(!dup, `duplicate delivery of ${dup}`);
  const missing = published.filter((id) => !ids.includes(id));
  assert(missing.length === 0, `${missing.length} published ids never received, e.g. ${missing.slice(0, 5)}`);
  eq(ids.length, published.length, 'received count');
  eq(ids, published, 'received ids in publish order');
  eq(received.map((m) => m.data), published.map((_, i) => `n${i}`), 'payload sequence n0..nN');
  c.info(`continuous resume: ${published.length} messages over 4 connections, all exactly once`);
});

t.test('resume from the newest id (nothing missed): no replay, no gap, live continues', async (c) => {
  const b = await c.broker();
  const last = await publishOk(b.base, 'nm.t', 'seen');
  const s = await subscribe(b.base, '/sub/nm.t', { headers: { 'Last-Event-ID': last } });
  c.defer(() => s.close());
  const other = await publishOk(b.base, 'nm.other', 'elsewhere');
  const s2 = await subscribe(b.base, '/sub/nm.empty', { headers: { 'Last-Event-ID': other } }); // topic without history
  c.defer(() => s2.close());
  await sleep(300);
  eq(s.events.length, 0, `events replayed after the newest id: ${JSON.stringify(s.events)}`);
  eq(s2.events.length, 0, `events on a topic without history: ${JSON.stringify(s2.events)}`);
  const live = await publishOk(b.base, 'nm.t', 'live');
  const live2 = await publishOk(b.base, 'nm.empty', 'live2');
  await s.waitMessages(1, 5000);
  await s2.waitMessages(1, 5000);
  eq(s.messages.map((m) => m.id), [live], 'live after an empty resume');
  eq(s2.messages.map((m) => m.id), [live2], 'live after an empty resume on a new topic');
});

t.test('lastEventId= and since= query forms', async (c) => {
  const b = await c.broker();
  const ids = [];
  for (let i = 0; i < 6; i++) ids.push(await publishOk(b.base, 'q.t', `q${i}`));
  for (const form of ['lastEventId', 'since']) {
    const s = await subscribe(b.base, `/sub/q.t?${form}=${encodeURIComponent(ids[2])}`);
    c.defer(() => s.close());
    await s.waitMessages(3, 5000, `${form}: 3 replayed`);
    const extra = await publishOk(b.base, 'q.t', `live-${form}`);
    await s.waitFor((x) => x.messages.some((m) => m.id === extra), 5000, `${form}: live message`);
    eq(s.messages.map((m) => m.id), [...ids.slice(3), extra], `${form}=${ids[2]}`);
    ids.push(extra);
    s.close();
  }
  // multi-topic + wildcard resume with one cursor (SEQ is global)
  const m0 = await publishOk(b.base, 'mt.a', 'a0');
  const m1 = await publishOk(b.base, 'mt.b', 'b1');
  const m2 = await publishOk(b.base, 'mt.c.d', 'cd2');
  const m3 = await publishOk(b.base, 'mt.a', 'a3');
  const s2 = await subscribe(b.base, `/sub?topic=mt.a&topic=mt.c.d&since=${encodeURIComponent(m0)}`);
  c.defer(() => s2.close());
  await s2.waitMessages(2, 5000, 'multi-topic replay');
  await sleep(200);
  eq(s2.messages.map((m) => m.id), [m2, m3], 'multi-topic resume since m0');
  const s3 = await subscribe(b.base, `/sub/mt.*?lastEventId=${encodeURIComponent(m0)}`);
  c.defer(() => s3.close());
  await s3.waitMessages(2, 5000, 'wildcard replay');
  await sleep(200);
  eq(s3.messages.map((m) => m.id), [m1, m3], 'mt.* resume from m0');
});

t.test('id from another epoch (zzzz:5) → rt.gap first, then the retained messages', async (c) => {
  const b = await c.broker();
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(await publishOk(b.base, 'ep.t', `e${i}`));
  assert(epochOf(ids[0]) !== 'zzzz', 'broker epoch happens to be zzzz; test cannot run');
  for (const how of ['header', 'query']) {
    const s = how === 'header'
      ? await subscribe(b.base, '/sub/ep.t', { headers: { 'Last-Event-ID': 'zzzz:5' } })
      : await subscribe(b.base, '/sub/ep.t?lastEventId=zzzz:5');
    c.defer(() => s.close());
    await s.waitFor((x) => x.events.length >= 4, 5000, `${how}: gap + 3 messages`);
    const ev = s.events;
    eq(ev[0].event, 'rt.gap', `${how}: first event must be rt.gap (got ${JSON.stringify(ev[0])})`);
    assert(!ev[0].hasId, `${how}: rt.gap must have no id line: ${JSON.stringify(ev[0])}`);
    eq(JSON.parse(ev[0].data), { from: 'zzzz:5' }, `${how}: rt.gap data`);
    eq(ev.slice(1).map((e) => e.id), ids, `${how}: retained messages after the gap`);
    s.close();
  }
});

t.test('id older than retention (history.max_messages 10, 30 published) → rt.gap then the last 10', async (c) => {
  const b = await c.broker({ config: { history: { max_messages: 10 } } });
  const ids = [];
  for (let i = 0; i < 30; i++) ids.push(await publishOk(b.base, 'old.t', `o${i}`));
  const s = await subscribe(b.base, '/sub/old.t', { headers: { 'Last-Event-ID': ids[0] } });
  c.defer(() => s.close());
  await s.waitFor((x) => x.events.length >= 11, 5000, 'gap + 10 messages');
  await sleep(200);
  const ev = s.events;
  eq(ev[0].event, 'rt.gap', `first event must be rt.gap (events: ${trunc(JSON.stringify(ev.slice(0, 2)))})`);
  assert(!ev[0].hasId, 'rt.gap has no id line');
  eq(JSON.parse(ev[0].data), { from: ids[0] }, 'rt.gap data');
  eq(ev.slice(1).map((e) => e.id), ids.slice(20), 'the 10 retained messages');
  eq(ev.slice(1).map((e) => e.data), ids.slice(20).map((_, i) => `o${i + 20}`), 'their payloads');
  // live continues after the replay
  const live = await publishOk(b.base, 'old.t', 'live');
  await s.waitFor((x) => x.messages.some((m) => m.id === live), 5000, 'live after gap replay');
  // a resume inside retention: no gap
  const s2 = await subscribe(b.base, '/sub/old.t', { headers: { 'Last-Event-ID': ids[25] } });
  c.defer(() => s2.close());
  await s2.waitMessages(5, 5000);
  await sleep(200);
  eq(s2.events.map((e) => e.event === 'rt.gap' ? 'GAP' : e.id), [...ids.slice(26), live], 'resume from a retained id: no gap');
  void firstNonIncreasing; void seqOf;
});

t.test('broker restart: new epoch; an id from before the restart gives rt.gap / gap: true', async (c) => {
  const b1 = await c.broker();
  const oldIds = [];
  for (let i = 0; i < 3; i++) oldIds.push(await publishOk(b1.base, 'rs.t', `old${i}`));
  const st = await b1.stop();
  eq(st.code, 0, 'first broker exit code');
  const b2 = await c.broker();
  const newId = await publishOk(b2.base, 'rs.t', 'new0');
  assert(epochOf(newId) !== epochOf(oldIds[0]), `epoch did not change across a memory-bus restart: ${oldIds[0]} then ${newId}`);
  const s = await subscribe(b2.base, '/sub/rs.t', { headers: { 'Last-Event-ID': oldIds[2] } });
  c.defer(() => s.close());
  await s.waitFor((x) => x.events.length >= 2, 5000, 'gap + new0');
  eq(s.events.map((e) => e.event === "rt.gap" ? `GAP ${JSON.parse(e.data).from}` : e.data), [`GAP ${oldIds[2]}`, "new0"], 'resume across restart');
  const lp = await (await fetch(`${b2.base}/poll?topic=rs.t&cursor=${encodeURIComponent(oldIds[2])}&timeout=1`)).json();
  eq([lp.gap, lp.messages.map((m) => m.data)], [true, ['new0']], 'long-poll across restart');
});

t.test('malformed Last-Event-ID / lastEventId / since → 400 invalid_id', async (c) => {
  const b = await c.broker();
  await publishOk(b.base, 'bad.t', 'x');
  for (const v of ['garbage', 'abc:xyz', 'abc:', ':5', 'a:b:c', 'ep:-5', 'ep:1.5']) {
    const r = await openSSE(b.base, '/sub/bad.t', { headers: { 'Last-Event-ID': v } });
    await Promise.race([r.done, sleep(3000)]);
    r.close();
    let json = null; try { json = JSON.parse(r.text()); } catch {}
    expectError({ status: r.status, text: r.text(), json, headers: r.headers }, 400, 'invalid_id', `SSE Last-Event-ID: ${v}`);
  }
  for (const q of ['lastEventId=garbage', 'since=garbage', 'since=x:y']) {
    const r = await rawRequest(b.base, 'GET', `/sub/bad.t?${q}`, { headers: { Accept: 'text/event-stream' } });
    expectError(r, 400, 'invalid_id', `SSE ?${q}`);
  }
});

await t.run();
