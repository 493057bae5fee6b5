// Extracts the examples of a Markdown file for test_docs.mjs: fenced blocks with their language, line
// and the `<!-- docs-test: ... -->` markers written on the lines just before them; the logical commands
// of a sh block with the outputs printed under them; the outputs printed in a js block's comments.
// The markers are described in README.md ("Tests": the docs test).

import fs from 'node:fs';

/** Blocks of a Markdown file: {file, line, lang, text, marks: [{word, arg}]}. */
export function extractBlocks(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```([\w-]*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const indent = open[1].length;
    const body = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]); j++) body.push(lines[j].slice(Math.min(indent, lines[j].search(/\S|$/))));
    const marks = [];
    for (let k = i - 1; k >= 0; k--) {
      const m = /^\s*<!--\s*docs-test:\s*(\S+)\s*(.*?)\s*-->\s*$/.exec(lines[k]);
      if (!m) break;
      marks.unshift({ word: m[1], arg: m[2] });
    }
    blocks.push({ file, line: i + 1, lang: open[2], text: body.join('\n'), marks });
    i = j;
  }
  return blocks;
}

export const mark = (block, word) => block.marks.find((m) => m.word === word);
export const marks = (block, word) => block.marks.filter((m) => m.word === word);

/** Where a shell line's code ends: its length, or where an unquoted `#` comment starts; and whether quotes and
 * $( ) are still open at its end (the command goes on on the next line). */
function scan(line, state) {
  let end = line.length;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (state.q === "'") { if (c === "'") state.q = ''; continue; }
    if (c === '\\') { i++; continue; }
    if (state.q === '"') { if (c === '"') state.q = ''; continue; }
    if (c === "'" || c === '"') state.q = c;
    else if (c === '(') state.depth++;
    else if (c === ')') state.depth--;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1])) && state.depth === 0) { end = i; break; }
  }
  return end;
}

// A comment line at column 0 whose text starts with { or [ is the output of the command above it.
const OUTPUT_RE = /^(#|\/\/) ?([[{].*)$/;
// "(after 25 s with nothing new)" after two spaces is a note about the output, not part of it.
const stripNote = (s) => s.replace(/\s{2,}\(.*\)\s*$/, '').trimEnd();

/** The commands of a sh block: [{code, line, output: [expected lines]}]. */
export function shellCommands(block) {
  const cmds = [];
  let cur = null;
  const state = { q: '', depth: 0 };
  block.text.split('\n').forEach((line, n) => {
    if (!cur) {
      const out = OUTPUT_RE.exec(line);
      if (out && out[1] === '#') {
        if (cmds.length) cmds[cmds.length - 1].output.push(stripNote(out[2]));
        return;
      }
      if (/^\s*(#|$)/.test(line)) return;
      cur = { code: '', line: block.line + 1 + n, output: [] };
    }
    const end = scan(line, state);
    let code = state.q ? line : line.slice(0, end).trimEnd();
    const more = state.q || state.depth > 0 || code.endsWith('\\');
    cur.code += (cur.code ? '\n' : '') + code;
    if (!more) { cmds.push(cur); cur = null; }
  });
  if (cur) cmds.push(cur);
  return cmds;
}

/** The outputs a js block prints in `// {…}` comments; several on one line are separated by 3 spaces. */
export function jsOutputs(block) {
  const out = [];
  for (const line of block.text.split('\n')) {
    const m = OUTPUT_RE.exec(line);
    if (m && m[1] === '//') out.push(...m[2].split(/\s{3,}/).map(stripNote));
  }
  return out;
}

/** Ids and times differ from run to run: both sides are compared with them masked; `…` matches anything. */
export function mask(s) {
  return s
    .replace(/\b[A-Za-z0-9_-]{4,32}:\d+\b/g, 'ID')
    .replace(/\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?\b/g, 'TIME');
}

/** Whether actual is expected (whole, or somewhere in it with within = true), ids and times masked. */
export function matches(expected, actual, within = false) {
  const re = mask(expected).split('…').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(within ? re : `^${re}$`).test(mask(actual).trimEnd());
}
