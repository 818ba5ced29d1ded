/**
 * The table test of issue 22: for each config type (KubeletConfiguration, KubeProxyConfiguration,
 * flannel net-conf) the support table lists exactly the fields of the schema; every honoured
 * field names a test file that exists and contains the named test; every not-implemented field,
 * set to a value other than its default, is named in the component's one start-up warning; and
 * README.md holds the rendered tables.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { kubeletApiVersion, kubeletConfigSchema, parseKubeletConfig } from '../../lib/config/kubelet.js';
import { kubeProxyApiVersion, kubeProxyConfigSchema, parseKubeProxyConfig } from '../../lib/config/kubeproxy.js';
import { netConfSchema, parseNetConf } from '../../lib/config/netconf.js';
import { kubeletSupport, kubeletUnimplemented } from '../../lib/config/support-kubelet.js';
import { kubeProxySupport, kubeProxyUnimplemented } from '../../lib/config/support-kubeproxy.js';
import { netConfSupport, netConfUnimplemented } from '../../lib/config/support-netconf.js';
import { renderSupportTable, schemaFieldPaths, valueAt, warnUnimplemented, type SupportTable } from '../../lib/config/support.js';
import { capturingLog } from '../helpers/log-capture.js';

const repo = join(import.meta.dirname, '..', '..');

interface ConfigType {
  name: string;
  schema: z.ZodType;
  table: SupportTable;
  base: Record<string, unknown>;
  parse: (doc: Record<string, unknown>) => unknown;
  unimplemented: (config: never) => string[];
  /** Fields a sample needs beside it to be valid (contradiction rules). */
  context?: Record<string, Record<string, unknown>>;
}

const types: ConfigType[] = [
  {
    name: 'kubelet',
    schema: kubeletConfigSchema,
    table: kubeletSupport,
    base: { apiVersion: kubeletApiVersion, kind: 'KubeletConfiguration' },
    parse: (doc) => parseKubeletConfig(doc, 'kubelet.yaml').config,
    unimplemented: kubeletUnimplemented,
    context: { shutdownGracePeriodCriticalPods: { shutdownGracePeriod: '1h' } },
  },
  {
    name: 'kube-proxy',
    schema: kubeProxyConfigSchema,
    table: kubeProxySupport,
    base: { apiVersion: kubeProxyApiVersion, kind: 'KubeProxyConfiguration' },
    parse: (doc) => parseKubeProxyConfig(doc, 'kube-proxy.yaml').config,
    unimplemented: kubeProxyUnimplemented,
  },
  {
    name: 'net-conf',
    schema: netConfSchema,
    table: netConfSupport,
    base: { Network: '10.244.0.0/16' },
    parse: (doc) => parseNetConf(doc, 'net-conf.json'),
    unimplemented: netConfUnimplemented,
  },
];

function withField(base: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const doc = structuredClone(base);
  const parts = path.split('.');
  let current = doc;
  for (const part of parts.slice(0, -1)) current = (current[part] ??= {}) as Record<string, unknown>;
  current[parts.at(-1)!] = value;
  return doc;
}

/** A value for `path` that the schema accepts and that differs from the default (and from `except`). */
function sample(type: ConfigType, path: string): { doc: Record<string, unknown>; config: unknown } {
  const defaults = type.parse(type.base);
  const current = valueAt(defaults, path);
  const support = type.table[path]!;
  const except = support.status === 'not implemented' ? (support.except ?? []) : [];
  const numeric = typeof current === 'number' ? [current + 1, current - 1] : [];
  const candidates = [
    ...(typeof current === 'boolean' ? [!current] : []),
    ...numeric,
    '7s', 'systemd', 'NodeCIDR', 'BridgeInterface', 'vxlan', 'Webhook', 'x', 'aa:bb', '10.244.10.0', 26, 3, ['x'], { Foo: true }, { cpu: '1' }, 'promiscuous-bridge', 'hairpin-veth', ['none'], ['10.1.0.0/16'],
  ];
  const base = { ...type.base, ...(type.context?.[path] ?? {}) };
  for (const candidate of candidates) {
    let config: unknown;
    try {
      config = type.parse(withField(base, path, candidate));
    } catch {
      continue; // not a valid value for this field: try the next candidate
    }
    const value = valueAt(config, path);
    if (JSON.stringify(value) !== JSON.stringify(current) && !except.some((allowed) => JSON.stringify(allowed) === JSON.stringify(value))) {
      return { doc: withField(base, path, candidate), config };
    }
  }
  throw new Error(`no sample value found for ${type.name} field ${path}: add a candidate`);
}

describe.each(types)('$name support table', (type) => {
  it('lists exactly the fields of the schema', () => {
    expect(Object.keys(type.table).sort()).toEqual(schemaFieldPaths(type.schema).sort());
  });

  it('each honoured field names a test that exists', () => {
    for (const [path, support] of Object.entries(type.table)) {
      if (support.status !== 'honoured') continue;
      const file = join(repo, support.test);
      expect(existsSync(file), `${path}: ${support.test} is missing`).toBe(true);
      expect(readFileSync(file, 'utf8'), `${path}: "${support.name}" not found in ${support.test}`).toContain(support.name);
    }
  });

  it('each not-implemented field set to a non-default value is named in the one start-up warning', () => {
    const defaults = type.parse(type.base);
    expect(type.unimplemented(defaults as never)).toEqual([]);
    for (const [path, support] of Object.entries(type.table)) {
      if (support.status !== 'not implemented') continue;
      const { config } = sample(type, path);
      const fields = type.unimplemented(config as never);
      expect(fields, `${path} not warned about`).toContain(path);
      const captured = capturingLog(type.name);
      warnUnimplemented(captured.log, type.name, fields);
      const warnings = captured.lines().filter((line) => line.level === 40);
      expect(warnings).toHaveLength(1);
      expect(String(warnings[0]!.msg)).toContain(path);
    }
  });

  it('README.md holds the rendered table', () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const begin = `<!-- support-table:${type.name} -->\n`;
    expect(readme, 'run `npm run build && node scripts/render-support-tables.mjs`').toContain(`${begin}${renderSupportTable(type.table)}\n<!-- /support-table:${type.name} -->`);
  });
});

describe('support tables', () => {
  it('an honoured field set by the user is not warned about; an "except" value is not either', () => {
    const config = parseKubeProxyConfig({ apiVersion: kubeProxyApiVersion, kind: 'KubeProxyConfiguration', detectLocalMode: 'ClusterCIDR', iptables: { masqueradeAll: true } }, 'f').config;
    expect(kubeProxyUnimplemented(config)).toEqual([]);
  });
});
