/**
 * etcd storage through the `etcd3` client, laid out as kube-apiserver does: one key per object
 * under a prefix, the object's resourceVersion is the key's mod_revision, conditional writes are
 * transactions comparing mod_revision (create: create_revision == 0). Changes come from one etcd
 * watch on the prefix (with previous values), so revisions and order are etcd's own.
 * `revision()` is the newest revision this process has seen from etcd (writes, reads, watch);
 * watch consumers use the watch cache's own last delivered revision instead.
 *
 * Against a cluster (several endpoints) a member can die under us. The client fails unary calls
 * over to another member (bounded by a deadline); the watch stream reconnects to another member.
 * It resumes from the revision after the last event this process delivered (not from the
 * client's own header bookkeeping, which can run ahead of what was delivered), and events at or
 * below that revision are dropped, so consumers see every revision once, in order — as the
 * apiserver's reflector resumes a watch from its last resourceVersion (docs/architecture.md,
 * "storage").
 */
import { Etcd3, type IKeyValue, type IOptions, type Watcher } from 'etcd3';
import type { Logger } from '../../lib/log.js';
import { StorageError, type KObject, type Storage, type StoredEvent } from './types.js';

interface EtcdStorageOptions {
  endpoints: string[];
  /** Key prefix, so that several control planes (or tests) can share one etcd. */
  prefix?: string;
  /** Per-call deadline for reads and writes (default 10 s, as etcdctl's --command-timeout is 5 s + a leader election). */
  requestTimeoutMs?: number;
  log?: Logger;
}

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** Exponential reconnect delay for the watch stream, capped low: a member outage must not leave watches idle for the client's default 30 s. */
function cappedBackoff(duration = 50, max = 1_000): WatchBackoff {
  return { duration, next: () => cappedBackoff(Math.min(duration * 2, max), max) };
}

export class EtcdStorage implements Storage {
  private client: Etcd3 | undefined;
  private watcher: Watcher | undefined;
  private readonly listeners = new Set<(event: StoredEvent) => void>();
  private rev = 0;
  /** The revision of the last event handed to listeners: the watch resumes after it. */
  private delivered = 0;
  private readonly prefix: string;

  constructor(private readonly options: EtcdStorageOptions) {
    this.prefix = options.prefix ?? '';
  }

  async start(): Promise<void> {
    const timeout = this.options.requestTimeoutMs ?? 10_000;
    const client = new Etcd3({
      hosts: this.options.endpoints,
      dialTimeout: 5_000,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeout }),
      faultHandling: { watchBackoff: cappedBackoff() },
    });
    this.client = client;
    try {
      const response = await client.get(`${this.prefix}/registry-revision-probe`).exec();
      this.rev = Number(response.header.revision);
    } catch (error) {
      client.close();
      throw new Error(`cannot reach etcd at ${this.options.endpoints.join(',')}`, { cause: error });
    }
    this.delivered = this.rev;
    await this.watch();
  }

  private async watch(): Promise<void> {
    const watcher = await this.etcd().watch().prefix(`${this.prefix}/registry/`).startRevision(String(this.delivered + 1)).withPreviousKV().create();
    watcher.on('data', (response) => {
      for (const event of response.events) this.onEvent(event.type === 'Delete' ? 'delete' : 'put', event.kv, event.prev_kv ?? undefined);
    });
    // The client re-sends this create request on every reconnect: resume after what was delivered.
    watcher.on('connecting', () => {
      watcher.request.start_revision = String(this.delivered + 1);
    });
    watcher.on('disconnected', (err) => this.options.log?.warn({ err, resumeFrom: this.delivered + 1 }, 'etcd watch disconnected; reconnecting'));
    watcher.on('error', (err) => {
      // Cancelled by etcd (e.g. the resume revision was compacted away): start over from now.
      this.options.log?.error({ err, delivered: this.delivered }, 'etcd watch cancelled; events since the last delivered revision may be missing');
      if (this.watcher !== watcher || !this.client) return;
      this.delivered = this.rev;
      this.watch().catch((error: unknown) => this.options.log?.error({ err: error }, 'cannot re-create the etcd watch'));
    });
    this.watcher = watcher;
  }

  async stop(): Promise<void> {
    const watcher = this.watcher;
    this.watcher = undefined;
    await watcher?.cancel().catch(() => undefined);
    this.client?.close();
    this.client = undefined;
    this.listeners.clear();
  }

  revision(): number {
    return this.rev;
  }

  private etcd(): Etcd3 {
    if (!this.client) throw new Error('etcd storage is not started');
    return this.client;
  }

  private decode(kv: IKeyValue, revision = Number(kv.mod_revision)): KObject {
    const object = JSON.parse(kv.value.toString('utf8')) as KObject;
    object.metadata = { ...object.metadata, resourceVersion: String(revision) };
    return object;
  }

  private encode(object: KObject): string {
    const { resourceVersion: _rv, ...metadata } = object.metadata;
    return JSON.stringify({ ...object, metadata });
  }

  private seen(revision: number): void {
    if (revision > this.rev) this.rev = revision;
  }

  async get(key: string): Promise<KObject | undefined> {
    const response = await this.etcd().get(this.prefix + key).exec();
    this.seen(Number(response.header.revision));
    const kv = response.kvs[0];
    return kv ? this.decode(kv) : undefined;
  }

  async list(prefix: string): Promise<{ items: KObject[]; revision: number }> {
    const response = await this.etcd().getAll().prefix(this.prefix + prefix).sort('Key', 'Ascend').exec();
    const revision = Number(response.header.revision);
    this.seen(revision);
    return { items: response.kvs.map((kv) => this.decode(kv)), revision };
  }

  async create(key: string, object: KObject): Promise<KObject> {
    const client = this.etcd();
    const result = await client
      .if(this.prefix + key, 'Create', '==', 0)
      .then(client.put(this.prefix + key).value(this.encode(object)))
      .commit();
    if (!result.succeeded) throw new StorageError('AlreadyExists', key);
    const revision = Number(result.header.revision);
    this.seen(revision);
    return { ...object, metadata: { ...object.metadata, resourceVersion: String(revision) } };
  }

  async update(key: string, object: KObject, expectedRevision?: number): Promise<KObject> {
    const client = this.etcd();
    const full = this.prefix + key;
    const condition = expectedRevision !== undefined ? client.if(full, 'Mod', '==', expectedRevision) : client.if(full, 'Create', '>', 0);
    const result = await condition.then(client.put(full).value(this.encode(object))).else(client.get(full)).commit();
    if (!result.succeeded) throw await this.whyFailed(key);
    const revision = Number(result.header.revision);
    this.seen(revision);
    return { ...object, metadata: { ...object.metadata, resourceVersion: String(revision) } };
  }

  async delete(key: string, expectedRevision?: number): Promise<KObject> {
    const client = this.etcd();
    const full = this.prefix + key;
    const current = await this.get(key);
    if (!current) throw new StorageError('NotFound', key);
    const revision = expectedRevision ?? Number(current.metadata.resourceVersion);
    const result = await client.if(full, 'Mod', '==', revision).then(client.delete().key(full)).commit();
    if (!result.succeeded) throw await this.whyFailed(key);
    this.seen(Number(result.header.revision));
    return current;
  }

  private async whyFailed(key: string): Promise<StorageError> {
    return (await this.get(key)) ? new StorageError('Conflict', key) : new StorageError('NotFound', key);
  }

  subscribe(listener: (event: StoredEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private onEvent(type: 'put' | 'delete', kv: IKeyValue, previous: IKeyValue | undefined): void {
    const key = kv.key.toString('utf8').slice(this.prefix.length);
    const revision = Number(kv.mod_revision);
    // Each write here is a one-key transaction, so one revision is one event: anything at or
    // below the last delivered revision was already delivered before a reconnect.
    if (revision <= this.delivered) return;
    this.delivered = revision;
    let event: StoredEvent;
    try {
      if (type === 'delete') {
        if (!previous) return;
        event = { type: 'DELETED', key, object: this.decode(previous, revision), previous: this.decode(previous), revision };
      } else {
        event = { type: kv.version === '1' ? 'ADDED' : 'MODIFIED', key, object: this.decode(kv), previous: previous ? this.decode(previous) : undefined, revision };
      }
    } catch {
      return; // not one of ours (not JSON)
    }
    this.seen(revision);
    for (const listener of this.listeners) listener(event);
  }
}
