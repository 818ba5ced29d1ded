/**
 * Protobuf schemas of the workload kinds kubectl posts in protobuf (`kubectl create deployment|job|cronjob`),
 * field numbers from k8s.io/api apps/v1, batch/v1 and core/v1 generated.proto. Only what those
 * commands write is described (unknown fields are skipped by the decoder); anything richer is
 * sent as JSON or YAML by `kubectl apply`. Built from objectMeta handed in by protobuf.ts, which
 * imports this module (and its schema type), not the reverse.
 */
type FieldType = 'string' | 'bytes' | 'int' | 'bool' | 'time' | 'map' | 'bytesMap' | 'intOrString' | ProtoSchema;
export interface ProtoSchema {
  [field: number]: { name: string; type: FieldType; repeated?: boolean };
}

export function workloadSchemas(objectMeta: ProtoSchema): Record<string, ProtoSchema> {
  const labelSelector: ProtoSchema = {
    1: { name: 'matchLabels', type: 'map' },
    2: { name: 'matchExpressions', repeated: true, type: { 1: { name: 'key', type: 'string' }, 2: { name: 'operator', type: 'string' }, 3: { name: 'values', type: 'string', repeated: true } } },
  };
  const container: ProtoSchema = {
    1: { name: 'name', type: 'string' },
    2: { name: 'image', type: 'string' },
    3: { name: 'command', type: 'string', repeated: true },
    4: { name: 'args', type: 'string', repeated: true },
    5: { name: 'workingDir', type: 'string' },
    6: { name: 'ports', repeated: true, type: { 1: { name: 'name', type: 'string' }, 2: { name: 'hostPort', type: 'int' }, 3: { name: 'containerPort', type: 'int' }, 4: { name: 'protocol', type: 'string' } } },
    7: { name: 'env', repeated: true, type: { 1: { name: 'name', type: 'string' }, 2: { name: 'value', type: 'string' } } },
    13: { name: 'terminationMessagePath', type: 'string' },
    14: { name: 'imagePullPolicy', type: 'string' },
    20: { name: 'terminationMessagePolicy', type: 'string' },
  };
  const podSpec: ProtoSchema = {
    2: { name: 'containers', type: container, repeated: true },
    3: { name: 'restartPolicy', type: 'string' },
    6: { name: 'dnsPolicy', type: 'string' },
    7: { name: 'nodeSelector', type: 'map' },
    8: { name: 'serviceAccountName', type: 'string' },
    10: { name: 'nodeName', type: 'string' },
    19: { name: 'schedulerName', type: 'string' },
    20: { name: 'initContainers', type: container, repeated: true },
  };
  const template: ProtoSchema = { 1: { name: 'metadata', type: objectMeta }, 2: { name: 'spec', type: podSpec } };
  const jobSpec: ProtoSchema = {
    1: { name: 'parallelism', type: 'int' },
    2: { name: 'completions', type: 'int' },
    3: { name: 'activeDeadlineSeconds', type: 'int' },
    4: { name: 'selector', type: labelSelector },
    5: { name: 'manualSelector', type: 'bool' },
    6: { name: 'template', type: template },
    7: { name: 'backoffLimit', type: 'int' },
    8: { name: 'ttlSecondsAfterFinished', type: 'int' },
    9: { name: 'completionMode', type: 'string' },
    10: { name: 'suspend', type: 'bool' },
  };
  return {
    Deployment: {
      1: { name: 'metadata', type: objectMeta },
      2: {
        name: 'spec',
        type: {
          1: { name: 'replicas', type: 'int' },
          2: { name: 'selector', type: labelSelector },
          3: { name: 'template', type: template },
          4: { name: 'strategy', type: { 1: { name: 'type', type: 'string' }, 2: { name: 'rollingUpdate', type: { 1: { name: 'maxUnavailable', type: 'intOrString' }, 2: { name: 'maxSurge', type: 'intOrString' } } } } },
          5: { name: 'minReadySeconds', type: 'int' },
          6: { name: 'revisionHistoryLimit', type: 'int' },
          7: { name: 'paused', type: 'bool' },
          9: { name: 'progressDeadlineSeconds', type: 'int' },
        },
      },
    },
    Job: { 1: { name: 'metadata', type: objectMeta }, 2: { name: 'spec', type: jobSpec } },
    CronJob: {
      1: { name: 'metadata', type: objectMeta },
      2: {
        name: 'spec',
        type: {
          1: { name: 'schedule', type: 'string' },
          2: { name: 'startingDeadlineSeconds', type: 'int' },
          3: { name: 'concurrencyPolicy', type: 'string' },
          4: { name: 'suspend', type: 'bool' },
          5: { name: 'jobTemplate', type: { 1: { name: 'metadata', type: objectMeta }, 2: { name: 'spec', type: jobSpec } } },
          6: { name: 'successfulJobsHistoryLimit', type: 'int' },
          7: { name: 'failedJobsHistoryLimit', type: 'int' },
          8: { name: 'timeZone', type: 'string' },
        },
      },
    },
  };
}
