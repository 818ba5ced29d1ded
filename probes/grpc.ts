/**
 * The grpc prober (kubelet pkg/probe/grpc): one call of the standard
 * grpc.health.v1.Health/Check (https://github.com/grpc/grpc/blob/master/doc/health-checking.md)
 * with the probe's `service` (empty by default), over plain-text HTTP/2 to podIP:port, with the
 * timeout as the call deadline. SERVING is success; any other status, an error, a server
 * without the health service, or the deadline is a failure, with the kubelet's messages.
 * https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#define-a-grpc-liveness-probe
 * The service definition is built in code (proto-loader fromJSON) so no .proto file has to ship.
 * grpc-js and proto-loader are loaded on the first grpc probe only: they cost an agent without
 * grpc probes about 10 MiB of RSS.
 */
import type * as Grpc from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import type { ProbeOutcome } from './types.js';

/** grpc/health/v1/health.proto, as protobuf.js JSON. */
const healthProtoJson = {
  nested: {
    grpc: {
      nested: {
        health: {
          nested: {
            v1: {
              nested: {
                HealthCheckRequest: { fields: { service: { type: 'string', id: 1 } } },
                HealthCheckResponse: {
                  fields: { status: { type: 'ServingStatus', id: 1 } },
                  nested: { ServingStatus: { values: { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } } },
                },
                Health: {
                  methods: {
                    Check: { requestType: 'HealthCheckRequest', responseType: 'HealthCheckResponse' },
                    Watch: { requestType: 'HealthCheckRequest', responseType: 'HealthCheckResponse', responseStream: true },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};

interface HealthCheckResponse {
  status: 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
}

let loaded: Promise<{ grpc: typeof Grpc; service: Grpc.ServiceDefinition }> | undefined;

/** grpc-js and the grpc.health.v1.Health service definition (enums as strings, defaults filled in), loaded once. */
function healthService(): Promise<{ grpc: typeof Grpc; service: Grpc.ServiceDefinition }> {
  loaded ??= Promise.all([import('@grpc/grpc-js'), import('@grpc/proto-loader')]).then(([grpc, protoLoader]: [typeof Grpc, typeof ProtoLoader]) => {
    const definition = protoLoader.fromJSON(healthProtoJson as unknown as Parameters<typeof protoLoader.fromJSON>[0], { enums: String, defaults: true, keepCase: true });
    return { grpc, service: definition['grpc.health.v1.Health'] as Grpc.ServiceDefinition };
  });
  return loaded;
}

/** The service definition of grpc.health.v1.Health, e.g. for a server in tests. */
export async function healthServiceDefinition(): Promise<Grpc.ServiceDefinition> {
  return (await healthService()).service;
}

export async function probeGrpc(host: string, port: number, service: string, timeoutMs: number, userAgent: string): Promise<ProbeOutcome> {
  const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const { grpc, service: definition } = await healthService();
  const Client = grpc.makeGenericClientConstructor(definition, 'Health');
  const client = new Client(address, grpc.credentials.createInsecure(), {
    'grpc.primary_user_agent': userAgent,
    'grpc.max_receive_message_length': 10 * 1024,
    'grpc.enable_retries': 0,
  });
  const seconds = timeoutMs / 1000;
  try {
    const response = await new Promise<HealthCheckResponse>((resolve, reject) => {
      const check = (client as unknown as Record<string, (req: object, opts: Grpc.CallOptions, cb: (e: Grpc.ServiceError | null, r?: HealthCheckResponse) => void) => void>).Check!;
      check.call(client, { service }, { deadline: Date.now() + timeoutMs }, (error, response) => (error ? reject(error) : resolve(response!)));
    });
    if (response.status !== 'SERVING') return { result: 'failure', output: `service unhealthy (responded with "${response.status}")` };
    return { result: 'success', output: 'service is healthy' };
  } catch (error) {
    const status = (error as Grpc.ServiceError).code;
    const details = (error as Grpc.ServiceError).details ?? String(error);
    if (status === grpc.status.UNIMPLEMENTED) return { result: 'failure', output: `this server does not implement the grpc health protocol (grpc.health.v1.Health): ${details}` };
    if (status === grpc.status.DEADLINE_EXCEEDED) return { result: 'failure', output: `timeout: health rpc did not complete within ${seconds}s` };
    if (status === grpc.status.UNAVAILABLE) return { result: 'failure', output: `timeout: failed to connect service "${address}" within ${seconds}s: ${details}` };
    return { result: 'failure', output: `error: health rpc probe failed: ${details}` };
  } finally {
    client.close();
  }
}
