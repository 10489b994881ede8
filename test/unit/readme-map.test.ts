// The README's map of the code ("Where things live" and "One `resource.add`,
// hop by hop") must name only files and symbols that exist, so it cannot
// drift from the tree unnoticed. The rules it checks:
// - in the map's code block, each line's first column is a path that exists,
//   and each CamelCase name in its description is declared somewhere;
// - in the hop-by-hop list, a backticked path (or bare `file.ts`, resolved
//   against the paths named before it) exists; a backticked name right after
//   a file names a symbol declared in that file (`Class.member` a member of
//   that class); any other backticked CamelCase name is declared somewhere.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CODE_DIRS = ['bin', 'src', 'actors', 'test', 'bench', 'chaos', 'fuzz', 'soak', 'harness'];
const SECTIONS = ['### Where things live', '### One `resource.add`, hop by hop'];

function sources(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(ts|mjs|js)$/.test(name)) out.set(relative(ROOT, p), readFileSync(p, 'utf8'));
    }
  };
  for (const d of CODE_DIRS) walk(join(ROOT, d));
  return out;
}

function section(readme: string, heading: string): string {
  const start = readme.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `README has no section ${heading}`);
  const rest = readme.slice(start + heading.length + 2);
  const end = rest.search(/\n#{1,3} /);
  return end < 0 ? rest : rest.slice(0, end);
}

const declares = (text: string, name: string): boolean =>
  new RegExp(`(?:class|interface|type|function\\*?|const|let|enum)\\s+${name}\\b`).test(text) ||
  new RegExp(`export\\s*\\{[^}]*\\b${name}\\b`).test(text);

/** member finds `name` as a method, property or getter of `cls` declared in text. */
function hasMember(text: string, cls: string, name: string): boolean {
  const at = text.search(new RegExp(`(?:class|interface)\\s+${cls}\\b`));
  if (at < 0) return false;
  return new RegExp(`\\n\\s+(?:(?:private|protected|public|static|readonly|async|get|set|override)\\s+)*${name}\\s*[(<:=!?]`).test(text.slice(at));
}

const isPath = (t: string): boolean => /\//.test(t) || /\.(ts|mjs|js|md)$/.test(t);
const symbolName = (t: string): string => t.replace(/\(.*$/, '');
const isSymbol = (t: string): boolean => /^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?(\(.*\))?$/.test(t);

export function check(readme: string, files: Map<string, string>): string[] {
  const problems: string[] = [];
  const anywhere = (name: string) => [...files.values()].some((t) => declares(t, name));
  const exists = (p: string) => existsSync(join(ROOT, p.replace(/\/$/, '')));
  // The map's code block.
  const map = section(readme, SECTIONS[0]!);
  const block = /```\n([\s\S]*?)```/.exec(map)?.[1] ?? '';
  assert.ok(block.length > 0, 'the map has no code block');
  for (const line of block.split('\n').filter((l) => l.trim())) {
    const [path, ...desc] = line.trim().split(/\s+/);
    if (!exists(path!)) problems.push(`map: ${path} does not exist`);
    for (const word of desc.join(' ').match(/\b[A-Z][a-z]+[A-Z]\w*\b|\b[A-Z]\w+(?=[,)]|$)/g) ?? []) {
      if (!anywhere(word)) problems.push(`map: ${word} (on ${path}) is declared nowhere`);
    }
  }
  // The hop-by-hop walk.
  const hops = section(readme, SECTIONS[1]!);
  const known: string[] = [];
  const resolve = (t: string): string | undefined => {
    if (exists(t)) return t;
    return [...known].reverse().map((k) => join(dirname(k), t)).find((p) => exists(p));
  };
  const tokens = [...hops.matchAll(/`([^`]+)`(\s*)/g)];
  let file: string | undefined;
  for (const [, token, gap] of tokens) {
    const t = token!;
    if (isPath(t) && !/[<>\s]/.test(t)) {
      const p = resolve(t);
      if (!p) {
        problems.push(`hops: ${t} does not exist`);
        file = undefined;
        continue;
      }
      known.push(p);
      // A symbol right after a file (only white space between) is checked in that file.
      file = gap!.length > 0 && statSync(join(ROOT, p)).isFile() ? p : undefined;
      continue;
    }
    const inFile = file;
    file = undefined;
    if (!isSymbol(t)) continue;
    const [cls, member] = symbolName(t).split('.') as [string, string | undefined];
    const text = inFile ? files.get(inFile) ?? readFileSync(join(ROOT, inFile), 'utf8') : undefined;
    if (member !== undefined) {
      if (!/^[A-Z]/.test(cls)) continue; // a subject such as resource.add
      const owner = [...files.entries()].find(([, s]) => new RegExp(`(?:class|interface)\\s+${cls}\\b`).test(s));
      if (!owner) problems.push(`hops: class ${cls} is declared nowhere`);
      else if (!hasMember(owner[1], cls, member)) problems.push(`hops: ${cls} has no member ${member} (${owner[0]})`);
    } else if (text !== undefined) {
      if (!declares(text, cls)) problems.push(`hops: ${cls} is not declared in ${inFile}`);
    } else if (/^[A-Z]/.test(cls) && /[a-z]/.test(cls) && !anywhere(cls)) problems.push(`hops: ${cls} is declared nowhere`);
  }
  return problems;
}

test('the README map names only files and symbols that exist', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  assert.deepEqual(check(readme, sources()), []);
});

test('the README map check finds a stale name', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const stale = readme.replace('### One `resource.add`, hop by hop\n', '### One `resource.add`, hop by hop\n\n0. `actors/leader/leader.ts` `noSuchFunction`, `Leader.noSuchMethod`, `gone/file.ts`, `NoSuchClass`.\n');
  const problems = check(stale, sources());
  assert.ok(problems.some((p) => p.includes('noSuchFunction')), problems.join('\n'));
  assert.ok(problems.some((p) => p.includes('noSuchMethod')), problems.join('\n'));
  assert.ok(problems.some((p) => p.includes('gone/file.ts')), problems.join('\n'));
  assert.ok(problems.some((p) => p.includes('NoSuchClass')), problems.join('\n'));
});
