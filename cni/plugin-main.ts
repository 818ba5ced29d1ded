/**
 * The CNI plugin executable's entry (bin/knode dispatches here when CNI_COMMAND is set, so the
 * plugin does not load the whole CLI): reads the config from stdin, runs the verb, writes the
 * result or the CNI error JSON to stdout and exits 0 or 1 (SPEC.md, "Plugin output").
 */
import { maxNetconfBytes } from '../lib/cni/limits.js';
import { IpRunner } from '../lib/ip/runner.js';
import { handleCniRequest, pluginContext } from './plugin.js';

/** Reads stdin up to one byte past the limit (parsePluginConf then refuses it with code 4). */
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > maxNetconfBytes) break;
  }
  return Buffer.concat(chunks).subarray(0, maxNetconfBytes + 1).toString('utf8');
}

const stdin = await readStdin();
const ip = new IpRunner();
const response = await handleCniRequest({ env: process.env, stdin }, pluginContext(ip));
ip.close();
process.stdout.write(response.stdout);
process.exitCode = response.exitCode;
