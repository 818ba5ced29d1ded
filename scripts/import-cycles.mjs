#!/usr/bin/env node
/**
 * Finds import circles among the product's TypeScript sources (static, type-only and dynamic
 * `import()` edges alike). Usage: node scripts/import-cycles.mjs [dir ...]; exits 1 and prints
 * each circle when there is one. Regex-based on purpose: relative specifiers only, which is
 * how the project imports its own files.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const dirs = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['bin', 'lib', 'agent', 'cni', 'overlay', 'dns', 'proxy', 'cri', 'probes', 'eviction', 'controlplane'];

function files(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

const specifier = /(?:import|export)\s[^'"]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
const graph = new Map();
for (const file of dirs.flatMap((dir) => files(join(root, dir)))) {
  const text = readFileSync(file, 'utf8');
  const edges = new Set();
  for (const match of text.matchAll(specifier)) {
    const target = resolve(dirname(file), (match[1] ?? match[2]).replace(/\.js$/, '.ts'));
    if (existsSync(target)) edges.add(target);
  }
  graph.set(file, edges);
}

// Tarjan's strongly connected components: every component with more than one file is a circle.
let index = 0;
const stack = [];
const meta = new Map();
const circles = [];
function visit(node) {
  meta.set(node, { index, low: index, onStack: true });
  index += 1;
  stack.push(node);
  for (const next of graph.get(node) ?? []) {
    if (!graph.has(next)) continue;
    if (!meta.has(next)) {
      visit(next);
      meta.get(node).low = Math.min(meta.get(node).low, meta.get(next).low);
    } else if (meta.get(next).onStack) {
      meta.get(node).low = Math.min(meta.get(node).low, meta.get(next).index);
    }
  }
  if (meta.get(node).low === meta.get(node).index) {
    const component = [];
    let member;
    do {
      member = stack.pop();
      meta.get(member).onStack = false;
      component.push(relative(root, member));
    } while (member !== node);
    if (component.length > 1 || graph.get(node).has(node)) circles.push(component.sort());
  }
}
for (const node of graph.keys()) if (!meta.has(node)) visit(node);

if (circles.length === 0) {
  process.stdout.write(`no import circles in ${graph.size} files\n`);
} else {
  for (const circle of circles) process.stdout.write(`circle (${circle.length} files): ${circle.join(' ')}\n`);
  process.exitCode = 1;
}
