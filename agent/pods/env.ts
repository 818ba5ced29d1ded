/**
 * Container environment, as the kubelet builds it (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables):
 * envFrom sources first (configMap/secret, with prefix; keys that are not valid variable names are
 * skipped and reported), then env entries in order; each value's $(VAR) references are expanded
 * against what is defined so far (third_party/forked/golang/expansion: "$$" escapes, unknown
 * references stay as written). A missing non-optional configMap/secret or key is a
 * CreateContainerConfigError. The referenced objects are fetched by the caller; this is pure.
 */
import type { V1ConfigMap, V1Container, V1Pod, V1Secret } from '@kubernetes/client-node';
import { parseQuantity } from '../../lib/quantity.js';

export class ContainerConfigError extends Error {
  readonly reason = 'CreateContainerConfigError';
  constructor(message: string) {
    super(message);
    this.name = 'ContainerConfigError';
  }
}

/** Expands $(VAR) in text against lookup. */
export function expandVars(text: string, lookup: (name: string) => string | undefined): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch !== '$' || i + 1 >= text.length) {
      out += ch;
      continue;
    }
    const next = text[i + 1]!;
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const end = text.indexOf(')', i + 2);
      if (end < 0) {
        out += text.slice(i);
        break;
      }
      const name = text.slice(i + 2, end);
      const value = name === '' ? undefined : lookup(name);
      out += value ?? `$(${name})`;
      i = end;
    } else {
      out += ch;
    }
  }
  return out;
}

/** Expands command/args with the final environment (kubecontainer.ExpandContainerCommandAndArgs). */
export function expandCommand(list: readonly string[] | undefined, env: ReadonlyMap<string, string>): string[] | undefined {
  return list?.map((item) => expandVars(item, (name) => env.get(name)));
}

export interface EnvObjects {
  configMap(name: string): V1ConfigMap | undefined;
  secret(name: string): V1Secret | undefined;
}

export interface EnvContext {
  nodeName: string;
  hostIP?: string;
  hostIPs?: string[];
  podIP?: string;
  podIPs?: string[];
  /** Node allocatable, used for resourceFieldRef limits that are unset. */
  allocatable?: { cpu?: string; memory?: string; 'ephemeral-storage'?: string };
}

const envVarName = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

function secretValue(secret: V1Secret, key: string): string | undefined {
  const data = secret.data?.[key];
  if (data !== undefined) return Buffer.from(data, 'base64').toString('utf8');
  return secret.stringData?.[key];
}

function secretKeys(secret: V1Secret): string[] {
  return [...new Set([...Object.keys(secret.data ?? {}), ...Object.keys(secret.stringData ?? {})])];
}

function configMapValue(configMap: V1ConfigMap, key: string): string | undefined {
  return configMap.data?.[key] ?? (configMap.binaryData?.[key] !== undefined ? Buffer.from(configMap.binaryData[key]!, 'base64').toString('utf8') : undefined);
}

const bracketed = /^metadata\.(labels|annotations)\['(.*)'\]$/;

/** Downward API fieldRef (pkg/fieldpath ExtractFieldPathAsString plus the kubelet's status fields). */
export function fieldRefValue(pod: V1Pod, fieldPath: string, context: EnvContext): string {
  const metadata = pod.metadata ?? {};
  const match = bracketed.exec(fieldPath);
  if (match) {
    const map = match[1] === 'labels' ? metadata.labels : metadata.annotations;
    return map?.[match[2]!] ?? '';
  }
  switch (fieldPath) {
    case 'metadata.name':
      return metadata.name ?? '';
    case 'metadata.namespace':
      return metadata.namespace ?? 'default';
    case 'metadata.uid':
      return metadata.uid ?? '';
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? context.nodeName;
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'status.hostIP':
      return context.hostIP ?? '';
    case 'status.hostIPs':
      return (context.hostIPs ?? (context.hostIP ? [context.hostIP] : [])).join(',');
    case 'status.podIP':
      return context.podIP ?? '';
    case 'status.podIPs':
      return (context.podIPs ?? (context.podIP ? [context.podIP] : [])).join(',');
    default:
      throw new ContainerConfigError(`unsupported fieldRef fieldPath "${fieldPath}"`);
  }
}

/** Downward API resourceFieldRef: the value divided by the divisor, rounded up (as the kubelet). */
export function resourceFieldValue(container: V1Container | undefined, resource: string, divisor: string | undefined, context: EnvContext): string {
  const [kind, name] = resource.split('.', 2) as [string, string | undefined];
  if (!container || (kind !== 'limits' && kind !== 'requests') || !name) throw new ContainerConfigError(`unsupported resourceFieldRef resource "${resource}"`);
  const list = (kind === 'limits' ? container.resources?.limits : container.resources?.requests) as Record<string, string> | undefined;
  let text = list?.[name];
  if (text === undefined && kind === 'limits') text = context.allocatable?.[name as 'cpu'];
  if (text === undefined && kind === 'requests') text = (container.resources?.limits as Record<string, string> | undefined)?.[name] ?? '0';
  const value = parseQuantity(String(text ?? '0'));
  const by = parseQuantity(divisor ?? (name === 'cpu' ? '1' : '1'));
  return String(Math.ceil(value / by - 1e-9));
}

/**
 * The environment of one container, in order, with $(VAR) expanded. `warnings` lists skipped
 * envFrom keys (the kubelet reports them as an event). Throws ContainerConfigError.
 */
export function buildEnvironment(pod: V1Pod, container: V1Container, objects: EnvObjects, context: EnvContext): { env: Map<string, string>; warnings: string[] } {
  const namespace = pod.metadata?.namespace ?? 'default';
  const env = new Map<string, string>();
  const warnings: string[] = [];
  for (const source of container.envFrom ?? []) {
    const prefix = source.prefix ?? '';
    let entries: [string, string][] = [];
    if (source.configMapRef) {
      const name = source.configMapRef.name ?? '';
      const configMap = objects.configMap(name);
      if (!configMap) {
        if (source.configMapRef.optional) continue;
        throw new ContainerConfigError(`configmap "${name}" not found`);
      }
      entries = [...Object.keys(configMap.data ?? {}), ...Object.keys(configMap.binaryData ?? {})].map((key) => [key, configMapValue(configMap, key) ?? '']);
    } else if (source.secretRef) {
      const name = source.secretRef.name ?? '';
      const secret = objects.secret(name);
      if (!secret) {
        if (source.secretRef.optional) continue;
        throw new ContainerConfigError(`secret "${name}" not found`);
      }
      entries = secretKeys(secret).map((key) => [key, secretValue(secret, key) ?? '']);
    }
    for (const [key, value] of entries.sort(([a], [b]) => (a < b ? -1 : 1))) {
      const name = prefix + key;
      if (!envVarName.test(name)) {
        warnings.push(`skipped invalid environment variable name "${name}" from envFrom in container "${container.name}"`);
        continue;
      }
      env.set(name, value);
    }
  }
  for (const variable of container.env ?? []) {
    env.set(variable.name, resolveEnvVar(pod, container, variable, objects, context, env, namespace));
  }
  return { env, warnings };
}

function resolveEnvVar(
  pod: V1Pod,
  container: V1Container,
  variable: NonNullable<V1Container['env']>[number],
  objects: EnvObjects,
  context: EnvContext,
  env: Map<string, string>,
  namespace: string,
): string {
  if (variable.value !== undefined) return expandVars(variable.value, (name) => env.get(name));
  const from = variable.valueFrom;
  if (!from) return '';
  if (from.configMapKeyRef) {
    const { name = '', key, optional } = from.configMapKeyRef;
    const configMap = objects.configMap(name);
    if (!configMap) {
      if (optional) return env.get(variable.name) ?? '';
      throw new ContainerConfigError(`configmap "${name}" not found`);
    }
    const value = configMapValue(configMap, key);
    if (value === undefined) {
      if (optional) return env.get(variable.name) ?? '';
      throw new ContainerConfigError(`couldn't find key ${key} in ConfigMap ${namespace}/${name}`);
    }
    return value;
  }
  if (from.secretKeyRef) {
    const { name = '', key, optional } = from.secretKeyRef;
    const secret = objects.secret(name);
    if (!secret) {
      if (optional) return env.get(variable.name) ?? '';
      throw new ContainerConfigError(`secret "${name}" not found`);
    }
    const value = secretValue(secret, key);
    if (value === undefined) {
      if (optional) return env.get(variable.name) ?? '';
      throw new ContainerConfigError(`couldn't find key ${key} in Secret ${namespace}/${name}`);
    }
    return value;
  }
  if (from.fieldRef) return fieldRefValue(pod, from.fieldRef.fieldPath, context);
  if (from.resourceFieldRef) {
    const ref = from.resourceFieldRef;
    const target = ref.containerName ? [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) => c.name === ref.containerName) : container;
    return resourceFieldValue(target, ref.resource, ref.divisor as string | undefined, context);
  }
  return '';
}

/** Names of the configMaps and secrets a pod reads (env, envFrom, volumes, projected volumes). */
export function referencedObjects(pod: V1Pod): { configMaps: string[]; secrets: string[] } {
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  for (const container of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const source of container.envFrom ?? []) {
      if (source.configMapRef?.name) configMaps.add(source.configMapRef.name);
      if (source.secretRef?.name) secrets.add(source.secretRef.name);
    }
    for (const variable of container.env ?? []) {
      if (variable.valueFrom?.configMapKeyRef?.name) configMaps.add(variable.valueFrom.configMapKeyRef.name);
      if (variable.valueFrom?.secretKeyRef?.name) secrets.add(variable.valueFrom.secretKeyRef.name);
    }
  }
  for (const volume of pod.spec?.volumes ?? []) {
    if (volume.configMap?.name) configMaps.add(volume.configMap.name);
    if (volume.secret?.secretName) secrets.add(volume.secret.secretName);
    for (const source of volume.projected?.sources ?? []) {
      if (source.configMap?.name) configMaps.add(source.configMap.name);
      if (source.secret?.name) secrets.add(source.secret.name);
    }
  }
  return { configMaps: [...configMaps].sort(), secrets: [...secrets].sort() };
}
