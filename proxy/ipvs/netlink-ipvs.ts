/**
 * IPVS through generic netlink (family "IPVS", as ipvsadm/libipvs and kube-proxy's
 * moby/ipvs client), on a RawNetlinkSocket of the `netlink` package. Attribute numbers and
 * commands are those of include/uapi/linux/ip_vs.h. Only what the proxy needs: list, add,
 * update and delete virtual services and their real servers (masquerading forwarding).
 */
import { constants } from 'node:os';
import { createGenericNetlink, RawNetlinkSocket } from 'netlink';
import ipaddr from 'ipaddr.js';
import { NLMSG_DONE, NLMSG_ERROR } from '../../lib/netfilter/nftables/wire.js';

const IPVS_GENL_VERSION = 1;
const cmd = { newService: 1, setService: 2, delService: 3, getService: 4, newDest: 5, setDest: 6, delDest: 7, getDest: 8, flush: 17 } as const;
const cmdAttr = { service: 1, dest: 2 } as const;
const svcAttr = { af: 1, protocol: 2, addr: 3, port: 4, fwmark: 5, schedName: 6, flags: 7, timeout: 8, netmask: 9 } as const;
const destAttr = { addr: 1, port: 2, fwdMethod: 3, weight: 4, uThresh: 5, lThresh: 6, activeConns: 7, inactConns: 8, persistConns: 9, addrFamily: 11 } as const;
const AF_INET = 2;
const IP_VS_SVC_F_PERSISTENT = 0x1;
const IP_VS_CONN_F_MASQ = 0;
const NLM_F_DUMP = 0x300;
const errnoNames = new Map(Object.entries(constants.errno).map(([name, number]) => [number, name]));
const protocolNumbers = { TCP: 6, UDP: 17, SCTP: 132 } as const;

type IpvsProtocol = keyof typeof protocolNumbers;

export interface VirtualServer {
  address: string;
  port: number;
  protocol: IpvsProtocol;
  scheduler: string;
  /** Seconds of persistence (session affinity ClientIP); 0 = none. */
  persistence: number;
}

export interface RealServer {
  address: string;
  port: number;
  weight: number;
  activeConnections?: number;
  inactiveConnections?: number;
}

/** One netlink attribute: 4-byte header + payload padded to 4 bytes. */
export function nlattr(type: number, payload: Buffer): Buffer {
  const length = 4 + payload.length;
  const out = Buffer.alloc((length + 3) & ~3);
  out.writeUInt16LE(length, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

const u16 = (value: number) => Buffer.from([value & 0xff, value >> 8]);
const u32 = (value: number) => {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32LE(value >>> 0);
  return buffer;
};
const be16 = (value: number) => Buffer.from([value >> 8, value & 0xff]);
/** Writes an address into 16 bytes at `offset` (IPv4 in the first 4, as union nf_inet_addr). */
function writeAddr(ip: string, out: Buffer, offset: number): void {
  out.fill(0, offset, offset + 16);
  // canonical dotted quads directly (a resync encodes one per service); anything else through ipaddr.js
  let octet = 0, digits = 0, index = 0, canonical = ip.length <= 15;
  for (let i = 0; i < ip.length && canonical; i++) {
    const c = ip.charCodeAt(i);
    if (c >= 48 && c <= 57 && digits < 3 && !(digits === 1 && octet === 0)) {
      octet = octet * 10 + c - 48;
      digits++;
    } else if (c === 46 && digits > 0 && index < 3 && octet <= 255) {
      out[offset + index++] = octet;
      octet = 0;
      digits = 0;
    } else canonical = false;
  }
  if (canonical && index === 3 && digits > 0 && octet <= 255) {
    out[offset + 3] = octet;
    return;
  }
  out.fill(0, offset, offset + 16);
  Buffer.from(ipaddr.parse(ip).toByteArray()).copy(out, offset); // throws for what is no address
}
const addr16 = (ip: string) => {
  const buffer = Buffer.alloc(16);
  writeAddr(ip, buffer, 0);
  return buffer;
};

/** Parses a run of attributes into type → payload. */
export function parseAttrs(data: Buffer): Map<number, Buffer> {
  const attrs = new Map<number, Buffer>();
  let offset = 0;
  while (offset + 4 <= data.length) {
    const length = data.readUInt16LE(offset);
    const type = data.readUInt16LE(offset + 2) & 0x3fff;
    if (length < 4) break;
    attrs.set(type, data.subarray(offset + 4, offset + length));
    offset += (length + 3) & ~3;
  }
  return attrs;
}

/** The payload [offset, end) of the first attribute `type` in data[start, end), or undefined. */
function findAttr(data: Buffer, start: number, end: number, type: number): [number, number] | undefined {
  for (let offset = start; offset + 4 <= end; ) {
    const length = data.readUInt16LE(offset);
    if (length < 4 || offset + length > end) return undefined;
    if ((data.readUInt16LE(offset + 2) & 0x3fff) === type) return [offset + 4, offset + length];
    offset += (length + 3) & ~3;
  }
  return undefined;
}

const ipv4At = (data: Buffer, at: number) => `${data[at]}.${data[at + 1]}.${data[at + 2]}.${data[at + 3]}`;

/** The service nest that identifies a virtual service (AF, protocol, address, port), in one buffer. */
function serviceKey(vs: Pick<VirtualServer, 'address' | 'port' | 'protocol'>): Buffer {
  const out = Buffer.alloc(48);
  out.writeUInt16LE(48, 0);
  out.writeUInt16LE(cmdAttr.service, 2);
  const attr = (offset: number, type: number, length: number) => {
    out.writeUInt16LE(4 + length, offset);
    out.writeUInt16LE(type, offset + 2);
    return offset + 4;
  };
  out.writeUInt16LE(AF_INET, attr(4, svcAttr.af, 2));
  out.writeUInt16LE(protocolNumbers[vs.protocol], attr(12, svcAttr.protocol, 2));
  writeAddr(vs.address, out, attr(20, svcAttr.addr, 16));
  out.writeUInt16BE(vs.port, attr(40, svcAttr.port, 2));
  return out;
}

export function encodeService(vs: VirtualServer): Buffer {
  const flags = Buffer.alloc(8);
  flags.writeUInt32LE(vs.persistence > 0 ? IP_VS_SVC_F_PERSISTENT : 0, 0);
  flags.writeUInt32LE(0xffffffff, 4);
  const inner = [
    serviceKey(vs).subarray(4),
    nlattr(svcAttr.schedName, Buffer.from(`${vs.scheduler}\0`)),
    nlattr(svcAttr.flags, flags),
    nlattr(svcAttr.timeout, u32(vs.persistence)),
    nlattr(svcAttr.netmask, u32(0xffffffff)),
  ];
  return nlattr(cmdAttr.service, Buffer.concat(inner));
}

export function encodeDest(rs: RealServer): Buffer {
  const inner = [
    nlattr(destAttr.addr, addr16(rs.address)),
    nlattr(destAttr.port, be16(rs.port)),
    nlattr(destAttr.fwdMethod, u32(IP_VS_CONN_F_MASQ)),
    nlattr(destAttr.weight, u32(rs.weight)),
    nlattr(destAttr.uThresh, u32(0)),
    nlattr(destAttr.lThresh, u32(0)),
    nlattr(destAttr.addrFamily, u16(AF_INET)),
  ];
  return nlattr(cmdAttr.dest, Buffer.concat(inner));
}

const protocolNames = new Map<number, IpvsProtocol>(Object.entries(protocolNumbers).map(([name, number]) => [number, name as IpvsProtocol]));

/**
 * A GET_SERVICE reply (attributes after the genl header, data[start, end)) read in place;
 * undefined for what the proxy does not make (IPv6, fwmark, other protocols).
 */
function decodeServiceAt(data: Buffer, start: number, end: number): VirtualServer | undefined {
  const nest = findAttr(data, start, end, cmdAttr.service);
  if (!nest) return undefined;
  let af = -1, protocolNumber = 0, address = '', port = 0, fwmark = false, scheduler = '', flags = 0, timeout = 0;
  for (let offset = nest[0]; offset + 4 <= nest[1]; ) {
    const length = data.readUInt16LE(offset);
    if (length < 4 || offset + length > nest[1]) break;
    const type = data.readUInt16LE(offset + 2) & 0x3fff, at = offset + 4, size = length - 4;
    if (type === svcAttr.af && size >= 2) af = data.readUInt16LE(at);
    else if (type === svcAttr.protocol && size >= 2) protocolNumber = data.readUInt16LE(at);
    else if (type === svcAttr.addr) address = size >= 4 ? ipv4At(data, at) : '';
    else if (type === svcAttr.port && size >= 2) port = data.readUInt16BE(at);
    else if (type === svcAttr.fwmark) fwmark = true;
    else if (type === svcAttr.schedName) {
      let nul = at;
      while (nul < at + size && data[nul] !== 0) nul++;
      scheduler = data.toString('latin1', at, nul);
    }
    else if (type === svcAttr.flags && size >= 4) flags = data.readUInt32LE(at);
    else if (type === svcAttr.timeout && size >= 4) timeout = data.readUInt32LE(at);
    offset += (length + 3) & ~3;
  }
  if (af !== AF_INET || fwmark && !address) return undefined;
  const protocol = protocolNames.get(protocolNumber);
  if (!protocol) return undefined;
  return { address, port, protocol, scheduler, persistence: flags & IP_VS_SVC_F_PERSISTENT ? timeout : 0 };
}
export const decodeService = (data: Buffer) => decodeServiceAt(data, 0, data.length);

/** A GET_DEST reply (attributes after the genl header, data[start, end)) read in place. */
function decodeDestAt(data: Buffer, start: number, end: number): RealServer {
  const rs: RealServer = { address: '', port: 0, weight: 0, activeConnections: undefined, inactiveConnections: undefined };
  const nest = findAttr(data, start, end, cmdAttr.dest);
  if (!nest) return rs;
  for (let offset = nest[0]; offset + 4 <= nest[1]; ) {
    const length = data.readUInt16LE(offset);
    if (length < 4 || offset + length > nest[1]) break;
    const type = data.readUInt16LE(offset + 2) & 0x3fff, at = offset + 4, size = length - 4;
    if (type === destAttr.addr && size >= 4) rs.address = ipv4At(data, at);
    else if (type === destAttr.port && size >= 2) rs.port = data.readUInt16BE(at);
    else if (type === destAttr.weight && size >= 4) rs.weight = data.readUInt32LE(at);
    else if (type === destAttr.activeConns && size >= 4) rs.activeConnections = data.readUInt32LE(at);
    else if (type === destAttr.inactConns && size >= 4) rs.inactiveConnections = data.readUInt32LE(at);
    offset += (length + 3) & ~3;
  }
  return rs;
}
export const decodeDest = (data: Buffer) => decodeDestAt(data, 0, data.length);

/** The kernel IPVS table as the proxy uses it. */
export interface Ipvs {
  listServices(): Promise<VirtualServer[]>;
  listDestinations(vs: VirtualServer): Promise<RealServer[]>;
  addService(vs: VirtualServer): Promise<void>;
  updateService(vs: VirtualServer): Promise<void>;
  deleteService(vs: VirtualServer): Promise<void>;
  addDestination(vs: VirtualServer, rs: RealServer): Promise<void>;
  updateDestination(vs: VirtualServer, rs: RealServer): Promise<void>;
  deleteDestination(vs: VirtualServer, rs: RealServer): Promise<void>;
  close(): void;
}

/**
 * Every recvmsg offers this many bytes, without the `netlink` package's 1-byte peek: the kernel
 * sizes a dump's datagrams by the largest recvmsg length it has seen (netlink_recvmsg's
 * max_recvmsg_len, capped just under 32 KiB); with peeking it stays at ~4 KiB, and the service
 * dump (ip_vs_genl_dump_services) walks the service table from the start for every datagram.
 * As for nf_tables (lib/netfilter/nftables/socket.ts). Replies to IPVS requests are small: only
 * an error echoing a request could be larger, and its header and errno come first.
 */
const receiveBytes = 32 * 1024;
const NETLINK_GENERIC = 16;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const GENL_HDRLEN = 4;

/** Decodes one reply's attributes, data[start, end). */
type Decode<T> = (data: Buffer, start: number, end: number) => T | undefined;

interface Exchange {
  seq: number;
  onReply: (data: Buffer, start: number, end: number) => void;
  resolve: () => void;
  reject: (error: Error) => void;
}

const errnoError = (what: string, errno: number) => new Error(`${what}: ${errnoNames.get(errno) ?? `errno ${errno}`}`);

/**
 * One AF_NETLINK generic socket with one exchange at a time (the kernel runs one dump per
 * socket). The package's GenericNetlinkSocket costs a getsockname, a timer and a promise chain
 * per request and copies every attribute into a Map; a no-change resync is 1 + services round
 * trips (docs/architecture.md, the proxy's data flow), and that was most of its cost in a
 * profile. Here a reply is decoded where it is read, and one interval timer watches for silence.
 */
class Channel {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private current?: Exchange;
  /** Requests queued or running on this socket (it is referenced while there are any). */
  private waiting = 0;
  private referenced = false;
  private progress = 0;
  private seenProgress = 0;
  private silentMs = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly socket: RawNetlinkSocket;

  constructor(private readonly family: number, private readonly timeoutMs: number) {
    this.socket = new RawNetlinkSocket(NETLINK_GENERIC, { recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 1024 * 1024, messagePeeking: false, msgBufferSize: receiveBytes });
    this.socket.unref();
    this.socket.on('message', (data: Buffer) => this.receive(data));
    this.socket.on('truncatedMessage', (data: Buffer) => this.receiveTruncated(data));
    this.socket.on('error', (error: Error) => this.current?.reject(new Error('IPVS netlink socket error', { cause: error })));
    const tick = 1000;
    this.timer = setInterval(() => {
      if (!this.current || this.progress !== this.seenProgress) {
        this.seenProgress = this.progress;
        this.silentMs = 0;
        // Unreferenced lazily: ref/unref per request are two native calls each (the profile showed them).
        if (this.waiting === 0 && this.referenced) {
          this.socket.unref();
          this.referenced = false;
        }
      } else if ((this.silentMs += tick) >= this.timeoutMs) {
        this.current.reject(new Error(`IPVS netlink: no answer for ${this.timeoutMs} ms`));
      }
    }, tick);
    this.timer.unref();
  }

  private receive(data: Buffer): void {
    const exchange = this.current;
    if (!exchange) return;
    this.progress++;
    let offset = 0;
    while (offset + 16 <= data.length) {
      const length = data.readUInt32LE(offset);
      if (length < 16 || offset + length > data.length) break;
      const type = data.readUInt16LE(offset + 4);
      if (data.readUInt32LE(offset + 8) === exchange.seq) {
        if (type === NLMSG_ERROR || type === NLMSG_DONE) {
          // the ack (errno 0) or error of a request; DONE ends a dump, with a negative errno if it failed part-way
          const errno = length >= 20 ? -data.readInt32LE(offset + 16) : 0;
          if (errno > 0) exchange.reject(errnoError('IPVS netlink', errno));
          else exchange.resolve();
          return;
        }
        if (type === this.family) exchange.onReply(data, offset + 16 + GENL_HDRLEN, offset + length);
      }
      offset += (length + 3) & ~3;
    }
  }

  /** Larger than receiveBytes: an error echoing a big request is read by its header; anything else fails. */
  private receiveTruncated(data: Buffer): void {
    if (data.length >= 20 && data.readUInt16LE(4) === NLMSG_ERROR) {
      const header = Buffer.from(data.subarray(0, 20));
      header.writeUInt32LE(20, 0);
      this.receive(header);
      return;
    }
    this.current?.reject(new Error(`IPVS netlink: a reply larger than the ${receiveBytes}-byte receive buffer`));
  }

  request<T>(command: number, attrs: Buffer[], dump: boolean, decode?: Decode<T>): Promise<T[]> {
    const run = () =>
      new Promise<T[]>((resolve, reject) => {
        this.seq = (this.seq + 1) & 0x7fffffff;
        const results: T[] = [];
        const exchange: Exchange = {
          seq: this.seq,
          onReply: (data, start, end) => {
            const result = decode?.(data, start, end);
            if (result !== undefined) results.push(result);
          },
          resolve: () => {
            this.finish(exchange);
            resolve(results);
          },
          reject: (error) => {
            this.finish(exchange);
            reject(new Error(`IPVS netlink command ${command} failed`, { cause: error }));
          },
        };
        this.current = exchange;
        this.progress++;
        try {
          this.socket.send(genlMessage(this.family, NLM_F_REQUEST | NLM_F_ACK | (dump ? NLM_F_DUMP : 0), exchange.seq, command, attrs), { port: 0 }, (error) => {
            if (error) exchange.reject(error);
          });
        } catch (error) {
          exchange.reject(error as Error); // the socket is closed
        }
      });
    if (!this.referenced) {
      this.socket.ref();
      this.referenced = true;
    }
    // straight away when the socket is idle (a resync asks one thing at a time), else after the last one
    const result = this.waiting++ === 0 ? run() : this.tail.then(run, run);
    this.tail = result;
    return result;
  }
  private tail: Promise<unknown> = Promise.resolve();

  private finish(exchange: Exchange): void {
    if (this.current !== exchange) return;
    this.current = undefined;
    this.waiting--;
  }

  close(): void {
    clearInterval(this.timer);
    this.current?.reject(new Error('IPVS netlink socket closed'));
    this.socket.close();
  }
}

/** IPVS through generic netlink, one request at a time on one socket (as ipvsadm/libipvs). */
export class NetlinkIpvs implements Ipvs {
  private constructor(private readonly channel: Channel) {}

  /** Opens a socket and resolves the IPVS family; a clear error when the kernel has no IPVS. */
  static async open(options: { timeoutMs?: number } = {}): Promise<NetlinkIpvs> {
    const ctrl = createGenericNetlink();
    let family: number;
    try {
      const [reply] = await ctrl.ctrlRequest(3 /* GET_FAMILY */, { familyName: 'IPVS' }, { timeout: 5000 });
      if (reply?.familyId === undefined) throw new Error('no IPVS family in the reply');
      family = reply.familyId;
    } catch (error) {
      throw new Error('the kernel has no IPVS generic netlink family (ip_vs module not loaded or CONFIG_IP_VS unset)', { cause: error });
    } finally {
      ctrl.socket.close();
    }
    return new NetlinkIpvs(new Channel(family, options.timeoutMs ?? 10_000));
  }

  listServices(): Promise<VirtualServer[]> {
    return this.channel.request(cmd.getService, [], true, decodeServiceAt);
  }
  listDestinations(vs: VirtualServer): Promise<RealServer[]> {
    return this.channel.request(cmd.getDest, [serviceKey(vs)], true, decodeDestAt);
  }
  async addService(vs: VirtualServer): Promise<void> {
    await this.channel.request(cmd.newService, [encodeService(vs)], false);
  }
  async updateService(vs: VirtualServer): Promise<void> {
    await this.channel.request(cmd.setService, [encodeService(vs)], false);
  }
  async deleteService(vs: VirtualServer): Promise<void> {
    await this.channel.request(cmd.delService, [serviceKey(vs)], false);
  }
  async addDestination(vs: VirtualServer, rs: RealServer): Promise<void> {
    await this.channel.request(cmd.newDest, [serviceKey(vs), encodeDest(rs)], false);
  }
  async updateDestination(vs: VirtualServer, rs: RealServer): Promise<void> {
    await this.channel.request(cmd.setDest, [serviceKey(vs), encodeDest(rs)], false);
  }
  async deleteDestination(vs: VirtualServer, rs: RealServer): Promise<void> {
    await this.channel.request(cmd.delDest, [serviceKey(vs), encodeDest(rs)], false);
  }
  close(): void {
    this.channel.close();
  }
}


/** nlmsghdr + genlmsghdr (command, IPVS_GENL_VERSION) + attributes, in one buffer. */
function genlMessage(family: number, flags: number, seq: number, command: number, attrs: Buffer[]): Buffer {
  let length = 20;
  for (const attr of attrs) length += attr.length;
  const out = Buffer.allocUnsafe(length);
  out.writeUInt32LE(length, 0);
  out.writeUInt16LE(family, 4);
  out.writeUInt16LE(flags, 6);
  out.writeUInt32LE(seq, 8);
  out.writeUInt32LE(0, 12);
  out.writeUInt8(command, 16);
  out.writeUInt8(IPVS_GENL_VERSION, 17);
  out.writeUInt16LE(0, 18);
  let offset = 20;
  for (const attr of attrs) offset += attr.copy(out, offset);
  return out;
}
