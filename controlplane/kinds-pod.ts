/**
 * Pod strategy and validation (pkg/registry/core/pod/strategy.go, pkg/apis/core/validation, the
 * subset that clients observe): defaulting is defaults-core.ts; the pod spec is immutable after
 * creation except images, activeDeadlineSeconds and added tolerations.
 */
import { podQosClass } from '../lib/k8s/qos.js';
import type { StatusCause } from './status.js';
import { canonicalJson, isOneOf, isRecord, podView, recordOf, recordsOf } from './util.js';
import { defaultPod, defaultTolerationSeconds } from './defaults-core.js';

export { defaultPod, defaultPullPolicy } from './defaults-core.js';
import type { KObject } from './storage/types.js';
import type { KindStrategy } from './strategy.js';
import { prepareResize, validateContainerResources, validatePodResize } from './pod-resize.js';
import { checkMetadata, checkName, checkPort, checkProtocol, duplicate, forbidden, invalidValue, required, unsupported } from './validation.js';

type Obj = Record<string, unknown>;

function asObj(value: unknown): Obj | undefined {
  return isRecord(value) ? value : undefined;
}

const handlerTypes = ['exec', 'httpGet', 'tcpSocket', 'sleep'];

/**
 * validateHandler / validateSleepAction: exactly one handler type; a sleep of 0 up to the grace
 * period (PodLifecycleSleepActionAllowZero, GA in 1.34, KEP-4818: "must be non-negative").
 */
function checkLifecycle(path: string, lifecycle: unknown, grace: unknown): StatusCause[] {
  const causes: StatusCause[] = [];
  for (const hook of ['postStart', 'preStop']) {
    const handler = asObj(asObj(lifecycle)?.[hook]);
    if (!handler) continue;
    const field = `${path}.lifecycle.${hook}`;
    const present = handlerTypes.filter((type) => handler[type] !== undefined && handler[type] !== null);
    if (present.length === 0) causes.push({ ...required(field), message: 'Required value: must specify a handler type' });
    for (const extra of present.slice(1)) causes.push(forbidden(`${field}.${extra}`, 'may not specify more than 1 handler type'));
    if (present[0] !== 'sleep') continue;
    const seconds = asObj(handler.sleep)?.seconds;
    const limit = typeof grace === 'number' ? grace : Infinity;
    if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 0 || seconds > limit)
      causes.push(invalidValue(`${field}.sleep`, seconds, `must be non-negative and less than terminationGracePeriodSeconds (${String(grace)})`));
  }
  return causes;
}

function checkContainers(field: string, list: unknown, requireOne: boolean, names: Set<string>, grace: unknown): StatusCause[] {
  if (list === undefined && !requireOne) return [];
  if (!Array.isArray(list) || (requireOne && list.length === 0)) return [required(field)];
  const causes: StatusCause[] = [];
  list.forEach((raw, index) => {
    const path = `${field}[${index}]`;
    const container = asObj(raw);
    if (!container) {
      causes.push(invalidValue(path, raw, 'must be an object'));
      return;
    }
    if (typeof container.name !== 'string' || container.name === '') causes.push(required(`${path}.name`));
    else {
      causes.push(...checkName(`${path}.name`, container.name, 'label'));
      if (names.has(container.name)) causes.push(duplicate(`${path}.name`, container.name));
      names.add(container.name);
    }
    if (typeof container.image !== 'string' || container.image.trim() === '') causes.push(required(`${path}.image`));
    causes.push(...validateContainerResources(path, container));
    if (container.lifecycle !== undefined) causes.push(...checkLifecycle(path, container.lifecycle, grace));
    if (container.imagePullPolicy !== undefined && !isOneOf(container.imagePullPolicy, ['Always', 'IfNotPresent', 'Never']))
      causes.push(unsupported(`${path}.imagePullPolicy`, container.imagePullPolicy, ['Always', 'IfNotPresent', 'Never']));
    if (container.ports !== undefined) {
      if (!Array.isArray(container.ports)) causes.push(invalidValue(`${path}.ports`, container.ports, 'must be a list'));
      else
        container.ports.forEach((port, portIndex) => {
          const p = asObj(port) ?? {};
          causes.push(...checkPort(`${path}.ports[${portIndex}].containerPort`, p.containerPort));
          if (p.hostPort !== undefined && p.hostPort !== 0) causes.push(...checkPort(`${path}.ports[${portIndex}].hostPort`, p.hostPort));
          causes.push(...checkProtocol(`${path}.ports[${portIndex}].protocol`, p.protocol));
        });
    }
  });
  return causes;
}

export function validatePod(pod: KObject): StatusCause[] {
  const causes = checkMetadata(pod, 'subdomain');
  const spec = asObj(pod.spec);
  if (!spec) return [...causes, required('spec')];
  const names = new Set<string>();
  causes.push(...checkContainers('spec.containers', spec.containers, true, names, spec.terminationGracePeriodSeconds));
  causes.push(...checkContainers('spec.initContainers', spec.initContainers, false, names, spec.terminationGracePeriodSeconds));
  if (!isOneOf(spec.restartPolicy, ['Always', 'OnFailure', 'Never']))
    causes.push(unsupported('spec.restartPolicy', spec.restartPolicy, ['Always', 'Never', 'OnFailure']));
  if (!isOneOf(spec.dnsPolicy, ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None']))
    causes.push(unsupported('spec.dnsPolicy', spec.dnsPolicy, ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None']));
  const grace = spec.terminationGracePeriodSeconds;
  if (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 0)
    causes.push(invalidValue('spec.terminationGracePeriodSeconds', grace, 'must be greater than or equal to 0'));
  if (spec.nodeName !== undefined && (typeof spec.nodeName !== 'string' || (spec.nodeName !== '' && checkName('spec.nodeName', spec.nodeName, 'subdomain').length > 0)))
    causes.push(invalidValue('spec.nodeName', spec.nodeName, 'must be a valid node name'));
  return causes;
}

/** Which spec fields an update may change (validation.ValidatePodUpdate). */
export function validatePodUpdate(pod: KObject, old: KObject): StatusCause[] {
  const causes = validatePod(pod);
  const strip = (spec: unknown): Obj => {
    const copy = structuredClone(recordOf(spec));
    for (const list of ['containers', 'initContainers']) for (const c of recordsOf(copy[list])) delete c.image;
    delete copy.activeDeadlineSeconds;
    delete copy.tolerations;
    return copy;
  };
  if (canonicalJson(strip(pod.spec)) !== canonicalJson(strip(old.spec)))
    causes.push(
      forbidden(
        'spec',
        'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
      ),
    );
  return causes;
}

/** QoS class (https://kubernetes.io/docs/concepts/workloads/pods/pod-qos/). */
/** pkg/registry/core/pod/strategy.go. */
export const podStrategy: KindStrategy = {
  defaults: defaultPod,
  // Status is not client-settable on create.
  prepareForCreate(pod) {
    defaultTolerationSeconds(pod);
    pod.status = { phase: 'Pending', qosClass: podQosClass(podView(pod)) };
  },
  // A bound pod stays bound: an update without spec.nodeName keeps the node.
  prepareForUpdate(pod, old) {
    const spec = asObj(pod.spec);
    const oldSpec = asObj(old.spec);
    if (spec && oldSpec && !spec.nodeName && oldSpec.nodeName) spec.nodeName = oldSpec.nodeName;
  },
  // pods/resize (KEP-1287): the ResizeStrategy takes only resources and resizePolicy from the body.
  prepareForSubresourceUpdate: (subresource, pod, old) => (subresource === 'resize' ? prepareResize(pod, old) : undefined),
  validate(pod, old, subresource) {
    if (!old) return validatePod(pod);
    if (subresource === 'resize') return [...validatePod(pod), ...validatePodResize(pod, old)];
    return validatePodUpdate(pod, old);
  },
  // CheckGracefulDelete: unbound or finished pods go at once; a negative request means the
  // minimum, which kube-apiserver turns into 1.
  checkGracefulDelete(pod, requested) {
    const spec = asObj(pod.spec) ?? {};
    const phase = asObj(pod.status)?.phase;
    if (!spec.nodeName) return 0;
    if (phase === 'Succeeded' || phase === 'Failed') return 0;
    const fromSpec = typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : undefined;
    const grace = requested ?? fromSpec ?? 30;
    return grace < 0 ? 1 : grace;
  },
  returnsDeletedObject: true,
};
