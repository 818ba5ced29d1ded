// The shape docs/architecture.md promises: the product's import graph has no circles, and no
// product file imports test support (the build, tsconfig.build.json, emits only the product).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const productFolders = ['bin', 'lib', 'agent', 'cni', 'overlay', 'dns', 'proxy', 'cri', 'probes', 'eviction', 'controlplane'];

function tsFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative imports of a file, resolved to .ts paths (type-only imports included: they still tie modules). */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'(\.{1,2}\/[^']+)'/g)) {
    out.push(resolve(dirname(file), match[1]!.replace(/\.js$/, '.ts')));
  }
  for (const match of text.matchAll(/\bimport\(\s*'(\.{1,2}\/[^']+)'\s*\)/g)) out.push(resolve(dirname(file), match[1]!.replace(/\.js$/, '.ts')));
  return out;
}

const product = productFolders.flatMap((folder) => tsFiles(join(root, folder)));

describe('structure of the product', () => {
  it('has product files to check', () => expect(product.length).toBeGreaterThan(100));

  it('imports no test support', () => {
    const offenders = product.flatMap((file) => imports(file).filter((target) => /^(test|bench)\//.test(relative(root, target))).map((target) => `${relative(root, file)} → ${relative(root, target)}`));
    expect(offenders).toEqual([]);
  });

  it('holds no test support (fakes, harnesses) in product folders', () => {
    const support = product.map((file) => relative(root, file)).filter((path) => /(^|\/)(testing|fakes?)(\/|\.ts$)|(^|\/)fake-[^/]*\.ts$/.test(path));
    expect(support).toEqual([]);
  });

  it('has no import circles', () => {
    const graph = new Map(product.map((file) => [file, imports(file).filter((target) => target !== file)]));
    const state = new Map<string, 'active' | 'done'>();
    const cycles: string[] = [];
    const visit = (file: string, stack: string[]): void => {
      state.set(file, 'active');
      for (const next of graph.get(file) ?? []) {
        if (!graph.has(next)) continue;
        if (state.get(next) === 'active') cycles.push([...stack.slice(stack.indexOf(next)), next].map((f) => relative(root, f)).join(' → '));
        else if (!state.has(next)) visit(next, [...stack, next]);
      }
      state.set(file, 'done');
    };
    for (const file of product) if (!state.has(file)) visit(file, [file]);
    expect(cycles).toEqual([]);
  });

  it('builds only the product (tsconfig.build.json includes no test or bench folder; benches build apart, tsconfig.bench.json)', () => {
    const config = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    expect(config.include.filter((pattern) => pattern.startsWith('test') || pattern.startsWith('bench'))).toEqual([]);
    expect(config.include.filter((pattern) => /\/(testing|fakes?)\//.test(pattern))).toEqual([]);
  });
});
