// NATS bus on a 3-server JetStream cluster (nats.replicas: 3, nats.url listing all three):
// a publish through a broker connected to one server is delivered by a broker connected to another;
// one NATS server is killed (the publishing broker's), publishing and delivery continue, every 200
// is delivered exactly once.
import { suite, assert, eq, waitFor, sleep, subscribe, trunc } from './lib.mjs';
import {
  startNatsCluster, natsBroker, connectedServers, natsClient, tryPublish, sameIds, seqNum, wsV1, metrics, metricValue,
} from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 145000 });

t.test('3-server NATS cluster, replicas 3: publish via a broker on one server, delivered via a broker on another; one server killed, publishing and delivery continue', async (c) => {
  const servers = await startNatsCluster(c, 3);
  const urls = servers.map((s) => s.url);
  const rot = (k) => [...urls.slice(k), ...urls.slice(0, k)];
  const cfg = (k) => ({ nats: { url: rot(k), replicas: 3 }, history: { max_messages: 5000 } });
  const P = await natsBroker(c, rot(0), cfg(0));
  // stream: 3 replicas
  const info = await natsClient(['info', urls.join(','), 'RT']);
  eq(info.code, 0, `nats_client info RT: ${info.stderr}`);
  assert(/^replicas=3$/m.test(info.stdout), `stream RT replicas: ${info.stdout}`);
  // which server is a broker connected to? (the NATS client picks one of the URLs at random)
  const serverOf = async (b) => {
    let on = [];
    await waitFor(() => { on = connectedServers(b.pid, servers); return on.length >= 1; }, 5000, `broker pid ${b.pid} connected to a nats-server (ss -tnp)`);
    return on[0];
  };
  const pSrv = await serverOf(P);
  // the subscribing broker: on another server (restart it until the random pick differs)
  let D = null; let dSrv = null; let attempts = 0;
  for (; attempts < 8; attempts++) {
    D = await natsBroker(c, rot(1), cfg(1));
    dSrv = await serverOf(D);
    if (dSrv !== pSrv) break;
    await D.stop();
  }
  const brokers = [P, D];
  const where = () => brokers.map((b, i) => `${i ? 'D' : 'P'} → ${connectedServers(b.pid, servers).map((x) => x.name).join('+') || '?'}`).join(', ');
  assert(dSrv !== pSrv, `could not get the two brokers onto different nats-servers in ${attempts} starts: ${where()}`);
  c.info(`JetStream meta leader elected after ${servers.metaMs} ms; publishing broker P on ${pSrv.name}, subscribing broker D on ${dSrv.name} (after ${attempts + 1} start(s))`);

  const topic = 'cl.t';
  const sD = await subscribe(D.base, `/sub/${topic}`);
  const sP = await subscribe(P.base, `/sub/${topic}`);
  c.defer(() => { sD.close(); sP.close(); });
  const v1 = await wsV1(c, D.base, topic);
  const results = []; let stop = false; let k = 0;
  c.defer(() => { stop = true; });
  const loop = (async () => {
    while (!stop) {
      const body = `c${k++}`; const t0 = Date.now();
      const r = await tryPublish(P.base, topic, body, { timeout: 15000 });
      results.push({ body, status: r.status, id: r.id, t0, t1: Date.now(), text: r.text });
      await sleep(r.status === 200 ? 10 : 100);
    }
  })();
  await waitFor(() => results.filter((r) => r.status === 200).length >= 50, 15000, '50 publishes before the kill',
    () => JSON.stringify(results.slice(-3)));
  await sD.waitFor((x) => x.messages.length >= 20, 10000, 'messages on the subscriber of the other broker before the kill');
  const leaderOf = async () => {
    const alive = servers.filter((x) => x.alive()).map((x) => x.url).join(',');
    const r = await natsClient(['info', alive, 'RT']);
    return (/^leader=(.*)$/m.exec(r.stdout) || [])[1] || '?';
  };
  // phase 1: kill the nats-server the publishing broker uses
  const victim = pSrv;
  const leader1 = await leaderOf();
  const phases = [];
  const killPhase = async (srv, label) => {
    const tKill = Date.now();
    const n0 = results.length;
    await srv.kill();
    await waitFor(() => results.some((r) => r.status === 200 && r.t0 > tKill + 200), 25000, `a 200 publish after ${srv.name} was killed`,
      () => `last results ${JSON.stringify(results.slice(-3).map((r) => [r.status, trunc(r.text, 100)]))}\npublisher log:\n${P.log()}`);
    const first = results.find((r) => r.status === 200 && r.t0 > tKill + 200);
    await sleep(1500);
    const after = results.slice(n0);
    const longest = after.reduce((a, r) => (r.t1 - r.t0 > a.t1 - a.t0 ? r : a), after[0]);
    phases.push(`${label} ${srv.name}: first 200 ${first.t1 - tKill} ms after the kill, ${after.filter((r) => r.status !== 200).length} × 503 of ${after.length} publishes in the next ${((Date.now() - tKill) / 1000).toFixed(1)} s ` +
      `(longest publish ${longest.t1 - longest.t0} ms → ${longest.status}, sent +${longest.t0 - tKill} ms)`);
  };
  await killPhase(victim, `killed the publisher's server${victim.name === leader1 ? ' (also the stream leader)' : ` (stream leader ${leader1})`}`);
  // phase 2: the victim comes back (same storage), then the stream leader is killed
  await victim.start();
  await sleep(2500);
  const leader2 = await leaderOf();
  const lsrv = servers.find((x) => x.name === leader2 && x.alive());
  if (lsrv) await killPhase(lsrv, `restarted ${victim.name}, then killed the stream leader`);
  else phases.push(`stream leader after ${victim.name} came back: ${leader2} (not killed)`);
  stop = true;
  await loop;
  const oks = results.filter((r) => r.status === 200).sort((a, b) => seqNum(a.id) - seqNum(b.id));
  const fails = results.filter((r) => r.status !== 200);
  const want = oks.map((r) => r.id);
  const okBodies = new Set(oks.map((r) => r.body));
  const okCount = (arr) => arr.filter((d) => okBodies.has(d)).length;
  await waitFor(() => okCount(sD.messages.map((m) => m.data)) >= want.length && okCount(sP.messages.map((m) => m.data)) >= want.length
    && okCount(v1.msgs().map((m) => m.data)) >= want.length, 20000, `all ${want.length} acknowledged publishes on the subscribers`,
  () => `SSE on D ${sD.messages.length} (ended ${sD.ended}), SSE on P ${sP.messages.length} (ended ${sP.ended}), rt.v1 on D ${v1.msgs().length}; ${where()}`);
  await sleep(500);
  for (const f of fails) assert(f.status === 503, `a publish during the failover got ${f.status} ${trunc(f.text, 200)} (expected 200 or 503)`);
  // every 200 exactly once, in stream order, the same ids on both nodes; a 503 delivered anyway is reported
  const failedBodies = new Set(fails.map((r) => r.body));
  for (const [name, msgs] of [['SSE on the subscriber broker', sD.messages], ['SSE on the publishing broker', sP.messages], ['rt.v1 on the subscriber broker', v1.msgs()]]) {
    const extra = msgs.filter((m) => failedBodies.has(m.data));
    if (extra.length) c.info(`${name}: ${extra.length} publishes answered 503 were delivered anyway: ${extra.slice(0, 5).map((m) => `${m.data}=${m.id}`).join(', ')}`);
    sameIds(msgs.filter((m) => !failedBodies.has(m.data)).map((m) => m.id), want, name);
    for (const m of msgs) assert(okBodies.has(m.data) || failedBodies.has(m.data), `${name}: unexpected message ${m.id} ${trunc(m.data, 60)}`);
  }
  assert(!sD.ended && !sP.ended && !v1.closed, `a subscriber was disconnected by the nats-server failure (SSE D ended ${sD.ended}, SSE P ended ${sP.ended}, rt.v1 ${JSON.stringify(v1.closed)})`);
  const up = [];
  for (const b of brokers) up.push(metricValue(await metrics(b.base), 'rtbroker_bus_up{bus="nats"}'));
  eq(up, brokers.map(() => 1), 'rtbroker_bus_up on every broker after the failover');
  c.info(`${phases.join('; ')}; in all ${results.length} publishes, ${oks.length} × 200 all delivered once on both brokers, ${fails.length} × 503; now ${where()}`);
}, { timeout: 100000 });

await t.run();
