/**
 * DNS test support: a scripted upstream DNS server on loopback (counts the questions it gets,
 * answers NXDOMAIN with an SOA, truncates over UDP what does not fit 512 bytes so that the
 * client must retry over TCP), `dig` as a client, and dnsmasq as a real upstream inside a test
 * netns. Nothing here talks to a real resolver.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Answer, Packet } from 'dns-packet';
import { run } from '../../lib/exec.js';

export interface TestUpstream {
  port: number;
  /** Questions received, "name TYPE proto". */
  queries: string[];
  stop(): Promise<void>;
}

function reply(request: Packet, records: Map<string, Answer[]>, soaTtl: number): Packet {
  const question = request.questions![0]!;
  const name = question.name.toLowerCase();
  const found = records.get(name);
  const answers = (found ?? []).filter((record) => record.type === question.type).map((record) => ({ ...record, name: question.name }));
  const soa: Answer = { name: 'test', type: 'SOA', ttl: soaTtl, data: { mname: 'ns.test', rname: 'hostmaster.test', serial: 1, refresh: 60, retry: 60, expire: 60, minimum: soaTtl } };
  const rcode = found ? 0 : 3;
  return { type: 'response', id: request.id, flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.AUTHORITATIVE_ANSWER | rcode, questions: request.questions, answers, authorities: answers.length ? [] : [soa] };
}

/** An upstream answering `records` (lower-case names) on 127.0.0.1, UDP and TCP on one port. */
export async function startTestUpstream(records: Map<string, Answer[]>, soaTtl = 30): Promise<TestUpstream> {
  const queries: string[] = [];
  const udp: UdpSocket = createSocket('udp4');
  udp.on('message', (message, remote) => {
    let request: Packet;
    try {
      request = dnsPacket.decode(message);
    } catch {
      return;
    }
    queries.push(`${request.questions?.[0]?.name} ${request.questions?.[0]?.type} udp`);
    let bytes = dnsPacket.encode(reply(request, records, soaTtl));
    if (bytes.length > 512) bytes = dnsPacket.encode({ ...reply(request, records, soaTtl), answers: [], authorities: [], flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.TRUNCATED_RESPONSE });
    udp.send(bytes, remote.port, remote.address);
  });
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  const port = udp.address().port;
  const tcp: Server = createServer((socket) => {
    let buffered: Buffer = Buffer.alloc(0);
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const request = dnsPacket.decode(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
        buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
        queries.push(`${request.questions?.[0]?.name} ${request.questions?.[0]?.type} tcp`);
        const bytes = dnsPacket.encode(reply(request, records, soaTtl));
        socket.write(Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 255]), bytes]));
      }
    });
  });
  await new Promise<void>((resolve) => tcp.listen(port, '127.0.0.1', resolve));
  return {
    port,
    queries,
    stop: async () => {
      udp.close();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

/** `dig @server -p port ARGS` (bounded: 2 s timeout, 1 try); stdout. */
export async function dig(server: string, port: number, args: string[], prefix: string[] = []): Promise<string> {
  const result = await run([...prefix, 'dig', `@${server}`, '-p', String(port), '+time=2', '+tries=1', ...args], { allowFailure: true, timeoutMs: 10_000 });
  return result.stdout;
}

/** The status and flags of a full dig answer. */
export function digHeader(output: string): { status: string; flags: string[] } {
  const status = /status: (\w+)/.exec(output)?.[1] ?? 'none';
  const flags = (/;; flags: ([a-z ]+);/.exec(output)?.[1] ?? '').trim().split(/\s+/);
  return { status, flags };
}

/** The short answers of `dig +short` (one per line). */
export const lines = (text: string) => text.trim().split('\n').filter(Boolean);

export const glibcImage = 'knode.local/glibc-getent:1';

/**
 * An image whose resolver is glibc's: busybox for the shell, plus the host's dynamically linked
 * `getent` and the libraries `ldd` lists (glibc ≥ 2.34 has the files and dns NSS modules built
 * in), and an nsswitch.conf "hosts: files dns". Built with `docker import`, rebuilt each call
 * only when missing.
 */
export async function ensureGlibcImage(): Promise<string> {
  const present = await run(['docker', 'image', 'inspect', glibcImage], { allowFailure: true, timeoutMs: 30_000 });
  if (present.code === 0) return glibcImage;
  const { mkdtemp, mkdir, copyFile, symlink, writeFile, rm, chmod } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join, dirname } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'knode-glibc-image-'));
  try {
    const root = join(dir, 'rootfs');
    for (const sub of ['bin', 'usr/bin', 'etc', 'tmp', 'proc', 'sys', 'dev']) await mkdir(join(root, sub), { recursive: true });
    await chmod(join(root, 'tmp'), 0o1777);
    await copyFile('/bin/busybox', join(root, 'bin/busybox'));
    for (const applet of ['sh', 'sleep', 'nslookup', 'cat', 'date', 'nc', 'echo', 'tail']) await symlink('busybox', join(root, 'bin', applet));
    await copyFile('/usr/bin/getent', join(root, 'usr/bin/getent'));
    const ldd = (await run(['ldd', '/usr/bin/getent'])).stdout;
    for (const lib of ldd.matchAll(/(\/\S+\.so[.\d]*)/g)) {
      await mkdir(join(root, dirname(lib[1]!)), { recursive: true });
      await copyFile(lib[1]!, join(root, lib[1]!));
    }
    await writeFile(join(root, 'etc/nsswitch.conf'), 'hosts: files dns\n');
    await writeFile(join(root, 'etc/hosts'), '127.0.0.1 localhost\n');
    await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
    await run(['tar', '-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', join(dir, 'rootfs.tar'), '.']);
    await run(['docker', 'import', '--change', 'CMD ["/bin/sh"]', '--change', 'ENV PATH=/bin:/usr/bin', join(dir, 'rootfs.tar'), glibcImage], { timeoutMs: 120_000 });
    return glibcImage;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
