// The shape docs/architecture.md promises: the product's import graph has no circles, and no
// product file imports test support (the build, tsconfig.build.json, emits only the product).
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { exportAllowance } from './exports-allowance.js';

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

/**
 * Places where an error is dropped: `catch {` without a binding, `catch (e) {}` left empty, and
 * rejection handlers that ignore their argument (`.catch(() => …)`, `.then(ok, () => undefined)`).
 * Each must say why in a `//` comment on its line, the line before or the first line inside
 * (conventions in docs/architecture.md: an error is logged once where handled, or ignoring it is
 * the right behaviour and the code says so, narrowed to the expected error).
 */
function silentCatches(file: string): string[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: string[] = [];
  lines.forEach((line, index) => {
    const next = lines[index + 1] ?? '';
    const dropped =
      /\bcatch\s*\{/.test(line) ||
      (/\bcatch\s*\(\w+\)\s*\{\s*$/.test(line) && /^\s*\}/.test(next)) ||
      /\.catch\(\s*\(\)\s*=>/.test(line) ||
      /\.then\(.*,\s*\(\)\s*=>\s*(undefined|false|null|\[\]|''|\{\s*\})\s*\)/.test(line);
    if (!dropped) return;
    const said = line.includes('//') || line.includes('/*') || /^\s*\/\//.test(lines[index - 1] ?? '') || next.includes('//');
    if (!said) out.push(`${relative(root, file)}:${index + 1}: ${line.trim()}`);
  });
  return out;
}

/**
 * Files of other folders that still had uncommented dropped errors when the check came
 * (issue 23 fixed agent/, cri/, eviction/, probes/ and lib/); their count may only go down.
 */
const silentCatchAllowance: Record<string, number> = {
  'bin/cli.ts': 1,
  'bin/down.ts': 2,
  'bin/up-supervisor.ts': 1,
  'bin/up.ts': 1,
  'cni/ipam-store.ts': 6,
  'cni/netdev.ts': 3,
  'cni/plugin.ts': 2,
  'controlplane/api-server.ts': 1,
  'controlplane/controllers/event-ttl.ts': 1,
  'controlplane/controllers/events.ts': 1,
  'controlplane/controllers/namespace.ts': 1,
  'controlplane/controllers/scheduler-policy.ts': 1,
  'controlplane/kinds-batch.ts': 1,
  'controlplane/storage/etcd.ts': 1,
  'dns/command.ts': 1,
  'dns/publish.ts': 1,
  'dns/server.ts': 2,
  'overlay/daemon.ts': 1,
  'overlay/policy.ts': 2,
  'overlay/vxlan.ts': 1,
  'proxy/command.ts': 1,
  'proxy/ipvs/cleanup.ts': 1,
  'proxy/ipvs/host.ts': 2,
  'proxy/leftovers.ts': 2,
};

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

  it('drops no error silently: every ignored error says why (a comment), the rest are logged', () => {
    const over = product.flatMap((file) => {
      const found = silentCatches(file);
      return found.length > (silentCatchAllowance[relative(root, file)] ?? 0) ? found : [];
    });
    expect(over).toEqual([]);
  });

  it('finds a silent catch (the check can fail)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'structure-'));
    try {
      const file = join(dir, 'x.ts');
      writeFileSync(file, "try {\n  f();\n} catch {\n  return;\n}\np.catch(() => undefined);\ntry {\n  g();\n} catch {\n  // ENOENT: absent is fine\n}\n");
      expect(silentCatches(file).map((line) => line.replace(/^.*x\.ts:/, ''))).toEqual(['3: } catch {', '6: p.catch(() => undefined);']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exports only what the product imports (test-only exports are made private, moved to test/helpers, or allowed with a reason)', () => {
    const found = JSON.parse(execFileSync(process.execPath, [join(root, 'scripts/unused-exports.mjs'), '--json'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 })) as { kind: string; file: string; name: string }[];
    expect(found.length).toBeGreaterThan(0); // the script sees the exports it is meant to see
    const allowed = new Set(exportAllowance.flatMap((group) => group.exports));
    expect(found.filter((entry) => !allowed.has(`${entry.file} ${entry.name}`)).map((entry) => `${entry.kind}: ${entry.file} ${entry.name}`)).toEqual([]);
  }, 180_000);

  it('exports what the qemu guest scripts import from dist/ (string sources the compiler does not check)', () => {
    const files = ['test/integration', 'bench'].flatMap((dir) => readdirSync(join(root, dir)).filter((f) => f.endsWith('.ts')).map((f) => join(root, dir, f)));
    const missing: string[] = [];
    for (const file of files) {
      for (const match of readFileSync(file, 'utf8').matchAll(/import \{([^}]*)\} from '\.\/dist\/([^']+)\.js'/g)) {
        const source = readFileSync(join(root, `${match[2]}.ts`), 'utf8');
        for (const name of (match[1] ?? '').split(',').map((n) => n.trim()).filter(Boolean)) {
          if (!new RegExp(`^export (async )?(function|const|class) ${name}\\b`, 'm').test(source)) missing.push(`${relative(root, file)}: ${match[2]} ${name}`);
        }
      }
    }
    expect(files.length).toBeGreaterThan(0);
    expect(missing).toEqual([]);
  });

  it('builds only the product (tsconfig.build.json includes no test or bench folder; benches build apart, tsconfig.bench.json)', () => {
    const config = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
    expect(config.include.filter((pattern) => pattern.startsWith('test') || pattern.startsWith('bench'))).toEqual([]);
    expect(config.include.filter((pattern) => /\/(testing|fakes?)\//.test(pattern))).toEqual([]);
  });
});
