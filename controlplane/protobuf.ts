/**
 * Decoding of the Kubernetes protobuf envelope for the few kinds kubectl sends that way:
 * `kubectl create namespace|configmap|secret|serviceaccount` post
 * `application/vnd.kubernetes.protobuf` (https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding)
 * and do not fall back to JSON on a 415. The envelope is the magic `k8s\0` followed by a
 * runtime.Unknown message (1: typeMeta, 2: raw); raw is the object's message. Field numbers are
 * those of k8s.io/api/core/v1/generated.proto and apimachinery's meta/v1/generated.proto.
 * Replies stay JSON (kubectl accepts `application/json` too).
 */
import { ApiError } from './status.js';
import { workloadSchemas, type ProtoSchema } from './protobuf-workloads.js';

type Schema = ProtoSchema;

const ownerReference: Schema = {
  1: { name: 'kind', type: 'string' },
  3: { name: 'name', type: 'string' },
  4: { name: 'uid', type: 'string' },
  5: { name: 'apiVersion', type: 'string' },
  6: { name: 'controller', type: 'bool' },
  7: { name: 'blockOwnerDeletion', type: 'bool' },
};

const objectMeta: Schema = {
  1: { name: 'name', type: 'string' },
  2: { name: 'generateName', type: 'string' },
  3: { name: 'namespace', type: 'string' },
  5: { name: 'uid', type: 'string' },
  6: { name: 'resourceVersion', type: 'string' },
  7: { name: 'generation', type: 'int' },
  8: { name: 'creationTimestamp', type: 'time' },
  11: { name: 'labels', type: 'map' },
  12: { name: 'annotations', type: 'map' },
  13: { name: 'ownerReferences', type: ownerReference, repeated: true },
  14: { name: 'finalizers', type: 'string', repeated: true },
};

const schemas: Record<string, Schema> = {
  Namespace: {
    1: { name: 'metadata', type: objectMeta },
    2: { name: 'spec', type: { 1: { name: 'finalizers', type: 'string', repeated: true } } },
    3: { name: 'status', type: { 1: { name: 'phase', type: 'string' } } },
  },
  ConfigMap: {
    1: { name: 'metadata', type: objectMeta },
    2: { name: 'data', type: 'map' },
    3: { name: 'binaryData', type: 'bytesMap' },
    4: { name: 'immutable', type: 'bool' },
  },
  Secret: {
    1: { name: 'metadata', type: objectMeta },
    2: { name: 'data', type: 'bytesMap' },
    3: { name: 'type', type: 'string' },
    4: { name: 'stringData', type: 'map' },
    5: { name: 'immutable', type: 'bool' },
  },
  ServiceAccount: { 1: { name: 'metadata', type: objectMeta } },
  Service: {
    1: { name: 'metadata', type: objectMeta },
    2: {
      name: 'spec',
      type: {
        1: {
          name: 'ports',
          repeated: true,
          type: {
            1: { name: 'name', type: 'string' },
            2: { name: 'protocol', type: 'string' },
            3: { name: 'port', type: 'int' },
            4: { name: 'targetPort', type: 'intOrString' },
            5: { name: 'nodePort', type: 'int' },
          },
        },
        2: { name: 'selector', type: 'map' },
        3: { name: 'clusterIP', type: 'string' },
        4: { name: 'type', type: 'string' },
        5: { name: 'externalIPs', type: 'string', repeated: true },
        7: { name: 'sessionAffinity', type: 'string' },
        10: { name: 'externalName', type: 'string' },
      },
    },
  },
  ...workloadSchemas(objectMeta),
  // certificates.k8s.io/v1 (k8s.io/api/certificates/v1/generated.proto): `kubectl certificate approve|deny` PUTs /approval in protobuf.
  CertificateSigningRequest: {
    1: { name: 'metadata', type: objectMeta },
    2: {
      name: 'spec',
      type: {
        1: { name: 'request', type: 'bytes' },
        2: { name: 'username', type: 'string' },
        3: { name: 'uid', type: 'string' },
        4: { name: 'groups', type: 'string', repeated: true },
        5: { name: 'usages', type: 'string', repeated: true },
        7: { name: 'signerName', type: 'string' },
        8: { name: 'expirationSeconds', type: 'int' },
      },
    },
    3: {
      name: 'status',
      type: {
        1: {
          name: 'conditions',
          repeated: true,
          type: {
            1: { name: 'type', type: 'string' },
            2: { name: 'reason', type: 'string' },
            3: { name: 'message', type: 'string' },
            4: { name: 'lastUpdateTime', type: 'time' },
            5: { name: 'lastTransitionTime', type: 'time' },
            6: { name: 'status', type: 'string' },
          },
        },
        2: { name: 'certificate', type: 'bytes' },
      },
    },
  },
};

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      const byte = this.buf[this.pos++] as number;
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw new Error('varint too long');
    }
  }
  bytes(): Buffer {
    const length = this.varint();
    if (this.pos + length > this.buf.length) throw new Error('truncated field');
    const out = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }
  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wireType}`);
  }
}

function decodeEntry(buf: Buffer): [string, Buffer] {
  const reader = new Reader(buf);
  let key = '';
  let value: Buffer = reader.buf.subarray(0, 0);
  while (!reader.done()) {
    const tag = reader.varint();
    if (tag >>> 3 === 1) key = reader.bytes().toString('utf8');
    else if (tag >>> 3 === 2) value = reader.bytes();
    else reader.skip(tag & 7);
  }
  return [key, value];
}

function decodeMessage(buf: Buffer, schema: Schema): Record<string, unknown> {
  const reader = new Reader(buf);
  const out: Record<string, unknown> = {};
  while (!reader.done()) {
    const tag = reader.varint();
    const field = schema[tag >>> 3];
    if (!field) {
      reader.skip(tag & 7);
      continue;
    }
    let value: unknown;
    if (field.type === 'int') value = reader.varint();
    else if (field.type === 'bool') value = reader.varint() !== 0;
    else {
      const raw = reader.bytes();
      if (field.type === 'string') {
        value = raw.toString('utf8');
        // Go's omitempty: an empty scalar string is "unset" (so that defaulting applies).
        if (value === '' && !field.repeated) continue;
      } else if (field.type === 'intOrString') {
        const v = decodeMessage(raw, { 1: { name: 't', type: 'int' }, 2: { name: 'i', type: 'int' }, 3: { name: 's', type: 'string' } });
        value = v.t === 1 ? v.s : (v.i ?? 0);
      }
      else if (field.type === 'bytes') value = raw.toString('base64');
      else if (field.type === 'time') {
        const time = decodeMessage(raw, { 1: { name: 's', type: 'int' } });
        // Go's zero time (a template's creationTimestamp) is "unset", JSON null upstream.
        if (!time.s) continue;
        value = new Date(Number(time.s ?? 0) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
      } else if (field.type === 'map' || field.type === 'bytesMap') {
        const [key, entry] = decodeEntry(raw);
        const map = (out[field.name] as Record<string, string> | undefined) ?? {};
        map[key] = field.type === 'map' ? entry.toString('utf8') : entry.toString('base64');
        out[field.name] = map;
        continue;
      } else value = decodeMessage(raw, field.type);
    }
    if (field.repeated) out[field.name] = [...((out[field.name] as unknown[] | undefined) ?? []), value];
    else out[field.name] = value;
  }
  return out;
}

export function isProtobuf(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() === 'application/vnd.kubernetes.protobuf';
}

/** Decodes a protobuf-encoded object of a supported kind into its JSON form. */
export function decodeProtobuf(body: Buffer): Record<string, unknown> {
  if (body.length < 4 || body.subarray(0, 4).toString('latin1') !== 'k8s\0') throw new ApiError(400, 'BadRequest', 'protobuf body without the k8s envelope');
  try {
    const unknown = decodeMessage(body.subarray(4), {
      1: { name: 'typeMeta', type: { 1: { name: 'apiVersion', type: 'string' }, 2: { name: 'kind', type: 'string' } } },
      2: { name: 'raw', type: 'bytes' },
    });
    const typeMeta = (unknown.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
    const schema = schemas[typeMeta.kind ?? ''];
    if (!schema)
      throw new ApiError(415, 'UnsupportedMediaType', `protobuf is supported only for ${Object.keys(schemas).join(', ')}; send application/json for kind "${typeMeta.kind ?? ''}"`);
    const raw = Buffer.from(String(unknown.raw ?? ''), 'base64');
    return { apiVersion: typeMeta.apiVersion, kind: typeMeta.kind, ...decodeMessage(raw, schema) };
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError(400, 'BadRequest', `cannot decode protobuf body: ${error instanceof Error ? error.message : String(error)}`);
  }
}
