// NATS bus, a stream made by an older broker or by hand (issue 18): one without AllowDirect is updated at
// start; one without RePublish (nats-server 2.9 refuses to add it: JetStream error 10052) stops the broker
// with the command to run, and doing it lets the broker start.
import { suite, assert, eq, sleep, trunc, epochOf } from './lib.mjs';
import { publishN, sseResume, startNats, natsBroker, natsConfig, natsClient } from './natslib.mjs';

const t = suite(import.meta.url, { hardTimeoutMs: 40000 });



t.test('a stream without AllowDirect is updated; one without RePublish stops the broker with what to run', async (c) => {
  const nats = await startNats(c);
  let r = await natsClient(['addstream', nats.url, 'RT', 'rt.>', '100', '1', '3600', '120', 'rt_live.>', '-', '0']);
  eq(r.code, 0, `addstream without AllowDirect: ${r.stderr}`);
  const A = await natsBroker(c, nats.url);
  const info = await natsClient(['info', nats.url, 'RT']);
  assert(/^allow_direct=1$/m.test(info.stdout) && /^republish=rt_live\.>$/m.test(info.stdout), `stream after start: ${info.stdout}`);
  const ids = await publishN(A.base, 'old.a', 3);
  await sseResume(A.base, 'old.a', `${epochOf(ids[0])}:0`, ids, 'resume on the updated stream');

  r = await natsClient(['addstream', nats.url, 'OLD', 'old.>', '100', '1', '3600', '120', '-']);
  eq(r.code, 0, `addstream without RePublish: ${r.stderr}`);
  let started = null; let err = null;
  try { started = await c.broker({ config: natsConfig(nats.url, { nats: { subject_prefix: 'old' } }) }); } catch (e) { err = e; }
  if (started) {
    await sleep(1000);
    if (started.alive()) {
      // a nats-server that can add RePublish to a stream: the broker did, and runs
      const i2 = await natsClient(['info', nats.url, 'OLD']);
      assert(/^republish=old_live\.>$/m.test(i2.stdout), `broker runs on a stream without RePublish: ${i2.stdout}\n${started.log()}`);
      c.info('this nats-server accepted adding RePublish to the stream');
      return;
    }
    err = new Error(`exited (code ${started.exited.code})\n${started.log()}`);
    started.stopping = true;
  }
  const log = err.message;
  assert(/code [1-9]/.test(log), `expected a non-zero exit: ${trunc(log, 600)}`);
  assert(/re-publish/i.test(log) && /delstream URL OLD|nats stream rm OLD/.test(log), `the refusal does not say what to run:\n${trunc(log, 1500)}`);
  // doing what it says lets the broker start
  r = await natsClient(['delstream', nats.url, 'OLD']);
  eq(r.code, 0, `delstream OLD: ${r.stderr}`);
  await natsBroker(c, nats.url, { nats: { subject_prefix: 'old' } });
  c.info(`stream without RePublish: ${(log.split('\n').find((l) => /re-publish/.test(l)) || '').trim().slice(0, 300)}`);
});

await t.run();
