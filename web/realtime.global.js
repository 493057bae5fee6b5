// GENERATED from realtime.js by build-global.mjs — do not edit; run `node web/build-global.mjs`.
// Classic-script build: <script src="/realtime.global.js"></script> defines window.Realtime.
(function (global) {
'use strict';
// realtime.js — the browser client for rtbroker. Dependency-free ES module.
//
//   import { connect } from '/realtime.js';
//   const rt = connect('https://host', { token, getToken, transports: ['websocket', 'sse', 'longpoll'] });
//   const off = rt.subscribe('chat.*', (msg) => console.log(msg.topic, msg.id, msg.event, msg.data));
//   const id = await rt.publish('chat.room1', { text: 'hi' });   // rejects with an Error whose .code is the API code
//   rt.on('state', ({ state, transport }) => …);                   // connecting | open | reconnecting | closed
//
// realtime.global.js (window.Realtime) is generated from this file by build-global.mjs:
// edit this file only, then run `node web/build-global.mjs`. Everything exported must be in the
// single `export { … }` statement at the end, which the generator replaces.
//
// The wire contract is the one in README.md (rt.v1 WebSocket ops, SSE with envelope=1, long-poll).
// How the client keeps its promises:
// - One connection carries every subscription (WebSocket: sub/unsub ops; SSE: one EventSource with
//   several topic= and envelope=1, reopened when the set changes; long-poll: one loop with several topic=).
// - One cursor (the id of the last message seen) resumes all of them, on any transport: ids are
//   EPOCH:SEQ with SEQ global across topics, so "everything after X" is the same question everywhere.
// - Every message reaches the app once: ids already delivered are dropped (a bounded set).
// - A subscription added later only gets messages newer than the broker's head when it was added
//   (its "floor"), even when the stream it joins is reopened from an older cursor.

const TRANSPORTS = ['websocket', 'sse', 'longpoll'];
const ALIASES = { ws: 'websocket', websocket: 'websocket', sse: 'sse', eventsource: 'sse', longpoll: 'longpoll', 'long-poll': 'longpoll', poll: 'longpoll' };
const SEGMENT = /^[A-Za-z0-9_-]+$/;

const DEFAULTS = {
  backoff: { base: 500, cap: 15000 },   // full-jitter exponential: random(0, min(cap, base * 2^attempt)) ms
  connectTimeout: 10000,                // a transport that has not opened by then counts as failed
  maxQueue: 100,                        // publishes held while disconnected; more reject with code queue_full
  publishTimeout: 15000,                // an unacknowledged publish rejects with code timeout
  publishRetries: 3,                    // HTTP publishes retried after network errors (same Idempotency-Key)
  pingInterval: 25000,                  // WebSocket: an rt.v1 ping this often...
  pingTimeout: 10000,                   // ...and the connection counts as dead when nothing came back for this long
  pollTimeout: 25,                      // long-poll hold, seconds
  wsMaxPublish: 16384,                  // WebSocket publishes larger than this (as JSON) go over HTTP
  dedupSize: 5000,                      // ids remembered for de-duplication
  refreshBefore: 30000,                 // refresh a token this long before its exp (at most half its remaining life)
  remember: true,                       // remember the transport that worked in sessionStorage
  stableAfter: 10000,                   // a connection open this long resets the backoff
};

// ---------------------------------------------------------------- pure helpers (exported for tests)

/** Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2^attempt)). */
function backoffDelay(attempt, { base = DEFAULTS.backoff.base, cap = DEFAULTS.backoff.cap } = {}, rand = Math.random) {
  const ceiling = Math.min(cap, base * Math.pow(2, Math.max(0, attempt)));
  return Math.floor(rand() * ceiling);
}

/** Is `pattern` a valid subscription (wildcards allowed) or, with exact=true, a publishable topic? */
function validTopic(pattern, exact = false) {
  if (typeof pattern !== 'string' || pattern.length < 1 || pattern.length > 255) return false;
  const segs = pattern.split('.');
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    if (SEGMENT.test(s)) continue;
    if (exact) return false;
    if (s === '*') continue;
    if (s === '>' && i === segs.length - 1) continue;
    return false;
  }
  return true;
}

/** NATS-style matching: `*` is one whole segment, a last `>` one or more trailing segments. */
function matchTopic(pattern, topic) {
  if (pattern === topic) return true;
  const p = pattern.split('.');
  const t = topic.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return i === p.length - 1 && t.length > i;
    if (i >= t.length) return false;
    if (p[i] !== '*' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

/** "EPOCH:SEQ" → { epoch, seq } with seq as a digit string without leading zeros; null if not an id. */
function parseId(id) {
  if (typeof id !== 'string') return null;
  const m = /^([A-Za-z0-9_-]+):(\d+)$/.exec(id);
  if (!m) return null;
  return { epoch: m[1], seq: m[2].replace(/^0+(?=\d)/, '') };
}

function seqCmp(a, b) { // compares digit strings numerically
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Which of two ids to resume from: the higher SEQ within one epoch; across epochs the one seen
 * last (`b`), since a new epoch means the old history is gone.
 */
function laterId(a, b) {
  if (!a) return b || null;
  if (!b) return a;
  const pa = parseId(a); const pb = parseId(b);
  if (!pa || !pb || pa.epoch !== pb.epoch) return b;
  return seqCmp(pb.seq, pa.seq) > 0 ? b : a;
}

/** The earlier of a cursor and a floor in the same epoch; across epochs the cursor. */
function earlierId(cursor, floor) {
  if (!cursor) return floor || null;
  if (!floor) return cursor;
  const a = parseId(cursor); const b = parseId(floor);
  if (!a || !b || a.epoch !== b.epoch) return cursor;
  return seqCmp(b.seq, a.seq) < 0 ? floor : cursor;
}

/** True when `id` is at or below `floor` in the same epoch (so it predates a subscription). */
function atOrBelow(id, floor) {
  const a = parseId(id); const f = parseId(floor);
  return !!(a && f && a.epoch === f.epoch && seqCmp(a.seq, f.seq) <= 0);
}

/** A bounded set of recently seen ids (oldest forgotten first). */
class SeenIds {
  constructor(max = DEFAULTS.dedupSize) { this.max = max; this.set = new Set(); this.order = []; this.head = 0; }
  has(id) { return this.set.has(id); }
  add(id) {
    if (this.set.has(id)) return false;
    this.set.add(id);
    this.order.push(id);
    if (this.order.length - this.head > this.max) {
      this.set.delete(this.order[this.head]);
      this.order[this.head++] = undefined;
      if (this.head > 1024 && this.head * 2 > this.order.length) { this.order = this.order.slice(this.head); this.head = 0; }
    }
    return true;
  }
  get size() { return this.set.size; }
}

/** The transports to try, in order: the remembered one first, then the rest of `list` in order. */
function transportOrder(list, remembered) {
  if (remembered && list.indexOf(remembered) > 0) return [remembered].concat(list.filter((t) => t !== remembered));
  return list.slice();
}

function normalizeTransports(list) {
  const out = [];
  for (const t of list || TRANSPORTS) {
    const n = ALIASES[String(t).toLowerCase()];
    if (!n) throw rtError('invalid_parameter', `unknown transport "${t}" (use websocket, sse, longpoll)`);
    if (out.indexOf(n) < 0) out.push(n);
  }
  if (!out.length) throw rtError('invalid_parameter', 'transports is empty');
  return out;
}

/** The `exp` claim of a JWT in seconds, or null. Reads only; verifies nothing. */
function tokenExp(token) {
  try {
    const part = String(token).split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((part.length + 3) % 4);
    const json = typeof atob === 'function' ? atob(b64) : Buffer.from(b64, 'base64').toString('binary');
    const exp = JSON.parse(json).exp;
    return typeof exp === 'number' && isFinite(exp) ? exp : null;
  } catch (e) { return null; }
}

function rtError(code, message, extra) {
  const e = new Error(message || code);
  e.code = code;
  if (extra) for (const k of Object.keys(extra)) if (extra[k] !== undefined) e[k] = extra[k];
  return e;
}

function randomKey() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  let s = '';
  for (let i = 0; i < 4; i++) s += Math.floor(Math.random() * 0x100000000).toString(36);
  return 'rt-' + s;
}

function isBinary(d) {
  return (typeof ArrayBuffer !== 'undefined' && (d instanceof ArrayBuffer || ArrayBuffer.isView(d))) ||
    (typeof Blob !== 'undefined' && d instanceof Blob);
}

function resolveBase(url) {
  const loc = globalThis.location;
  let u;
  if (url === undefined || url === null || url === '') {
    if (!loc) throw rtError('invalid_parameter', 'connect(url): url is required outside a browser');
    u = new URL('/', loc.href);
  } else {
    u = new URL(String(url), loc ? loc.href : undefined);
  }
  if (u.protocol === 'ws:') u.protocol = 'http:';
  if (u.protocol === 'wss:') u.protocol = 'https:';
  u.search = ''; u.hash = '';
  return u.href.replace(/\/+$/, '');
}

// ---------------------------------------------------------------- the client

function connect(url, options = {}) {
  return new RealtimeClient(url, options);
}

class RealtimeClient {
  constructor(url, options = {}) {
    const o = Object.assign({}, DEFAULTS, options);
    o.backoff = Object.assign({}, DEFAULTS.backoff, options.backoff || {});
    this.options = o;
    this.url = resolveBase(url);
    this.transports = normalizeTransports(o.transports);
    this.state = 'connecting';
    this.transport = null;
    this._WebSocket = o.WebSocket || globalThis.WebSocket;
    this._EventSource = o.EventSource || globalThis.EventSource;
    const f = o.fetch || globalThis.fetch;
    this._fetchFn = f ? (...a) => f.apply(globalThis, a) : null;
    this._token = o.token || null;
    this._getToken = typeof o.getToken === 'function' ? o.getToken : null;
    this._subs = new Map();          // pattern -> { pattern, handlers: Set, floor, denied }
    this._listeners = { state: new Set(), gap: new Set(), error: new Set(), message: new Set() };
    this._presence = new Map();      // topic -> presence view (see presence())
    this._queue = [];                // publishes waiting for a connection
    this._inflight = new Set();      // publishes sent and not yet answered
    this._seen = new SeenIds(o.dedupSize);
    this._cursor = o.since || null;  // resume point: the last id seen (or given)
    this._maxSeen = this._cursor;    // the highest id known (messages, acks, poll cursors)
    this._session = null;
    this._attempt = 0;
    this._wasOpen = false;
    this._authFails = 0;
    this._closed = false;
    this._timer = null;
    this._refreshTimer = null;
    this._refreshing = null;
    this._httpChain = Promise.resolve();
    this._pubSeq = 0;
    this.stats = { delivered: 0, duplicates: 0, gaps: 0, reconnects: 0, fallbacks: 0 };
    this._onOnline = () => { if (this._timer && !this._session) { clearTimeout(this._timer); this._timer = null; this._attempt = 0; this._startCycle(); } };
    if (typeof globalThis.addEventListener === 'function') globalThis.addEventListener('online', this._onOnline);
    Promise.resolve().then(() => this._start());
  }

  // ------------------------------------------------------------ public API

  /** Subscribe to a topic or pattern; returns a function that removes this handler. */
  subscribe(pattern, handler) {
    if (!validTopic(pattern)) throw rtError('invalid_topic', `invalid topic pattern "${pattern}"`);
    if (typeof handler !== 'function') throw rtError('invalid_parameter', 'subscribe(pattern, handler): handler must be a function');
    let sub = this._subs.get(pattern);
    const isNew = !sub;
    if (isNew) {
      sub = { pattern, handlers: new Set(), floor: null, denied: false, live: false, joined: false };
      this._subs.set(pattern, sub);
    }
    // the same function may be added twice: wrap it so each subscribe() has its own off()
    const entry = (msg) => handler(msg);
    sub.handlers.add(entry);
    if (isNew && !this._closed) this._subAdded(sub);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      sub.handlers.delete(entry);
      if (sub.handlers.size === 0 && this._subs.get(pattern) === sub) {
        this._subs.delete(pattern);
        if (!this._closed && this._session) this._session.removed(sub);
      }
    };
  }

  /** Publish; resolves with the message id, rejects with an Error whose .code is the API error code. */
  publish(topic, data, opts = {}) {
    return new Promise((resolve, reject) => {
      if (this._closed) return reject(rtError('closed', 'the client is closed'));
      if (!validTopic(topic, true)) return reject(rtError('invalid_topic', `cannot publish to "${topic}"`));
      if (data === undefined) data = null;
      if (typeof data !== 'string' && !isBinary(data)) {
        try { JSON.stringify(data); } catch (e) { return reject(rtError('invalid_parameter', `data is not JSON-serializable: ${e.message}`)); }
      }
      const ephemeral = !!opts.ephemeral; // to current subscribers only: never stored, resolves with null
      const key = ephemeral ? null : opts.idempotencyKey || randomKey();
      const item = { seq: ++this._pubSeq, topic, data, event: opts.event, ephemeral, key, resolve, reject, tries: 0, authRetried: false };
      if (this.state === 'open' && this._session && this._queue.length === 0) return this._send(item);
      if (this._queue.length >= this.options.maxQueue) {
        return reject(rtError('queue_full', `not connected and ${this._queue.length} publishes are already waiting (maxQueue)`));
      }
      this._queue.push(item);
    });
  }

  /**
   * Who is in an exact topic: joins its presence (the token's user, or anonymous) and follows the others.
   * handlers: { onJoin(member), onLeave(member), onChange(view) }; member = { user, client, info }.
   * Returns { topic, users: [{user, clients, info}], anonymous, count, ready (a Promise), refresh(), close() }:
   * the lists are the broker's snapshot, fetched at open and after each reconnect and kept up to date by the events.
   * The membership ends when the last handler of the topic (presence or subscribe) is removed.
   */
  presence(topic, handlers = {}) {
    if (!validTopic(topic, true)) throw rtError('invalid_topic', `presence needs an exact topic, not "${topic}"`);
    let v = this._presence.get(topic);
    if (!v) {
      v = { topic, users: [], anonymous: 0, count: 0, watchers: new Set(), timer: null, fetching: null };
      this._presence.set(topic, v);
      v.ready = new Promise((res) => { v.resolveReady = res; });
    }
    const w = Object.assign({}, handlers);
    v.watchers.add(w);
    const off = this.subscribe(topic, () => {}); // the membership rides on a subscription of the topic
    const sub = this._subs.get(topic);
    if (sub && !sub.presence) {
      sub.presence = true;
      if (!this._closed && this._session && this._session.presenceChanged) this._session.presenceChanged(sub);
    }
    if (this.state === 'open') this._presenceFetch(v);
    const handle = {
      topic,
      get users() { return v.users; },
      get anonymous() { return v.anonymous; },
      get count() { return v.count; },
      ready: v.ready,
      refresh: () => this._presenceFetch(v),
      close: () => {
        if (!v.watchers.delete(w)) return;
        off();
        if (v.watchers.size === 0 && this._presence.get(topic) === v) { this._presence.delete(topic); clearTimeout(v.timer); }
      },
    };
    return handle;
  }

  /** A join or leave event {type, topic, user, client, info} from any transport. */
  _presenceEvent(ev, sess) {
    if (sess && sess !== this._session) return;
    const v = this._presence.get(ev.topic);
    if (!v) return;
    const member = { user: ev.user == null ? null : ev.user, client: ev.client, info: ev.info == null ? null : ev.info };
    const join = ev.type === 'join';
    if (member.user === null) v.anonymous = Math.max(0, v.anonymous + (join ? 1 : -1));
    else {
      let u = v.users.find((x) => x.user === member.user);
      if (join && !u) { u = { user: member.user, clients: 0, info: member.info }; v.users = v.users.concat([u]).sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0)); }
      if (u) { u.clients += join ? 1 : -1; if (u.clients <= 0) v.users = v.users.filter((x) => x !== u); }
    }
    v.count = v.users.length + v.anonymous;
    for (const w of Array.from(v.watchers)) {
      const fn = join ? w.onJoin : w.onLeave;
      try { if (fn) fn(member); if (w.onChange) w.onChange(v); } catch (e) { this._emit('error', rtError('handler', `a presence handler threw: ${e && e.message}`, { cause: e, topic: ev.topic })); }
    }
    // events that crossed the snapshot request are counted twice or not at all: the broker's answer settles it
    clearTimeout(v.timer);
    v.timer = setTimeout(() => this._presenceFetch(v), 500);
  }

  async _presenceFetch(v) {
    if (this._closed || !this._fetchFn) return;
    const headers = {};
    if (this._token) headers.Authorization = 'Bearer ' + this._token;
    let j = null;
    try {
      const r = await this._fetch(this.url + '/presence/' + v.topic, { headers, cache: 'no-store' }, this.options.connectTimeout);
      j = await r.json();
      if (r.status !== 200) return this._emit('error', rtError(j.error || 'http_' + r.status, j.message, { topic: v.topic, status: r.status }));
    } catch (e) { return; }
    if (this._presence.get(v.topic) !== v || !j || !Array.isArray(j.users)) return;
    v.users = j.users;
    v.anonymous = j.anonymous || 0;
    v.count = j.count || 0;
    v.resolveReady(v);
    for (const w of Array.from(v.watchers)) {
      try { if (w.onChange) w.onChange(v); } catch (e) { this._emit('error', rtError('handler', `a presence handler threw: ${e && e.message}`, { cause: e, topic: v.topic })); }
    }
  }

  /** Listen to 'state' ({state, transport}), 'gap' ({topic, from, transport}), 'error' (Error with .code), 'message'. */
  on(event, fn) {
    const set = this._listeners[event];
    if (!set) throw rtError('invalid_parameter', `unknown event "${event}" (state, gap, error, message)`);
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Use a new token now (WebSocket: {"op":"auth"}; SSE: the stream is reopened; long-poll: the next poll). */
  setToken(token) {
    this._token = token || null;
    for (const s of this._subs.values()) s.denied = false;
    this._scheduleRefresh();
    if (this._session && this.state === 'open') this._session.tokenChanged();
  }

  /** Change the transports to use (and their order); reconnects, keeping subscriptions and the cursor. */
  setTransports(list) {
    this.transports = normalizeTransports(list);
    this._remember(null);
    if (this._closed) return;
    this._dropSession();
    this._attempt = 0;
    this._startCycle();
  }

  /** Close for good: pending publishes reject with code "closed". */
  close() {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._timer); this._timer = null;
    clearTimeout(this._refreshTimer); this._refreshTimer = null;
    if (typeof globalThis.removeEventListener === 'function') globalThis.removeEventListener('online', this._onOnline);
    const err = rtError('closed', 'the client was closed');
    for (const it of this._queue.splice(0)) it.reject(err);
    for (const it of Array.from(this._inflight)) this._settle(it, err);
    this._dropSession();
    this._setState('closed', this.transport);
  }

  get cursor() { return this._cursor; }
  get token() { return this._token; }

  // ------------------------------------------------------------ connecting and falling back

  async _start() {
    if (this._closed) return;
    const exp = this._token ? tokenExp(this._token) : null;
    const reason = !this._token ? 'initial' : exp && exp * 1000 < Date.now() + 1000 ? 'expired' : null;
    if (reason && this._getToken) { // no token yet, or one that is already expired: ask before connecting
      try { this._token = (await this._getToken({ reason })) || this._token; } catch (e) { this._emit('error', rtError('token', `getToken failed: ${e && e.message}`)); }
    }
    this._scheduleRefresh();
    this._startCycle();
  }

  _supported(name) {
    if (name === 'websocket') return typeof this._WebSocket === 'function';
    if (name === 'sse') return typeof this._EventSource === 'function' && !!this._fetchFn;
    return !!this._fetchFn;
  }

  _remembered() {
    if (!this.options.remember) return null;
    try { return this._storage() ? this._storage().getItem('rtbroker.transport ' + this.url) : null; } catch (e) { return null; }
  }

  _remember(name) {
    if (!this.options.remember || (name && this.transports.length < 2)) return; // nothing to choose from
    try {
      const s = this._storage();
      if (!s) return;
      if (name) s.setItem('rtbroker.transport ' + this.url, name); else s.removeItem('rtbroker.transport ' + this.url);
    } catch (e) { /* storage may be disabled */ }
  }

  _storage() {
    const r = this.options.remember;
    if (r && typeof r === 'object' && typeof r.getItem === 'function') return r;
    try { return globalThis.sessionStorage || null; } catch (e) { return null; }
  }

  _startCycle() {
    if (this._closed) return;
    clearTimeout(this._timer); this._timer = null;
    this._order = transportOrder(this.transports, this._remembered()).filter((t) => this._supported(t));
    this._idx = 0;
    if (!this._order.length) {
      this._emit('error', rtError('no_transport', `none of the transports ${this.transports.join(', ')} is available here`));
      this.close();
      return;
    }
    this._next();
  }

  async _next(retrySame = false) {
    if (this._closed) return;
    if (retrySame) this._idx = Math.max(0, this._idx - 1);
    if (this._idx >= this._order.length) return this._scheduleRetry();
    const name = this._order[this._idx++];
    if (this._idx > 1 && !retrySame) this.stats.fallbacks++;
    this._setState(this._wasOpen ? 'reconnecting' : 'connecting', name);
    const gen = (this._gen = (this._gen || 0) + 1);
    if (!this._cursor && name !== 'longpoll' && this._activeSubs().length) {
      // start from the broker's head, so that a drop before the first message loses nothing
      const head = await this._probe(this._activeSubs()[0].pattern);
      if (gen !== this._gen || this._closed) return;
      if (head.cursor && !this._cursor) { this._cursor = head.cursor; this._maxSeen = laterId(this._maxSeen, head.cursor); }
    }
    const make = name === 'websocket' ? wsSession : name === 'sse' ? sseSession : pollSession;
    this._session = make(this);
  }

  _scheduleRetry() {
    if (this._closed) return;
    const delay = backoffDelay(this._attempt++, this.options.backoff);
    this.stats.reconnects++;
    this._setState(this._wasOpen ? 'reconnecting' : 'connecting', this.transport || this._order[0], { delay });
    clearTimeout(this._timer);
    this._timer = setTimeout(() => { this._timer = null; this._startCycle(); }, delay);
  }

  // called by sessions
  _opened(sess) {
    if (sess !== this._session) return;
    this._wasOpen = true;
    this._openedAt = Date.now();
    this._authFails = 0;
    this.transport = sess.name;
    this._remember(sess.name);
    this._setState('open', sess.name);
    this._flushQueue();
    for (const v of this._presence.values()) this._presenceFetch(v); // what changed while away
  }

  _failed(sess, info) {  // could not open
    if (sess !== this._session) return;
    this._session = null;
    if (info.kind === 'auth') return this._authFailure(info);
    this._next();
  }

  _dropped(sess, info) { // was open, is gone
    if (sess !== this._session) return;
    this._session = null;
    this._failInflight('disconnected');
    if (this._closed) return;
    if (Date.now() - (this._openedAt || 0) > this.options.stableAfter) this._attempt = 0;
    if (info.kind === 'auth') return this._authFailure(info);
    this._setState('reconnecting', sess.name);
    this._scheduleRetry();
  }

  _dropSession() {
    const s = this._session;
    this._session = null;
    this._gen = (this._gen || 0) + 1;
    if (s) s.close();
    this._failInflight('disconnected');
  }

  // 4001 / 401 / rt.expired / 4003 / 403: no reconnect loop; ask the app for a token instead.
  async _authFailure(info) {
    if (this._closed) return;
    const gen = this._gen;
    const stale = () => this._closed || gen !== this._gen; // setTransports() or close() meanwhile
    const code = info.code || 'unauthorized';
    if (code === 'forbidden' && info.transport !== 'websocket') {
      // SSE and long-poll refuse the whole stream for one forbidden topic: find which and drop those
      const found = await this._findForbidden();
      if (stale()) return;
      if (found.denied.length) {
        for (const s of found.denied) { s.denied = true; this._emit('error', rtError('forbidden', `not allowed to subscribe to ${s.pattern}`, { topic: s.pattern, transport: info.transport })); }
        return this._next(true);
      }
      if (found.allowed && this._authFails < 2) { // each is allowed now (the set changed meanwhile): once more
        this._authFails++;
        return this._next(true);
      }
    }
    const old = this._token;
    let tok = null;
    if (this._getToken && this._authFails < 2) {
      this._authFails++;
      try { tok = await this._getToken({ reason: code }); } catch (e) { tok = null; }
      if (stale()) return;
    }
    if (tok && tok !== old) {
      this._token = tok;
      for (const s of this._subs.values()) s.denied = false;
      this._scheduleRefresh();
      return this._next(true);
    }
    this._emit('error', rtError(code, info.message || (code === 'forbidden' ? 'the token does not allow this' : 'the token was refused or has expired'), { transport: info.transport }));
    this.close();
  }

  async _findForbidden() { // → { denied: [subs], allowed: every one probed fine }
    const denied = [];
    for (const s of this._activeSubs()) {
      const r = await this._probe(s.pattern);
      if (r.status === 403) denied.push(s);
      else if (r.status !== 200) return { denied: [], allowed: false }; // cannot tell (long-poll not loaded, say)
    }
    return { denied, allowed: denied.length === 0 };
  }

  // ------------------------------------------------------------ tokens

  _scheduleRefresh() {
    clearTimeout(this._refreshTimer); this._refreshTimer = null;
    if (!this._getToken || !this._token || this._closed) return;
    const exp = tokenExp(this._token);
    if (!exp) return;
    const left = exp * 1000 - Date.now();
    const wait = Math.max(0, left - Math.min(this.options.refreshBefore, left / 2));
    this._refreshTimer = setTimeout(() => { this._refreshTimer = null; this._refresh('expiry'); }, Math.min(wait, 0x7fffffff));
  }

  _refresh(reason) {
    if (!this._getToken || this._closed) return Promise.resolve(false);
    if (this._refreshing) return this._refreshing;
    this._refreshing = (async () => {
      let tok = null;
      try { tok = await this._getToken({ reason }); } catch (e) { this._emit('error', rtError('token', `getToken failed: ${e && e.message}`)); }
      if (!tok || tok === this._token || this._closed) return false;
      this.setToken(tok);
      return true;
    })().finally(() => { this._refreshing = null; });
    return this._refreshing;
  }

  // ------------------------------------------------------------ subscriptions

  _activeSubs() { return Array.from(this._subs.values()).filter((s) => !s.denied && !s.probing); }

  async _subAdded(sub) {
    // messages at or below the floor predate this subscription and are not given to it
    sub.floor = this._maxSeen;
    if (!this._session) return; // included when the next connection opens
    let since = null;
    if (this._session.name !== 'websocket' || !this._cursor) {
      // SSE and long-poll reopen from the shared cursor, and a first cursor is needed anyway: learn
      // the broker's head, so that this subscription starts there (and see whether it is allowed)
      sub.probing = true; // kept out of streams until allowed
      const r = await this._probe(sub.pattern);
      sub.probing = false;
      if (this._subs.get(sub.pattern) !== sub || this._closed) return;
      if (r.status === 401 || r.status === 403) {
        sub.denied = true;
        this._emit('error', rtError(r.code || (r.status === 401 ? 'unauthorized' : 'forbidden'), r.message || `not allowed to subscribe to ${sub.pattern}`, { topic: sub.pattern, transport: this.transport }));
        return;
      }
      if (r.cursor) {
        sub.floor = since = r.cursor;
        this._maxSeen = laterId(this._maxSeen, r.cursor);
        if (!this._cursor) this._cursor = r.cursor;
      }
    }
    if (this._session) this._session.added(sub, since);
  }

  /**
   * Where a (re)opened SSE stream or the next poll starts: the cursor, or earlier when a subscription
   * that has not joined a stream yet starts earlier (the cursor may have moved past its floor
   * meanwhile; what the others get twice is dropped as duplicates).
   */
  _resumePoint() {
    let since = this._cursor;
    for (const s of this._activeSubs()) if (!s.joined && s.floor) since = earlierId(since, s.floor);
    return since;
  }

  _joined(subs) { for (const s of subs) s.joined = true; }

  /** GET /poll?topic=P&timeout=0: the broker's head id (and whether P is allowed), without waiting. */
  async _probe(pattern) {
    try {
      const q = new URLSearchParams();
      q.append('topic', pattern);
      q.append('timeout', '0');
      if (this._token) q.append('token', this._token);
      const r = await this._fetch(this.url + '/poll?' + q, { cache: 'no-store' }, 5000);
      let j = null;
      try { j = await r.json(); } catch (e) { /* not JSON */ }
      if (r.status === 200 && j && typeof j.cursor === 'string') return { status: 200, cursor: j.cursor };
      return { status: r.status, code: j && j.error, message: j && j.message };
    } catch (e) {
      return { status: 0 };
    }
  }

  _fetch(url, init = {}, timeoutMs = 0) {
    if (!timeoutMs) return this._fetchFn(url, init);
    const ctl = typeof AbortController === 'function' ? new AbortController() : null;
    const t = ctl ? setTimeout(() => ctl.abort(), timeoutMs) : null;
    return this._fetchFn(url, Object.assign({}, init, ctl ? { signal: ctl.signal } : {})).finally(() => clearTimeout(t));
  }

  // ------------------------------------------------------------ delivery

  /** One envelope {id, topic, event, data, ...} from any transport. */
  _deliver(env, sess, { resume = true } = {}) {
    if (sess && sess !== this._session) return;
    const id = env.id === undefined ? null : env.id;
    if (id !== null) {
      if (!this._seen.add(id)) { this.stats.duplicates++; return; }
      this._maxSeen = laterId(this._maxSeen, id);
      if (resume) this._cursor = laterId(this._cursor, id);
    }
    const msg = { id, topic: env.topic, event: env.event == null ? null : env.event, data: env.data };
    if (env.content_type) msg.contentType = env.content_type;
    if (env.encoding) msg.encoding = env.encoding;
    let matched = false;
    for (const sub of Array.from(this._subs.values())) {
      if (sub.denied || !matchTopic(sub.pattern, msg.topic)) continue;
      if (id !== null && sub.floor && atOrBelow(id, sub.floor)) continue;
      matched = true;
      for (const h of Array.from(sub.handlers)) {
        try { h(msg); } catch (e) { this._emit('error', rtError('handler', `a subscription handler threw: ${e && e.message}`, { cause: e, topic: msg.topic })); }
      }
    }
    if (matched) { this.stats.delivered++; this._emit('message', msg); }
  }

  _gap(info, sess) {
    if (sess && sess !== this._session) return;
    this.stats.gaps++;
    this._emit('gap', { topic: info.topic || null, from: info.from || null, transport: sess ? sess.name : this.transport });
  }

  // ------------------------------------------------------------ publishing

  _flushQueue() {
    while (this._queue.length && this.state === 'open' && this._session) this._send(this._queue.shift());
  }

  _send(item) {
    const sess = this._session;
    if (sess && sess.name === 'websocket' && !isBinary(item.data) && sess.publish(item)) return;
    this._httpPublish(item);
  }

  _settle(item, err, id) {
    if (item.settled) return;
    item.settled = true;
    clearTimeout(item.timer);
    this._inflight.delete(item);
    if (err) item.reject(err); else {
      this._maxSeen = laterId(this._maxSeen, id);
      item.resolve(id);
    }
  }

  _track(item) {
    this._inflight.add(item);
    clearTimeout(item.timer);
    item.timer = setTimeout(() => this._settle(item, rtError('timeout', `no answer to the publish within ${this.options.publishTimeout} ms`)), this.options.publishTimeout);
  }

  _requeue(item) { // back to the head of the queue (it was accepted: the bound does not apply)
    clearTimeout(item.timer);
    this._inflight.delete(item);
    let k = 0;
    while (k < this._queue.length && this._queue[k].seq < item.seq) k++;
    this._queue.splice(k, 0, item); // in publish order
    if (this.state === 'open') this._flushQueue();
  }

  _failInflight(code) {
    for (const it of Array.from(this._inflight)) {
      if (it.via === 'websocket') this._settle(it, rtError(code, 'the connection closed before the broker answered; the message may or may not have been published'));
    }
  }

  _httpPublish(item) {
    item.via = 'http';
    this._track(item);
    this._httpChain = this._httpChain.then(() => this._post(item)).catch(() => {});
  }

  async _post(item) {
    if (item.settled) return;
    if (this.state !== 'open' && !this._closed) return this._requeue(item);
    let body = item.data; let type;
    if (isBinary(body)) type = 'application/octet-stream';
    else if (typeof body === 'string') type = 'text/plain;charset=utf-8';
    else { body = JSON.stringify(body); type = 'application/json'; }
    const headers = { 'Content-Type': type };
    if (item.key) headers['Idempotency-Key'] = item.key;
    if (item.ephemeral) headers['X-Ephemeral'] = '1';
    if (this._token) headers.Authorization = 'Bearer ' + this._token;
    const path = '/pub/' + item.topic + (item.event ? '?event=' + encodeURIComponent(item.event) : '');
    let r; let j = null;
    try {
      r = await this._fetch(this.url + path, { method: 'POST', headers, body, cache: 'no-store' }, this.options.publishTimeout);
      try { j = await r.json(); } catch (e) { /* not JSON */ }
    } catch (e) {
      if (item.settled) return;
      if (this.state !== 'open' && !this._closed) return this._requeue(item); // sent again once connected
      item.tries++;
      if (item.tries > this.options.publishRetries) return this._settle(item, rtError('network', `publish failed: ${e && e.message}`));
      // safe to repeat: the Idempotency-Key makes the broker answer the first id
      await new Promise((res) => setTimeout(res, backoffDelay(item.tries, { base: 250, cap: 3000 })));
      return this._post(item);
    }
    if (r.status === 200 && j && 'id' in j) return this._settle(item, null, j.id);
    if (r.status === 401 && this._getToken && !item.authRetried) {
      item.authRetried = true;
      if (await this._refresh('unauthorized')) return this._post(item);
    }
    const ra = r.headers && r.headers.get ? r.headers.get('Retry-After') : null;
    this._settle(item, rtError((j && j.error) || 'http_' + r.status, (j && j.message) || `publish answered HTTP ${r.status}`, {
      status: r.status, retryAfter: ra ? Number(ra) : undefined,
    }));
  }

  // ------------------------------------------------------------ events

  _setState(state, transport, extra) {
    const changed = state !== this.state || transport !== this.transport || (extra && extra.delay !== undefined);
    this.state = state;
    if (transport !== undefined) this.transport = transport;
    if (!changed) return;
    this._emit('state', Object.assign({ state, transport: this.transport }, extra || {}));
  }

  _emit(event, arg) {
    for (const fn of Array.from(this._listeners[event])) {
      try { fn(arg); } catch (e) { if (event !== 'error') this._emit('error', rtError('handler', `an "${event}" listener threw: ${e && e.message}`, { cause: e })); }
    }
  }
}

// ---------------------------------------------------------------- transports
// Each session reports to the client: c._opened(s) once, then c._dropped(s, info); or c._failed(s, info)
// if it never opened. info.kind: 'auth' (with code), 'unavailable' (not served here), 'failed'.
// s.added(sub) / s.removed(sub) follow the subscription set; s.close() ends it quietly.

function authInfo(status, code, transport, message) {
  if (status === 401) return { kind: 'auth', code: code || 'unauthorized', transport, message };
  if (status === 403) return { kind: 'auth', code: code || 'forbidden', transport, message };
  if (status === 404 || status === 405 || status === 406 || status === 501) return { kind: 'unavailable', status, transport };
  return { kind: 'failed', status, transport };
}

function wsSession(c) {
  const o = c.options;
  const s = { name: 'websocket', opened: false, done: false };
  const pending = new Map();  // ref -> { kind: 'sub'|'pub'|'auth', sub?, item? }
  let nref = 0;
  let lastRx = Date.now();
  let pingTimer = null;
  let resumeMax = null;       // while resuming, the cursor moves only once every sub has answered
  let greeted = false;        // onopen ran: auth and subs sent
  const sent = new Set();     // patterns subscribed on this connection
  let ws;
  const wsUrl = c.url.replace(/^http/, 'ws') + '/ws';
  const send = (obj) => { try { ws.send(JSON.stringify(obj)); return true; } catch (e) { return false; } };
  const ref = (entry) => { const r = 'r' + (++nref); pending.set(r, entry); return r; };

  const finish = (info) => {
    if (s.done) return;
    s.done = true;
    clearTimeout(connectTimer); clearInterval(pingTimer);
    try { ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null; } catch (e) { /* gone */ }
    try { ws.close(1000); } catch (e) { /* not open */ }
    if (!info) return;
    if (s.opened) c._dropped(s, info); else c._failed(s, info);
  };

  const joinedPresence = new Set(); // patterns whose presence this connection joined
  const subOp = (sub, since) => {
    if (sent.has(sub.pattern)) return;
    sent.add(sub.pattern);
    const op = { op: 'sub', topic: sub.pattern, ref: ref({ kind: 'sub', sub }) };
    if (since) op.since = since;
    if (sub.presence) { op.presence = true; joinedPresence.add(sub.pattern); }
    send(op);
  };

  try {
    ws = new c._WebSocket(wsUrl, ['rt.v1']);
  } catch (e) {
    Promise.resolve().then(() => finish({ kind: 'failed', transport: 'websocket' }));
    return Object.assign(s, { close() { s.done = true; }, added() {}, removed() {}, publish() { return false; }, tokenChanged() {} });
  }
  const connectTimer = setTimeout(() => finish({ kind: 'failed', transport: 'websocket', message: 'connect timeout' }), o.connectTimeout);

  ws.onopen = () => {
    if (ws.protocol && ws.protocol !== 'rt.v1') return finish({ kind: 'unavailable', transport: 'websocket' });
    greeted = true;
    if (c._token) send({ op: 'auth', token: c._token, ref: ref({ kind: 'auth' }) });
    for (const sub of c._activeSubs()) { sub.live = false; subOp(sub, sub.joined ? c._cursor : earlierId(c._cursor, sub.floor)); }
    send({ op: 'ping', ref: 'open' }); // answered after every sub above, replays included
  };

  ws.onmessage = (e) => {
    lastRx = Date.now();
    let m;
    try { m = JSON.parse(e.data); } catch (err) { return; }
    if (!m || typeof m !== 'object') return;
    switch (m.type) {
      case 'msg':
        if (!s.opened) { c._deliver(m, s, { resume: false }); if (m.id) resumeMax = laterId(resumeMax, m.id); } else c._deliver(m, s);
        break;
      case 'ok': {
        if (m.ref === 'open' && !s.opened) {
          clearTimeout(connectTimer);
          if (resumeMax) c._cursor = laterId(c._cursor, resumeMax);
          s.opened = true;
          pingTimer = setInterval(ping, Math.max(1000, Math.min(o.pingInterval, o.pingTimeout)));
          c._opened(s);
          return;
        }
        const p = pending.get(String(m.ref));
        if (!p) return;
        pending.delete(String(m.ref));
        if (p.kind === 'sub') { p.sub.live = true; p.sub.joined = true; }
        if (p.kind === 'pub') c._settle(p.item, null, m.id);
        break;
      }
      case 'error': {
        const p = m.ref !== undefined ? pending.get(String(m.ref)) : null;
        if (p) pending.delete(String(m.ref));
        const err = rtError(m.code || 'error', m.message, { topic: m.topic || (p && p.sub ? p.sub.pattern : undefined), transport: 'websocket' });
        if (p && p.kind === 'pub') return c._settle(p.item, err);
        if (p && p.kind === 'sub' || m.topic) {
          const sub = p && p.sub ? p.sub : c._subs.get(m.topic);
          if (sub && (m.code === 'forbidden' || m.code === 'unauthorized')) { sub.denied = true; sent.delete(sub.pattern); }
        }
        if (p && p.kind === 'auth') return; // the server closes 4001 next
        c._emit('error', err);
        break;
      }
      case 'gap': c._gap({ topic: m.topic, from: m.from }, s); break;
      case 'join': case 'leave': c._presenceEvent(m, s); break;
      case 'expiring': c._refresh('expiring'); break;
      default: break;
    }
  };

  let pingSent = 0;
  const ping = () => {
    const now = Date.now();
    if (pingSent && lastRx < pingSent && now - pingSent > o.pingTimeout) {
      return finish({ kind: 'failed', transport: 'websocket', message: 'no answer to ping' });
    }
    if (now - lastRx >= o.pingInterval && (!pingSent || lastRx >= pingSent)) { pingSent = now; send({ op: 'ping' }); }
  };

  ws.onerror = () => { /* onclose follows with the code */ };
  ws.onclose = (e) => {
    const code = e && e.code;
    if (code === 4001) return finish({ kind: 'auth', code: 'unauthorized', transport: 'websocket', message: e.reason });
    if (code === 4003) return finish({ kind: 'auth', code: 'forbidden', transport: 'websocket', message: e.reason });
    finish({ kind: 'failed', transport: 'websocket', closeCode: code, message: e && e.reason });
  };

  s.close = () => finish(null);
  s.added = (sub, since) => { if (greeted) subOp(sub, since); };
  s.removed = (sub) => { joinedPresence.delete(sub.pattern); if (greeted && sent.delete(sub.pattern)) send({ op: 'unsub', topic: sub.pattern }); };
  s.presenceChanged = (sub) => { // already subscribed: subscribing again with presence joins it (no replay)
    if (!greeted || joinedPresence.has(sub.pattern) || !sent.has(sub.pattern)) return;
    joinedPresence.add(sub.pattern);
    send({ op: 'sub', topic: sub.pattern, presence: true, ref: ref({ kind: 'sub', sub }) });
  };
  s.publish = (item) => {
    if (!s.opened || ws.readyState !== 1) return false;
    const r = 'r' + (++nref);
    const op = { op: 'pub', topic: item.topic, data: item.data, ref: r };
    if (item.event) op.event = item.event;
    if (item.key) op.idempotency_key = item.key; // a retry of the same publish is stored once
    if (item.ephemeral) op.ephemeral = true;
    const json = JSON.stringify(op);
    if (json.length > o.wsMaxPublish) return false; // large ones go over HTTP (a frame over the broker's limit closes the socket)
    pending.set(r, { kind: 'pub', item });
    item.via = 'websocket';
    c._track(item);
    try { ws.send(json); } catch (e) { pending.delete(r); c._settle(item, rtError('disconnected', 'the WebSocket is not open')); }
    return true;
  };
  s.tokenChanged = () => {
    if (!s.opened) return;
    send({ op: 'auth', token: c._token, ref: ref({ kind: 'auth' }) });
    for (const sub of c._activeSubs()) subOp(sub, null); // the ones refused before (sent skips the rest)
  };
  return s;
}

function sseSession(c) {
  const o = c.options;
  const s = { name: 'sse', opened: false, done: false };
  let es = null;
  let esOpen = false;
  let ending = null;    // 'shutdown' | 'expired' when the broker said why the stream ends
  let timer = null;
  let reopenTimer = null;

  const finish = (info) => {
    if (s.done) return;
    s.done = true;
    clearTimeout(timer); clearTimeout(reopenTimer);
    if (es) { es.onopen = es.onmessage = es.onerror = null; es.close(); es = null; }
    if (!info) return;
    if (s.opened) c._dropped(s, info); else c._failed(s, info);
  };

  const url = () => {
    const q = new URLSearchParams();
    for (const sub of c._activeSubs()) q.append('topic', sub.pattern);
    for (const sub of c._activeSubs()) if (sub.presence) q.append('presence', sub.pattern);
    q.append('envelope', '1');
    const since = c._resumePoint();
    if (since) q.append('since', since);
    if (c._token) q.append('token', c._token);
    return c.url + '/sse?' + q;
  };

  const markOpen = () => {
    if (s.opened) return;
    s.opened = true;
    c._opened(s);
  };

  const open = () => {
    if (s.done) return;
    if (es) { es.onopen = es.onmessage = es.onerror = null; es.close(); es = null; }
    esOpen = false; ending = null;
    if (!c._activeSubs().length) { // nothing to stream (publish-only): open once the broker answers
      clearTimeout(timer);
      endpointCheck(c, 'sse').then((bad) => { if (s.done || es || c._activeSubs().length) return; if (!bad) markOpen(); else finish(bad); });
      return;
    }
    const u = url();
    const members = c._activeSubs();
    let src;
    try { src = new c._EventSource(u); } catch (e) { return finish({ kind: 'failed', transport: 'sse' }); }
    es = src;
    clearTimeout(timer);
    timer = setTimeout(() => { if (es === src && !esOpen) finish({ kind: 'failed', transport: 'sse', message: 'connect timeout' }); }, o.connectTimeout);
    src.onopen = () => { if (es !== src) return; esOpen = true; clearTimeout(timer); c._joined(members); markOpen(); };
    src.onmessage = (e) => {
      if (es !== src) return;
      let env;
      try { env = JSON.parse(e.data); } catch (err) { return; }
      if (env && typeof env === 'object' && typeof env.topic === 'string') c._deliver(env, s);
    };
    src.addEventListener('rt.gap', (e) => { if (es !== src) return; let d = {}; try { d = JSON.parse(e.data); } catch (err) { /* empty */ } c._gap({ from: d.from }, s); });
    src.addEventListener('rt.shutdown', () => { if (es === src) ending = 'shutdown'; });
    for (const type of ['join', 'leave']) {
      src.addEventListener('rt.' + type, (e) => {
        if (es !== src) return;
        let d = null;
        try { d = JSON.parse(e.data); } catch (err) { return; }
        if (d && typeof d.topic === 'string') c._presenceEvent(Object.assign({ type }, d), s);
      });
    }
    src.addEventListener('rt.expired', () => {
      if (es !== src) return;
      finish({ kind: 'auth', code: 'unauthorized', transport: 'sse', message: 'token expired' });
    });
    src.onerror = async () => {
      if (es !== src) return;
      src.onopen = src.onmessage = src.onerror = null;
      src.close();
      es = null;
      if (esOpen || ending) return finish({ kind: 'failed', transport: 'sse', message: ending || 'stream ended' });
      // EventSource hides the status: ask again with fetch to tell 401/403/404 from a network error
      const info = await diagnose(c, u);
      if (!s.done) finish(info);
    };
  };

  const reopen = () => { // subscription set or token changed: same stream, new URL, from the cursor
    clearTimeout(reopenTimer);
    reopenTimer = setTimeout(() => { if (!s.done) open(); }, 0);
  };

  open();
  s.close = () => finish(null);
  s.added = reopen;
  s.removed = reopen;
  s.presenceChanged = reopen;
  s.tokenChanged = reopen;
  s.publish = () => false;
  return s;
}

/**
 * With nothing subscribed there is no stream to open: is the transport's endpoint there at all?
 * GET /sse or /poll without a topic is a 400 (or 401/403) where the plugin is loaded, a 404 where not.
 * → null when present, else the failure to report.
 */
async function endpointCheck(c, name) {
  const path = name === 'sse' ? '/sse' : '/poll';
  try {
    const r = await c._fetch(c.url + path, { cache: 'no-store', headers: name === 'sse' ? { Accept: 'text/event-stream' } : {} }, c.options.connectTimeout);
    try { await r.text(); } catch (e) { /* the body does not matter */ }
    const info = authInfo(r.status, null, name);
    return info.kind === 'unavailable' || r.status >= 500 ? { kind: info.kind === 'unavailable' ? 'unavailable' : 'failed', status: r.status, transport: name } : null;
  } catch (e) {
    return { kind: 'failed', transport: name };
  }
}

async function diagnose(c, u) {
  try {
    const ctl = typeof AbortController === 'function' ? new AbortController() : null;
    const t = setTimeout(() => ctl && ctl.abort(), 5000);
    const r = await c._fetchFn(u, { headers: { Accept: 'text/event-stream' }, cache: 'no-store', signal: ctl ? ctl.signal : undefined });
    let j = null;
    if (r.status !== 200) { try { j = await r.json(); } catch (e) { /* not JSON */ } }
    clearTimeout(t);
    if (ctl) ctl.abort();
    if (r.status === 200) return { kind: 'failed', transport: 'sse' };
    return authInfo(r.status, j && j.error, 'sse', j && j.message);
  } catch (e) {
    return { kind: 'failed', transport: 'sse' };
  }
}

function pollSession(c) {
  const o = c.options;
  const s = { name: 'longpoll', opened: false, done: false };
  let client = null; // our presence client_key (id + the broker's MAC), handed back on each poll
  let ctl = null;
  let restart = false;
  let wake = null;

  const finish = (info) => {
    if (s.done) return;
    s.done = true;
    if (ctl) ctl.abort();
    if (wake) wake();
    if (!info) return;
    if (s.opened) c._dropped(s, info); else c._failed(s, info);
  };

  const loop = async () => {
    let first = true;
    while (!s.done) {
      const subs = c._activeSubs();
      if (!subs.length) {
        if (!s.opened) {
          const bad = await endpointCheck(c, 'longpoll');
          if (bad) return finish(bad);
          if (s.done) return;
          if (c._activeSubs().length) continue;
          s.opened = true;
          c._opened(s);
        }
        await new Promise((res) => { wake = res; });
        wake = null;
        continue;
      }
      const q = new URLSearchParams();
      for (const sub of subs) q.append('topic', sub.pattern);
      for (const sub of subs) if (sub.presence) q.append('presence', sub.pattern);
      const sentClient = client && subs.some((sub) => sub.presence);
      if (sentClient) q.append('client', client); // the same member between polls
      const since = c._resumePoint();
      if (since) q.append('cursor', since);
      const hold = first ? 0 : o.pollTimeout;
      q.append('timeout', String(hold));
      if (c._token) q.append('token', c._token);
      ctl = typeof AbortController === 'function' ? new AbortController() : null;
      const myCtl = ctl;
      const t = setTimeout(() => myCtl && myCtl.abort(), hold * 1000 + o.connectTimeout);
      let r; let j = null;
      try {
        r = await c._fetchFn(c.url + '/poll?' + q, { cache: 'no-store', signal: myCtl ? myCtl.signal : undefined });
        try { j = await r.json(); } catch (e) { j = null; }
      } catch (e) {
        clearTimeout(t);
        if (s.done) return;
        if (restart) { restart = false; continue; }
        return finish({ kind: 'failed', transport: 'longpoll', message: e && e.message });
      }
      clearTimeout(t);
      if (s.done) return;
      if (restart && (r.status !== 200 || !j)) { restart = false; continue; } // aborted for a new topic set
      // a key this node does not take (another user's token now, or another secret): become a new member
      if (sentClient && r.status === 400 && j && j.error === 'invalid_id' && /client/.test(j.message || '')) { client = null; continue; }
      if (r.status !== 200 || !j || typeof j.cursor !== 'string') {
        return finish(r.status === 200 ? { kind: 'failed', transport: 'longpoll' } : authInfo(r.status, j && j.error, 'longpoll', j && j.message));
      }
      c._joined(subs);
      if (!s.opened) { s.opened = true; c._opened(s); if (s.done) return; }
      if (j.gap) c._gap({ from: c._cursor }, s);
      for (const m of j.messages || []) {
        if (s.done) return;
        if (m && (!m.type || m.type === 'msg') && typeof m.topic === 'string') c._deliver(m, s, { resume: false });
        else if (m && (m.type === 'join' || m.type === 'leave') && typeof m.topic === 'string') c._presenceEvent(m, s);
      }
      if (s.done) return;
      c._cursor = j.cursor;
      c._maxSeen = laterId(c._maxSeen, j.cursor);
      if (typeof j.client_key === 'string') client = j.client_key;
      first = false;
      restart = false;
    }
  };

  const changed = () => {
    if (s.done) return;
    if (wake) return wake();
    restart = true;
    if (ctl) ctl.abort();
  };

  Promise.resolve().then(loop);
  s.close = () => finish(null);
  s.added = changed;
  s.removed = changed;
  s.presenceChanged = changed;
  s.tokenChanged = changed;
  s.publish = () => false;
  return s;
}

global.Realtime = { connect, RealtimeClient, backoffDelay, matchTopic, validTopic, parseId, laterId, earlierId, atOrBelow, SeenIds, transportOrder, tokenExp, DEFAULTS };
})(typeof globalThis !== 'undefined' ? globalThis : this);
