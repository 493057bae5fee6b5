// Generates realtime.global.js (a classic script: window.Realtime) from realtime.js (the ES module).
//   node web/build-global.mjs          writes web/realtime.global.js
//   node web/build-global.mjs --check  exits 1 when realtime.global.js is out of date
// The module keeps every export in one `export { … };` statement at its end; that statement
// becomes `global.Realtime = { … }` and the rest is wrapped, unchanged, in a strict-mode IIFE.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE = path.join(HERE, 'realtime.js');
export const TARGET = path.join(HERE, 'realtime.global.js');

export function toGlobal(src) {
  const m = /\nexport \{([^}]*)\};\s*$/.exec(src);
  if (!m) throw new Error('realtime.js must end with one `export { … };` statement');
  const body = src.slice(0, m.index + 1);
  if (/^\s*export\s/m.test(body)) throw new Error('realtime.js: only the final `export { … };` may export');
  if (/^\s*import\s/m.test(body)) throw new Error('realtime.js: no imports (it is dependency-free)');
  const names = m[1].split(',').map((s) => s.trim()).filter(Boolean);
  return '// GENERATED from realtime.js by build-global.mjs — do not edit; run `node web/build-global.mjs`.\n' +
    '// Classic-script build: <script src="/realtime.global.js"></script> defines window.Realtime.\n' +
    '(function (global) {\n\'use strict\';\n' + body +
    `global.Realtime = { ${names.join(', ')} };\n` +
    '})(typeof globalThis !== \'undefined\' ? globalThis : this);\n';
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = toGlobal(fs.readFileSync(SOURCE, 'utf8'));
  if (process.argv.includes('--check')) {
    const cur = fs.existsSync(TARGET) ? fs.readFileSync(TARGET, 'utf8') : '';
    if (cur !== out) { console.error('web/realtime.global.js is out of date: run node web/build-global.mjs'); process.exit(1); }
  } else {
    fs.writeFileSync(TARGET, out);
    console.log(`wrote ${path.relative(process.cwd(), TARGET)} (${out.length} bytes)`);
  }
}
