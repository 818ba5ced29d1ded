import { describe, expect, it } from 'vitest';
import { requestAttributes } from '../../agent/server/auth.js';
import { parseStreamPath } from '../../agent/server/exec-stream.js';
import { Channel, errorStatus, exitStatus, frame, negotiateProtocol, parseClientMessage, parseStreamOptions, protocolV4, protocolV5 } from '../../agent/server/remotecommand.js';
import { isPlainTextAnswer, loadKubeletClientConfig, switchingProtocolsHead, upgradeHeaders } from '../../controlplane/kubelet-client.js';
import { kubeletStreamPath } from '../../controlplane/pod-exec.js';
import type { IncomingMessage } from 'node:http';

describe('remotecommand sub-protocol negotiation', () => {
  it.each([
    [['v5.channel.k8s.io'], protocolV5],
    [['v4.channel.k8s.io', 'v5.channel.k8s.io'], protocolV5],
    [[' v4.channel.k8s.io', 'channel.k8s.io'], protocolV4],
    [['channel.k8s.io', 'base64.channel.k8s.io'], undefined],
    [[], undefined],
  ])('%j → %s', (offered, chosen) => {
    expect(negotiateProtocol(offered)).toBe(chosen);
  });
});

describe('channel framing', () => {
  it('prefixes the channel byte', () => {
    expect([...frame(Channel.stdout, 'hi')]).toEqual([1, 104, 105]);
    expect([...frame(Channel.error, Buffer.from([7]))]).toEqual([3, 7]);
  });

  it.each([
    ['stdin data', [0, 97, 98], protocolV4, { kind: 'stdin', data: Buffer.from('ab') }],
    ['empty stdin', [0], protocolV5, { kind: 'stdin', data: Buffer.alloc(0) }],
    ['resize', [4, ...Buffer.from('{"Width":80,"Height":24}')], protocolV5, { kind: 'resize', width: 80, height: 24 }],
    ['v5 close of stdin', [255, 0], protocolV5, { kind: 'close', channel: 0 }],
  ] as const)('parses %s', (_name, bytes, protocol, expected) => {
    expect(parseClientMessage(Buffer.from(bytes), protocol)).toEqual(expected);
  });

  it.each([
    ['empty message', [], protocolV5],
    ['close under v4', [255, 0], protocolV4],
    ['malformed close', [255], protocolV5],
    ['malformed resize', [4, ...Buffer.from('{"Width":"x"}')], protocolV5],
    ['resize not JSON', [4, 1, 2], protocolV5],
    ['output channel from the client', [1, 65], protocolV5],
  ] as const)('ignores %s', (_name, bytes, protocol) => {
    expect(parseClientMessage(Buffer.from(bytes), protocol).kind).toBe('ignored');
  });
});

describe('error-channel Status', () => {
  it('is Success on exit 0', () => {
    expect(exitStatus(0, ['true'])).toEqual({ metadata: {}, status: 'Success' });
  });

  it('carries a non-zero exit code as kubectl reads it (v4 errorDecoder)', () => {
    expect(exitStatus(3, ['sh', '-c', 'exit 3'])).toEqual({
      metadata: {},
      status: 'Failure',
      message: 'command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '3' }] },
    });
  });

  it('reports runtime failures as InternalError', () => {
    expect(errorStatus('boom')).toEqual({ metadata: {}, status: 'Failure', message: 'boom', reason: 'InternalError', code: 500 });
  });
});

describe('stream options (kubelet NewOptions)', () => {
  const q = (text: string) => new URLSearchParams(text);
  it('reads commands in order and the stream flags', () => {
    expect(parseStreamOptions(q('command=sh&command=-c&command=echo+a&stdin=1&stdout=true&stderr=0&tty=false'), 'exec')).toEqual({ command: ['sh', '-c', 'echo a'], stdin: true, stdout: true, stderr: false, tty: false });
  });
  it('drops stderr with a tty', () => {
    expect(parseStreamOptions(q('command=sh&stdout=1&stderr=1&tty=1'), 'exec')).toMatchObject({ stderr: false, tty: true });
  });
  it.each([
    ['command=sh', 'exec', 'you must specify at least 1 of stdin, stdout, stderr'],
    ['stdout=1', 'exec', 'you must specify a command (command=...)'],
  ] as const)('refuses %s', (query, kind, message) => {
    expect(parseStreamOptions(q(query), kind)).toBe(message);
  });
  it('attach needs no command and ignores one', () => {
    expect(parseStreamOptions(q('stdout=1&command=x'), 'attach')).toMatchObject({ command: [], stdout: true });
  });
});

describe('stream paths', () => {
  it('are authorized as the kubelet does: nodes/proxy, create for POST and get for GET', () => {
    expect(requestAttributes('POST', '/exec/ns/p/c', 'n1')).toEqual({ verb: 'create', resource: 'nodes', subresource: 'proxy', name: 'n1' });
    expect(requestAttributes('GET', '/attach/ns/p/c', 'n1')).toEqual({ verb: 'get', resource: 'nodes', subresource: 'proxy', name: 'n1' });
  });

  it.each([
    [['exec', 'ns', 'p', 'c'], { kind: 'exec', namespace: 'ns', pod: 'p', container: 'c' }],
    [['attach', 'ns', 'p', 'uid', 'c'], { kind: 'attach', namespace: 'ns', pod: 'p', container: 'c' }],
    [['exec', 'ns', 'p'], undefined],
    [['run', 'ns', 'p', 'c'], undefined],
  ])('%j', (parts, expected) => {
    expect(parseStreamPath(parts)).toEqual(expected);
  });

  it('the stub moves the container into the path and keeps the rest of the query', () => {
    const pod = { metadata: { name: 'web', namespace: 'team a' } };
    expect(kubeletStreamPath(pod, 'exec', 'c1', new URLSearchParams('command=ls&command=-l&container=c1&stdout=true'))).toBe('/exec/team%20a/web/c1?command=ls&command=-l&stdout=true');
  });
});

describe('kubelet client helpers', () => {
  it('forwards the upgrade headers, never the client\'s credentials', () => {
    const headers = upgradeHeaders({ upgrade: 'websocket', 'sec-websocket-key': 'k', 'sec-websocket-version': '13', 'sec-websocket-protocol': 'v5.channel.k8s.io', authorization: 'Bearer secret', cookie: 'c', host: 'x' });
    expect(headers).toEqual({ connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'k', 'sec-websocket-version': '13', 'sec-websocket-protocol': 'v5.channel.k8s.io' });
  });

  it('relays the 101 head verbatim', () => {
    const response = { statusMessage: 'Switching Protocols', rawHeaders: ['Upgrade', 'websocket', 'Sec-WebSocket-Protocol', 'v5.channel.k8s.io'] } as unknown as IncomingMessage;
    expect(switchingProtocolsHead(response)).toBe('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n');
  });

  it('needs --kubelet-client-certificate and --kubelet-client-key together, and readable files', () => {
    expect(() => loadKubeletClientConfig({ certificate: '/x.crt' })).toThrow('--kubelet-client-certificate and --kubelet-client-key must be given together');
    expect(() => loadKubeletClientConfig({ certificateAuthority: '/no/such/ca.crt' })).toThrow(/--kubelet-certificate-authority "\/no\/such\/ca.crt": ENOENT/);
    expect(loadKubeletClientConfig({})).toEqual({});
  });

  it('recognises a plain-HTTP answer to a TLS handshake', () => {
    expect(isPlainTextAnswer(Object.assign(new Error('x'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' }))).toBe(true);
    expect(isPlainTextAnswer(new Error('connect ECONNREFUSED 127.0.0.1:1'))).toBe(false);
  });
});
