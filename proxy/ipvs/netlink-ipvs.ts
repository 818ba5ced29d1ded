/**
 * IPVS through generic netlink (family "IPVS", as ipvsadm/libipvs and kube-proxy's
 * moby/ipvs client), on the `netlink` package's GenericNetlinkSocket. Attribute numbers and
 * commands are those of include/uapi/linux/ip_vs.h. Only what the proxy needs: list, add,
 * update and delete virtual services and their real servers (masquerading forwarding).
 */
import { createGenericNetlink, type GenericNetlinkSocket } from 'netlink';
import ipaddr from 'ipaddr.js';

const IPVS_GENL_VERSION = 1;
const cmd = { newService: 1, setService: 2, delService: 3, getService: 4, newDest: 5, setDest: 6, delDest: 7, getDest: 8, flush: 17 } as const;
const cmdAttr = { service: 1, dest: 2 } as const;
const svcAttr = { af: 1, protocol: 2, addr: 3, port: 4, fwmark: 5, schedName: 6, flags: 7, timeout: 8, netmask: 9 } as const;
const destAttr = { addr: 1, port: 2, fwdMethod: 3, weight: 4, uThresh: 5, lThresh: 6, activeConns: 7, inactConns: 8, persistConns: 9, addrFamily: 11 } as const;
const AF_INET = 2;
const IP_VS_SVC_F_PERSISTENT = 0x1;
const IP_VS_CONN_F_MASQ = 0;
const NLM_F_DUMP = 0x300;
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
const addr16 = (ip: string) => {
  const buffer = Buffer.alloc(16);
  Buffer.from(ipaddr.parse(ip).toByteArray()).copy(buffer);
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

/** The attributes that identify a virtual service (AF, protocol, address, port). */
function serviceKeyAttrs(vs: Pick<VirtualServer, 'address' | 'port' | 'protocol'>): Buffer[] {
  return [nlattr(svcAttr.af, u16(AF_INET)), nlattr(svcAttr.protocol, u16(protocolNumbers[vs.protocol])), nlattr(svcAttr.addr, addr16(vs.address)), nlattr(svcAttr.port, be16(vs.port))];
}

export function encodeService(vs: VirtualServer): Buffer {
  const flags = Buffer.alloc(8);
  flags.writeUInt32LE(vs.persistence > 0 ? IP_VS_SVC_F_PERSISTENT : 0, 0);
  flags.writeUInt32LE(0xffffffff, 4);
  const inner = [
    ...serviceKeyAttrs(vs),
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
const ipv4 = (buffer: Buffer | undefined) => (buffer ? ipaddr.fromByteArray([...buffer.subarray(0, 4)]).toString() : '');

export function decodeService(data: Buffer): VirtualServer | undefined {
  const service = parseAttrs(parseAttrs(data).get(cmdAttr.service) ?? Buffer.alloc(0));
  if (service.get(svcAttr.af)?.readUInt16LE(0) !== AF_INET || service.has(svcAttr.fwmark) && !service.has(svcAttr.addr)) return undefined;
  const protocol = protocolNames.get(service.get(svcAttr.protocol)?.readUInt16LE(0) ?? 0);
  if (!protocol) return undefined;
  const flags = service.get(svcAttr.flags)?.readUInt32LE(0) ?? 0;
  return {
    address: ipv4(service.get(svcAttr.addr)),
    port: service.get(svcAttr.port)?.readUInt16BE(0) ?? 0,
    protocol,
    scheduler: (service.get(svcAttr.schedName)?.toString() ?? '').replace(/\0.*$/s, ''),
    persistence: flags & IP_VS_SVC_F_PERSISTENT ? (service.get(svcAttr.timeout)?.readUInt32LE(0) ?? 0) : 0,
  };
}

export function decodeDest(data: Buffer): RealServer {
  const dest = parseAttrs(parseAttrs(data).get(cmdAttr.dest) ?? Buffer.alloc(0));
  return {
    address: ipv4(dest.get(destAttr.addr)),
    port: dest.get(destAttr.port)?.readUInt16BE(0) ?? 0,
    weight: dest.get(destAttr.weight)?.readUInt32LE(0) ?? 0,
    activeConnections: dest.get(destAttr.activeConns)?.readUInt32LE(0),
    inactiveConnections: dest.get(destAttr.inactConns)?.readUInt32LE(0),
  };
}

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

export class NetlinkIpvs implements Ipvs {
  private constructor(
    private readonly socket: GenericNetlinkSocket,
    private readonly family: number,
  ) {}

  /** Opens a socket and resolves the IPVS family; a clear error when the kernel has no IPVS. */
  static async open(): Promise<NetlinkIpvs> {
    const socket = createGenericNetlink();
    try {
      const [family] = await socket.ctrlRequest(3 /* GET_FAMILY */, { familyName: 'IPVS' }, { timeout: 5000 });
      if (family?.familyId === undefined) throw new Error('no IPVS family in the reply');
      return new NetlinkIpvs(socket, family.familyId);
    } catch (error) {
      socket.socket.close();
      throw new Error('the kernel has no IPVS generic netlink family (ip_vs module not loaded or CONFIG_IP_VS unset)', { cause: error });
    }
  }

  private async request(command: number, data: Buffer[], dump = false): Promise<Buffer[]> {
    try {
      const [messages] = await this.socket.request(this.family, command, IPVS_GENL_VERSION, data, { flags: dump ? NLM_F_DUMP : 0, timeout: 10_000 });
      return messages.map((message) => message.data);
    } catch (error) {
      throw new Error(`IPVS netlink command ${command} failed`, { cause: error });
    }
  }

  async listServices(): Promise<VirtualServer[]> {
    return (await this.request(cmd.getService, [], true)).map(decodeService).filter((vs): vs is VirtualServer => vs !== undefined);
  }
  async listDestinations(vs: VirtualServer): Promise<RealServer[]> {
    return (await this.request(cmd.getDest, [nlattr(cmdAttr.service, Buffer.concat(serviceKeyAttrs(vs)))], true)).map(decodeDest);
  }
  async addService(vs: VirtualServer): Promise<void> {
    await this.request(cmd.newService, [encodeService(vs)]);
  }
  async updateService(vs: VirtualServer): Promise<void> {
    await this.request(cmd.setService, [encodeService(vs)]);
  }
  async deleteService(vs: VirtualServer): Promise<void> {
    await this.request(cmd.delService, [nlattr(cmdAttr.service, Buffer.concat(serviceKeyAttrs(vs)))]);
  }
  async addDestination(vs: VirtualServer, rs: RealServer): Promise<void> {
    await this.request(cmd.newDest, [nlattr(cmdAttr.service, Buffer.concat(serviceKeyAttrs(vs))), encodeDest(rs)]);
  }
  async updateDestination(vs: VirtualServer, rs: RealServer): Promise<void> {
    await this.request(cmd.setDest, [nlattr(cmdAttr.service, Buffer.concat(serviceKeyAttrs(vs))), encodeDest(rs)]);
  }
  async deleteDestination(vs: VirtualServer, rs: RealServer): Promise<void> {
    await this.request(cmd.delDest, [nlattr(cmdAttr.service, Buffer.concat(serviceKeyAttrs(vs))), encodeDest(rs)]);
  }
  close(): void {
    this.socket.socket.close();
  }
}
