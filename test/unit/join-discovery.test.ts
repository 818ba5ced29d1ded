import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { selfSignedServing, splitPem } from '../../agent/certificates/pki.js';
import { joinArguments } from '../../bin/join.js';
import { discoverCluster } from '../../bin/join-discovery.js';
import { caCertHash, signDetached, type BootstrapToken } from '../../lib/bootstrap-token.js';
import { ConfigError } from '../../lib/errors.js';
import { capturingLog } from '../helpers/log-capture.js';

const token: BootstrapToken = { id: 'abcdef', secret: '0123456789abcdef' };
const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

/** An API server's cluster-info endpoint; records every request's headers. */
async function clusterInfoServer(sign: (kubeconfig: string) => Record<string, string>): Promise<{ url: string; caPem: string; seen: Record<string, unknown>[] }> {
  const serving = await selfSignedServing('localhost', ['127.0.0.1', 'localhost']);
  const caPem = splitPem(serving.certPem)[1]!;
  const kubeconfig = stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: '', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }] });
  const seen: Record<string, unknown>[] = [];
  const server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    seen.push({ url: req.url, ...req.headers });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cluster-info', namespace: 'kube-public' }, data: { kubeconfig, ...sign(kubeconfig) } }));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, caPem, seen };
}

describe('join discovery (kubeadm token discovery)', () => {
  it('verifies the JWS and the CA pin, then re-fetches over verified TLS; never sends the token', async () => {
    const api = await clusterInfoServer((kubeconfig) => ({ 'jws-kubeconfig-abcdef': signDetached(kubeconfig, token) }));
    const { log } = capturingLog();
    const result = await discoverCluster({ server: api.url, token, caHashes: [caCertHash(api.caPem)], log });
    expect(result.caPem).toBe(api.caPem);
    expect(api.seen).toHaveLength(2);
    for (const request of api.seen) {
      expect(request.authorization).toBeUndefined();
      expect(JSON.stringify(request)).not.toContain(token.secret);
    }
    expect(api.seen[0]!.url).toBe('/api/v1/namespaces/kube-public/configmaps/cluster-info');
  });

  it('stops on a wrong CA hash, an unknown token id or a bad signature, having sent nothing but anonymous GETs', async () => {
    const { log } = capturingLog();
    const api = await clusterInfoServer((kubeconfig) => ({ 'jws-kubeconfig-abcdef': signDetached(kubeconfig, token) }));
    await expect(discoverCluster({ server: api.url, token, caHashes: [`sha256:${'0'.repeat(64)}`], log })).rejects.toThrow(/none of the pinned ones .* matches; the join stopped before sending the token/);
    await expect(discoverCluster({ server: api.url, token: { id: 'zzzzzz', secret: token.secret }, caHashes: [caCertHash(api.caPem)], log })).rejects.toThrow(/token id "zzzzzz" is invalid for this cluster or it has expired/);
    await expect(discoverCluster({ server: api.url, token: { id: 'abcdef', secret: 'ffffffffffffffff' }, caHashes: [caCertHash(api.caPem)], log })).rejects.toThrow(/failed to verify the JWS signature/);
    for (const request of api.seen) expect(request.authorization).toBeUndefined();
  });
});

describe('knode join flags', () => {
  const ok = { server: 'https://10.0.0.1:6443', token: 'abcdef.0123456789abcdef', discoveryTokenCaCertHash: `sha256:${'A'.repeat(64)}` };
  it('accepts a well-formed join line', () => {
    expect(joinArguments(ok)).toEqual({ server: 'https://10.0.0.1:6443', token: ok.token, caHashes: [`sha256:${'a'.repeat(64)}`] });
  });
  it.each([
    [{ ...ok, token: 'ABCDEF.0123456789abcdef' }, /--token: malformed bootstrap token/],
    [{ ...ok, token: 'garbage' }, /--token: malformed bootstrap token/],
    [{ ...ok, server: 'http://10.0.0.1:6443' }, /--server .*expected https/],
    [{ ...ok, server: 'not a url' }, /--server .*expected https/],
    [{ ...ok, discoveryTokenCaCertHash: 'sha256:1234' }, /--discovery-token-ca-cert-hash "sha256:1234"/],
    [{ ...ok, discoveryTokenCaCertHash: undefined }, /give --discovery-token-ca-cert-hash/],
    [{ ...ok, caCert: '/nonexistent/ca.crt' }, /--ca-cert .* cannot read it/],
  ])('rejects bad input with one clear error: %o', (options, message) => {
    let error: unknown;
    try {
      joinArguments(options);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
  });
});
