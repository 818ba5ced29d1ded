import { describe, expect, it } from 'vitest';
import { isLoopback, parseListen, servingMode } from '../../controlplane/security.js';
import { ConfigError } from '../../lib/errors.js';
import { kubeconfigText } from '../../controlplane/kubeconfig.js';
import { parse } from 'yaml';

describe('listen address and serving mode', () => {
  it.each<[string, string, number, boolean]>([
    ['127.0.0.1:6443', '127.0.0.1', 6443, false],
    ['localhost:0', '127.0.0.1', 0, false],
    ['127.0.0.53:1', '127.0.0.53', 1, false],
    ['[::1]:6443', '::1', 6443, false],
    ['0.0.0.0:6443', '0.0.0.0', 6443, true],
    ['10.0.0.1:443', '10.0.0.1', 443, true],
    ['[::]:6443', '::', 6443, true],
  ])('%s', (text, host, port, tls) => {
    expect(parseListen(text)).toEqual({ host, port });
    expect(servingMode(host)).toEqual({ tls });
    expect(isLoopback(host)).toBe(!tls);
  });

  it.each(['6443', 'host:6443', '127.0.0.1:70000', '127.0.0.1:', ':6443', '1.2.3.4:x'])('rejects %s', (text) => {
    expect(() => parseListen(text)).toThrow(ConfigError);
  });
});

describe('admin kubeconfig', () => {
  it('plain http: no credentials, insecure-skip-tls-verify for client-node', () => {
    const config = parse(kubeconfigText({ server: 'http://127.0.0.1:6443' })) as { clusters: { cluster: Record<string, unknown> }[]; users: { user: object }[]; 'current-context': string };
    expect(config.clusters[0]?.cluster).toEqual({ server: 'http://127.0.0.1:6443', 'insecure-skip-tls-verify': true });
    expect(config.users[0]?.user).toEqual({});
    expect(config['current-context']).toBe('knode');
  });
  it('https: CA data and token', () => {
    const config = parse(kubeconfigText({ server: 'https://127.0.0.1:6443', token: 'abc', caPem: 'PEM' })) as { clusters: { cluster: Record<string, unknown> }[]; users: { user: object }[] };
    expect(config.clusters[0]?.cluster).toEqual({ server: 'https://127.0.0.1:6443', 'certificate-authority-data': Buffer.from('PEM').toString('base64') });
    expect(config.users[0]?.user).toEqual({ token: 'abc' });
  });
});
