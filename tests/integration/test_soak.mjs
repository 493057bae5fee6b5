// Churn and soak with the default, bounded counts (about 1.5 minutes; tests/soak/soak.mjs says what is
// checked). `make soak` runs it longer; SOAK_* variables change the counts.
import { suite, SLOW } from './lib.mjs';
import { runSoak, soakConfig, soakBroker, report } from '../soak/soak.mjs';

const cfg = soakConfig();
const budget = (cfg.WARMUP_S + cfg.SECONDS + 90) * 1000 * SLOW;
const t = suite(import.meta.url, { hardTimeoutMs: budget + 20000 });

t.test(`churn and soak: ${cfg.WARMUP_S} s warm-up + ${cfg.SECONDS} s, ${cfg.CHURNERS} churning clients, ${cfg.RATE} messages/s`, async (c) => {
  const b = await c.broker(soakBroker());
  const { checks, figures } = await runSoak(b, cfg, (m) => c.info(m));
  c.info(`figures: ${JSON.stringify(figures)}`);
  report(t.file, checks);
}, { timeout: budget });

await t.run();
