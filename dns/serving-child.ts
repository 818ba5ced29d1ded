/**
 * A serving process of `knode dns` (./serving.ts says why and how): answers UDP queries on the
 * socket the main process hands it, from a copy of the cluster index the main process keeps up
 * to date, with the same server code (./server.ts). Started by the main process only.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { createLogger, type Logger } from '../lib/log.js';
import { AnswerCache } from './cache.js';
import { Forwarder } from './forward.js';
import { DnsMetrics } from './metrics.js';
import { ClusterIndex } from './records.js';
import { DnsServer } from './server.js';
import type { FromServing, ToServing } from './serving.js';

let index: ClusterIndex | undefined;
let server: DnsServer | undefined;
let metrics: DnsMetrics | undefined;
let log: Logger = createLogger('dns');
let synced = false;

const reply = (message: FromServing) => process.send?.(message);

async function exit(code: number): Promise<void> {
  // Stopping a UDP socket and an idle forwarder cannot fail in a way worth more than the log line.
  await server?.stop().catch((error: unknown) => log.warn({ err: error }, 'stopping the serving process'));
  process.exit(code);
}

process.on('message', (message: ToServing, handle: unknown) => {
  switch (message.kind) {
    case 'init': {
      const { config } = message;
      log = createLogger('dns', config.logLevel).child({ serving: message.slot });
      index = new ClusterIndex(config.zone, config.ttl);
      for (const service of message.services) index.upsertService(service);
      for (const slice of message.slices) index.upsertSlice(slice);
      synced = message.synced;
      metrics = new DnsMetrics(true);
      server = new DnsServer({
        index,
        synced: () => synced,
        forwarder: new Forwarder(config.upstreams, { maxInFlight: config.maxForwardInFlight }),
        cache: new AnswerCache(config.cacheSize),
        metrics,
        log,
        host: config.host,
        port: 0,
        sharedUdp: handle as UdpSocket,
      });
      void server.start().then((port) => reply({ kind: 'serving', port }));
      return;
    }
    case 'service':
      if (message.op === 'upsert') index?.upsertService(message.object as V1Service);
      else index?.deleteService(message.object as V1Service);
      return;
    case 'slice':
      if (message.op === 'upsert') index?.upsertSlice(message.object as V1EndpointSlice);
      else index?.deleteSlice(message.object as V1EndpointSlice);
      return;
    case 'synced':
      synced = true;
      return;
    case 'metrics':
      void (metrics ? metrics.registry.getMetricsAsJSON() : Promise.resolve([])).then((values) => reply({ kind: 'metrics', id: message.id, metrics: values }));
      return;
  }
});

// The main process stops its children with SIGTERM; Ctrl-C reaches the whole process group, and
// the main process's own SIGINT handling stops them in order.
process.on('SIGTERM', () => void exit(0));
process.on('SIGINT', () => undefined);
// The main process is gone (even killed): nobody updates the index any more.
process.on('disconnect', () => void exit(0));
