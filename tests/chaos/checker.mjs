// The chaos checker: from the whole history (every publish attempt and its answer, every delivery of
// every subscriber, every gap notice, every fault, and the stream as a node's /history holds it at
// the end) it proves per subscriber that every acknowledged message on its topics after its first
// subscription point arrived exactly once and in order (or a gap notice covers it, and gaps only
// where retention ran out: it never does in these runs, so any gap counts), that nothing arrived that
// was never published, and that idempotent retries were stored once.

const seq = (id) => Number(String(id).split(':').pop());
const epoch = (id) => String(id).split(':')[0];

/** Whether `topic` matches the subscription pattern (NATS-style * and >). */
export function matches(pattern, topic) {
  const p = pattern.split('.'); const t = topic.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return t.length > i;
    if (i >= t.length || (p[i] !== '*' && p[i] !== t[i])) return false;
  }
  return p.length === t.length;
}

/**
 * pubs: Map key → {key, topic, via, attempts, id, outcome, t0, tAck}; truth: [{id, topic, key}] (the stream after
 * the start point); subs: the subscribers; faults: [{t, kind, detail}]; startId: the first subscription point;
 * held: node name → its /history (checked against the stream).
 * Returns {violations: [...], stats}.
 */
export function check({ pubs, truth, subs, faults, startId, held }) {
  const violations = [];
  const faultBefore = (t) => { let f = null; for (const x of faults) if (x.t <= t) f = x; return f; };
  // a message in flight when a fault begins is hit by the next one
  const faultAfter = (t) => faults.find((x) => x.t > t && x.t - t < 5000) || null;
  const v = (who, kind, detail, t, around) => violations.push({
    who, kind, detail, t, fault: t ? faultBefore(t) : null, next: t ? faultAfter(t) : null, around,
  });
  const startSeq = seq(startId);

  // the stream: each key stored once, only keys that were published, acked ids as answered
  const byKey = new Map(); const bySeq = new Map();
  for (const m of truth) {
    if (epoch(m.id) !== epoch(startId)) v('stream', 'epoch changed', `${m.id} is not of epoch ${epoch(startId)}`);
    bySeq.set(seq(m.id), m);
    if (!m.key || !pubs.has(m.key)) { v('stream', 'never published', `${m.id} on ${m.topic} holds ${JSON.stringify(m.key)}, which no publisher sent`); continue; }
    if (byKey.has(m.key)) v('stream', 'stored twice', `key ${m.key} (${pubs.get(m.key).via}, ${pubs.get(m.key).attempts.length} attempts) stored as ${byKey.get(m.key).id} and ${m.id}`, pubs.get(m.key).t0);
    else byKey.set(m.key, m);
  }
  let acked = 0, unknown = 0, refused = 0, retried = 0;
  for (const p of pubs.values()) {
    if (p.attempts.length > 1) retried++;
    if (p.outcome === 'acked') {
      acked++;
      const m = byKey.get(p.key);
      if (!m) v('stream', 'acknowledged but not stored', `${p.key} on ${p.topic} answered ${p.id} (${p.via}) is not in the stream`, p.tAck);
      else if (m.id !== p.id) v('stream', 'acknowledged id differs', `${p.key} answered ${p.id}, stored as ${m.id}`, p.tAck);
      for (const a of p.attempts) if (a.status === 200 && a.id !== p.id) v('stream', 'retry answered another id', `${p.key}: ${a.id} vs ${p.id}`, a.t);
    } else if (p.outcome === 'unknown') unknown++; else refused++;
  }

  // every node's history is the stream (the same ids, keys and order)
  for (const [name, list] of Object.entries(held || {})) {
    const have = new Map(list.map((m) => [m.id, m]));
    const missing = truth.filter((m) => !have.has(m.id));
    const extra = list.filter((m) => !bySeq.has(seq(m.id)) || bySeq.get(seq(m.id)).key !== m.key);
    if (missing.length) v(`${name} history`, 'missing from a node', `${missing.length} of ${truth.length} stream messages are not in its /history, first ${missing.slice(0, 5).map((m) => `${m.id} ${m.key}`).join(', ')}`, pubs.get(missing[0].key) && pubs.get(missing[0].key).t0);
    if (extra.length) v(`${name} history`, 'not in the stream', `${extra.length} entries, first ${extra.slice(0, 5).map((m) => `${m.id} ${m.key}`).join(', ')}`);
  }

  // per subscriber
  let checked = 0;
  for (const s of subs) {
    const got = []; // {seq, d}
    let first = null;
    const fail = (kind, detail, t, i) => {
      const around = s.deliveries.slice(Math.max(0, i - 3), i + 4).map((d, j) => `${j + Math.max(0, i - 3) === i ? '>' : ' '} ${d.id || (byKey.get(d.key) || {}).id || '?'} ${d.topic} ${d.key} via ${d.node} session ${d.session}`);
      if (!first) first = true;
      v(s.name, kind, detail, t, around);
    };
    const seen = new Set();
    let last = startSeq;
    s.deliveries.forEach((d, i) => {
      checked++;
      const m = d.key ? byKey.get(d.key) : null;
      const id = d.id || (m && m.id);
      if (!m) { fail('never published', `delivery ${d.id} ${d.topic} ${JSON.stringify(d.key)} is not in the stream`, d.t, i); return; }
      if (d.id && d.id !== m.id) { fail('wrong id', `${d.key} delivered as ${d.id}, stored as ${m.id}`, d.t, i); return; }
      if (!matches(s.topic, m.topic) || d.topic !== m.topic) { fail('wrong topic', `${id} (${m.topic}) delivered on ${d.topic} to a ${s.topic} subscriber`, d.t, i); return; }
      const q = seq(id);
      if (seen.has(q)) { fail('duplicate', `${id} delivered again`, d.t, i); return; }
      if (q <= last) fail('out of order', `${id} after SEQ ${last}`, d.t, i);
      if (q <= startSeq) fail('before the start point', `${id} is not after ${startId}`, d.t, i);
      seen.add(q); last = Math.max(last, q);
    });
    for (const g of s.gaps) fail('gap notice', `gap notice ${g.detail} after ${g.lastId} (retention never ran out in this run)`, g.t, g.after);
    // every acknowledged message on its topics after the start point
    const want = truth.filter((m) => matches(s.topic, m.topic) && seq(m.id) > startSeq && pubs.get(m.key) && pubs.get(m.key).outcome === 'acked');
    for (const m of want) {
      if (seen.has(seq(m.id))) continue;
      const p = pubs.get(m.key);
      const i = s.deliveries.findIndex((d) => { const id = d.id || (byKey.get(d.key) || {}).id; return id && seq(id) > seq(m.id); });
      fail('lost', `${m.id} ${m.topic} ${m.key} (acknowledged via ${p.via} at +${p.tAck - p.t0} ms) never arrived`, p.t0, i < 0 ? s.deliveries.length : i);
    }
  }
  return {
    violations,
    stats: { attempted: pubs.size, acked, unknown, refused, retried, stored: truth.length, deliveries: checked },
  };
}

/** Print the first violation of each kind per subscriber (with its neighbours and the fault before it). */
export function report(violations, t0, print = console.log) {
  const firsts = new Map();
  for (const x of violations) { const k = `${x.who}/${x.kind}`; if (!firsts.has(k)) firsts.set(k, { x, n: 0 }); firsts.get(k).n++; }
  for (const { x, n } of firsts.values()) {
    print(`VIOLATION ${x.who}: ${x.kind}: ${x.detail}${n > 1 ? ` (and ${n - 1} more of this kind)` : ''}`);
    const f = (y) => `+${((y.t - t0) / 1000).toFixed(1)} s ${y.kind}: ${y.detail}`;
    if (x.t) print(`  at +${((x.t - t0) / 1000).toFixed(1)} s; the fault before it: ${x.fault ? f(x.fault) : 'none'}${x.next ? `; the next, within 5 s: ${f(x.next)}` : ''}`);
    if (x.around) for (const l of x.around) print(`  ${l}`);
  }
}
