#!/usr/bin/env node
// Rewrites the config support tables in README.md from lib/config/support-*.ts (built into dist/).
// Run `npm run build` first. test/unit/config-support.test.ts fails when README.md and the tables differ.
import { readFileSync, writeFileSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const { renderSupportTable } = await import(new URL('dist/lib/config/support.js', root));
const tables = {
  kubelet: (await import(new URL('dist/lib/config/support-kubelet.js', root))).kubeletSupport,
  'kube-proxy': (await import(new URL('dist/lib/config/support-kubeproxy.js', root))).kubeProxySupport,
  'net-conf': (await import(new URL('dist/lib/config/support-netconf.js', root))).netConfSupport,
};
const file = new URL('README.md', root);
let text = readFileSync(file, 'utf8');
for (const [name, table] of Object.entries(tables)) {
  const begin = `<!-- support-table:${name} -->`;
  const end = `<!-- /support-table:${name} -->`;
  const start = text.indexOf(begin);
  const stop = text.indexOf(end);
  if (start < 0 || stop < start) throw new Error(`README.md has no ${begin} … ${end} block`);
  text = `${text.slice(0, start + begin.length)}\n${renderSupportTable(table)}\n${text.slice(stop)}`;
}
writeFileSync(file, text);
