/**
 * IP allocation equivalent to the reference host-local plugin
 * (https://www.cni.dev/plugins/current/ipam/host-local/): one file per reserved IP named by the
 * address and holding "containerID\r\nifname", a `last_reserved_ip.0` pointer so allocation goes
 * round-robin, gateway/network/broadcast never handed out, optional rangeStart/rangeEnd, release
 * by container ID + ifname.
 *
 * Locking: host-local uses flock(2), which Node cannot call. Here the lock is a file created with
 * O_EXCL that holds the owner's pid and its start time (field 22 of /proc/PID/stat). The next
 * caller breaks a lock whose owner is dead (kill -9 mid-ADD) or whose pid now belongs to another
 * process (same pid, other start time: pid reuse, issue 25 item 9); a lock without a start time
 * (another writer) is broken once it is older than any real hold (a few file operations). A lock
 * held by a live owner is waited for, bounded, then answered with code 11 naming the owner.
 * Inside one process (the daemon serving many requests) a promise chain serialises callers
 * first, so they never poll each other.
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import ipaddr from 'ipaddr.js';
import { CniError, ErrorCode } from '../lib/cni/types.js';

interface IpRange {
  /** Canonical subnet, e.g. 10.244.1.0/24. */
  subnet: string;
  gateway?: string;
  rangeStart?: string;
  rangeEnd?: string;
}

interface Allocation {
  ip: string;
  containerId: string;
  ifname: string;
}

/** What the plugin needs from an IPAM store; FakeIpamStore in the unit tests implements it too. */
interface IpamStore {
  allocate(containerId: string, ifname: string, range: IpRange): Promise<string>;
  release(containerId: string, ifname: string): Promise<string[]>;
  find(containerId: string, ifname: string): string | undefined;
  list(): Allocation[];
  /** Releases every allocation whose (containerId, ifname) is not in `keep`; returns what it freed. */
  gc(keep: ReadonlySet<string>): Promise<Allocation[]>;
}

export const attachmentKey = (containerId: string, ifname: string): string => `${containerId}\u0000${ifname}`;

const toInt = (ip: string): number => ipaddr.IPv4.parse(ip).toByteArray().reduce((acc, byte) => acc * 256 + byte, 0);
const toIp = (n: number): string => [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');

/** The usable addresses of a range as [first, last] integers, after defaults and checks. */
export function rangeBounds(range: IpRange): { first: number; last: number; network: number; broadcast: number } {
  const [base, bits] = ipaddr.parseCIDR(range.subnet);
  if (base.kind() !== 'ipv4') throw new CniError(ErrorCode.invalidConfig, `IPAM: only IPv4 ranges are supported (${range.subnet})`);
  if (bits > 30) throw new CniError(ErrorCode.invalidConfig, `IPAM: subnet ${range.subnet} is too small`);
  const network = toInt(ipaddr.IPv4.networkAddressFromCIDR(range.subnet).toString());
  const broadcast = network + 2 ** (32 - bits) - 1;
  const inside = (n: number) => n > network && n < broadcast;
  const first = range.rangeStart ? toInt(range.rangeStart) : network + 1;
  const last = range.rangeEnd ? toInt(range.rangeEnd) : broadcast - 1;
  if (!inside(first) || !inside(last) || first > last) {
    throw new CniError(ErrorCode.invalidConfig, `IPAM: rangeStart/rangeEnd ${toIp(first)}-${toIp(last)} not a usable range of ${range.subnet}`);
  }
  return { first, last, network, broadcast };
}

/** Round-robin choice: the first free address after `lastReserved`, wrapping; undefined when full. Pure. */
export function pickAddress(range: IpRange, taken: ReadonlySet<string>, lastReserved?: string): string | undefined {
  const { first, last } = rangeBounds(range);
  const gateway = range.gateway ? toInt(range.gateway) : undefined;
  const size = last - first + 1;
  let start = first;
  if (lastReserved && ipaddr.IPv4.isValidFourPartDecimal(lastReserved)) {
    const previous = toInt(lastReserved);
    if (previous >= first && previous <= last) start = previous + 1 > last ? first : previous + 1;
  }
  for (let i = 0; i < size; i++) {
    const candidate = first + ((start - first + i) % size);
    if (candidate === gateway) continue;
    const ip = toIp(candidate);
    if (!taken.has(ip)) return ip;
  }
  return undefined;
}

const processLocks = new Map<string, Promise<void>>();
/** What this process writes into a lock file ("PID STARTTIME"): read from /proc once. */
let ownLockOwner: string | undefined;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A process's start time in clock ticks since boot (/proc/PID/stat field 22); undefined when gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** What a lock file says: "PID STARTTIME" (ours) or just "PID" (older or foreign writers). */
export function parseLockOwner(text: string): { pid: number; startTime?: string } | undefined {
  const match = /^\s*(\d{1,10})(?:\s+(\d{1,20}))?\s*$/.exec(text);
  if (!match) return undefined;
  const pid = Number(match[1]);
  return pid > 0 ? { pid, startTime: match[2] } : undefined;
}

/** Real holds last a few file operations; a lock without a start time older than this is stale. */
const unverifiableLockMs = 5_000;

/** Why a lock is stale, or undefined when its owner may still hold it. Pure but for the /proc reads. */
export function staleLockReason(text: string, ageMs: number): string | undefined {
  const owner = parseLockOwner(text);
  // An empty or garbled file is an owner killed between open and write, or not ours.
  if (!owner) return ageMs > 1000 ? 'unreadable owner' : undefined;
  if (!pidAlive(owner.pid)) return `owner pid ${owner.pid} is gone`;
  if (owner.startTime !== undefined) {
    const now = processStartTime(owner.pid);
    return now !== undefined && now !== owner.startTime ? `pid ${owner.pid} now belongs to another process` : undefined;
  }
  return ageMs > unverifiableLockMs ? `pid ${owner.pid} cannot be verified and the lock is ${Math.round(ageMs)} ms old` : undefined;
}

function lockAgeMs(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class FileIpamStore implements IpamStore {
  readonly dir: string;

  constructor(dataDir: string, network: string, private readonly lockTimeoutMs = 15_000) {
    this.dir = join(dataDir, network);
  }

  async allocate(containerId: string, ifname: string, range: IpRange): Promise<string> {
    return this.locked(() => {
      // One directory read serves both the idempotence check and the taken set.
      const entries = this.list();
      const existing = entries.find((entry) => entry.containerId === containerId && entry.ifname === ifname)?.ip;
      if (existing) return existing;
      const taken = new Set(entries.map((entry) => entry.ip));
      const last = this.readLastReserved();
      const ip = pickAddress(range, taken, last);
      if (!ip) throw new CniError(ErrorCode.tryAgainLater, `IPAM: no free address left in ${range.subnet}`);
      writeFileSync(join(this.dir, ip), `${containerId}\r\n${ifname}`, { flag: 'wx' });
      this.writeLastReserved(ip);
      return ip;
    });
  }

  async release(containerId: string, ifname: string): Promise<string[]> {
    return this.locked(() => {
      const freed = this.list().filter((entry) => entry.containerId === containerId && entry.ifname === ifname);
      for (const entry of freed) rmSync(join(this.dir, entry.ip), { force: true });
      return freed.map((entry) => entry.ip);
    });
  }

  async gc(keep: ReadonlySet<string>): Promise<Allocation[]> {
    return this.locked(() => {
      const freed = this.list().filter((entry) => !keep.has(attachmentKey(entry.containerId, entry.ifname)));
      for (const entry of freed) rmSync(join(this.dir, entry.ip), { force: true });
      return freed;
    });
  }

  find(containerId: string, ifname: string): string | undefined {
    return this.list().find((entry) => entry.containerId === containerId && entry.ifname === ifname)?.ip;
  }

  list(): Allocation[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const entries: Allocation[] = [];
    for (const name of names) {
      if (!ipaddr.IPv4.isValidFourPartDecimal(name)) continue;
      let text: string;
      try {
        text = readFileSync(join(this.dir, name), 'utf8');
      } catch {
        continue;
      }
      const [containerId = '', ifname = ''] = text.split(/\r?\n/);
      entries.push({ ip: name, containerId: containerId.trim(), ifname: ifname.trim() });
    }
    return entries;
  }

  private readLastReserved(): string | undefined {
    try {
      return readFileSync(join(this.dir, 'last_reserved_ip.0'), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  /**
   * Written in place, as host-local's disk store does (os.WriteFile, no rename, no fsync;
   * containernetworking/plugins plugins/ipam/host-local/backend/disk/backend.go, Reserve): it is
   * only a round-robin hint. A torn file reads as no hint (pickAddress ignores it; allocation
   * starts over from the range's first address) or as another address to go on from; the
   * reservations themselves are the one-file-per-IP entries, created with O_EXCL.
   */
  private writeLastReserved(ip: string): void {
    writeFileSync(join(this.dir, 'last_reserved_ip.0'), ip);
  }

  /** Runs `work` holding both the in-process chain and the on-disk lock. */
  private async locked<T>(work: () => T): Promise<T> {
    const previous = processLocks.get(this.dir) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const chained = previous.then(() => mine);
    processLocks.set(this.dir, chained);
    await previous;
    try {
      await this.acquireFileLock();
      try {
        return work();
      } finally {
        rmSync(join(this.dir, 'lock'), { force: true });
      }
    } catch (error) {
      if (error instanceof CniError) throw error;
      throw new CniError(ErrorCode.ioFailure, `IPAM store ${this.dir}: ${(error as Error).message}`, undefined, { cause: error });
    } finally {
      release();
      if (processLocks.get(this.dir) === chained) processLocks.delete(this.dir);
    }
  }

  private async acquireFileLock(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const file = join(this.dir, 'lock');
    const deadline = Date.now() + this.lockTimeoutMs;
    const self = (ownLockOwner ??= `${process.pid} ${processStartTime(process.pid) ?? ''}`.trim());
    for (;;) {
      try {
        const fd = openSync(file, 'wx');
        writeSync(fd, self);
        closeSync(fd);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      let text: string;
      try {
        text = readFileSync(file, 'utf8').slice(0, 64);
      } catch {
        continue; // released meanwhile
      }
      if (staleLockReason(text, lockAgeMs(file)) !== undefined) {
        try {
          // Only the lock we judged: a new owner's file (other content) is not removed.
          if (readFileSync(file, 'utf8').slice(0, 64) === text) unlinkSync(file);
        } catch {
          /* someone else broke it first */
        }
        continue;
      }
      if (Date.now() > deadline) {
        throw new CniError(ErrorCode.tryAgainLater, `IPAM store ${this.dir} is locked by pid ${parseLockOwner(text)?.pid ?? '?'} (waited ${this.lockTimeoutMs} ms); if no knode plugin runs, remove ${file}`);
      }
      await sleep(1 + Math.random() * 4);
    }
  }
}
