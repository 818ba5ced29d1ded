/**
 * apps/v1 strategies: Deployment, ReplicaSet, DaemonSet, ControllerRevision. Defaults follow
 * k8s.io/kubernetes/pkg/apis/apps/v1/defaults.go (replicas 1, RollingUpdate 25 %/25 %,
 * revisionHistoryLimit 10, progressDeadlineSeconds 600; DaemonSet maxUnavailable 1 / maxSurge 0),
 * validation pkg/apis/apps/validation (field paths as kube-apiserver reports them).
 */
import type { StatusCause } from './status.js';
import type { KObject } from './storage/types.js';
import { checkMetadata, forbidden, invalidValue, required, unsupported } from './validation.js';
import { canonicalJson } from './util.js';
import { type WorkloadStrategy, clearStatus, checkIntOrPercent, defaultTemplate, immutableSelector, nonNegativeInt, obj, scaledValue, validateSelector, validateTemplate } from './kinds-workload.js';

function defaultDeployment(d: KObject): void {
  const spec = obj(d.spec);
  d.spec = spec;
  spec.replicas ??= 1;
  const strategy = obj(spec.strategy);
  spec.strategy = strategy;
  strategy.type ??= 'RollingUpdate';
  if (strategy.type === 'RollingUpdate') {
    const ru = obj(strategy.rollingUpdate);
    ru.maxUnavailable ??= '25%';
    ru.maxSurge ??= '25%';
    strategy.rollingUpdate = ru;
  }
  spec.revisionHistoryLimit ??= 10;
  spec.progressDeadlineSeconds ??= 600;
  spec.template = defaultTemplate(spec.template);
}

function validateRollingUpdate(field: string, ru: Record<string, unknown>, surgeName = 'maxSurge'): StatusCause[] {
  const causes = [...checkIntOrPercent(`${field}.maxUnavailable`, ru.maxUnavailable), ...checkIntOrPercent(`${field}.${surgeName}`, ru[surgeName])];
  if (causes.length === 0 && scaledValue(ru.maxUnavailable, 100, false) === 0 && scaledValue(ru[surgeName], 100, true) === 0 && ru.maxUnavailable !== undefined)
    causes.push(invalidValue(`${field}.maxUnavailable`, ru.maxUnavailable, `may not be 0 when \`${surgeName}\` is 0`));
  return causes;
}

function validateDeployment(d: KObject, old: KObject | undefined): StatusCause[] {
  const causes = checkMetadata(d, 'subdomain');
  const spec = obj(d.spec);
  causes.push(...nonNegativeInt('spec.replicas', spec.replicas), ...validateSelector('spec.selector', spec.selector));
  causes.push(...validateTemplate('spec.template', spec.template, spec.selector, ['Always']));
  const strategy = obj(spec.strategy);
  if (!['RollingUpdate', 'Recreate'].includes(String(strategy.type))) causes.push(unsupported('spec.strategy.type', strategy.type, ['Recreate', 'RollingUpdate']));
  if (strategy.type === 'Recreate' && strategy.rollingUpdate !== undefined && strategy.rollingUpdate !== null)
    causes.push(forbidden('spec.strategy.rollingUpdate', "may not be specified when strategy `type` is 'Recreate'"));
  if (strategy.type === 'RollingUpdate') causes.push(...validateRollingUpdate('spec.strategy.rollingUpdate', obj(strategy.rollingUpdate)));
  causes.push(...nonNegativeInt('spec.revisionHistoryLimit', spec.revisionHistoryLimit), ...nonNegativeInt('spec.minReadySeconds', spec.minReadySeconds));
  causes.push(...nonNegativeInt('spec.progressDeadlineSeconds', spec.progressDeadlineSeconds));
  if (typeof spec.progressDeadlineSeconds === 'number' && typeof spec.minReadySeconds === 'number' && spec.progressDeadlineSeconds <= spec.minReadySeconds)
    causes.push(invalidValue('spec.progressDeadlineSeconds', spec.progressDeadlineSeconds, 'must be greater than minReadySeconds'));
  const rollbackTo = spec.rollbackTo;
  if (rollbackTo !== undefined) causes.push(forbidden('spec.rollbackTo', 'not supported in apps/v1'));
  return [...causes, ...immutableSelector(d, old)];
}

function defaultReplicaSet(rs: KObject): void {
  const spec = obj(rs.spec);
  rs.spec = spec;
  spec.replicas ??= 1;
  spec.template = defaultTemplate(spec.template);
}

function validateReplicaSet(rs: KObject, old: KObject | undefined): StatusCause[] {
  const causes = checkMetadata(rs, 'subdomain');
  const spec = obj(rs.spec);
  causes.push(...nonNegativeInt('spec.replicas', spec.replicas), ...nonNegativeInt('spec.minReadySeconds', spec.minReadySeconds));
  causes.push(...validateSelector('spec.selector', spec.selector));
  causes.push(...validateTemplate('spec.template', spec.template, spec.selector, ['Always']));
  return [...causes, ...immutableSelector(rs, old)];
}

function defaultDaemonSet(ds: KObject): void {
  const spec = obj(ds.spec);
  ds.spec = spec;
  const strategy = obj(spec.updateStrategy);
  spec.updateStrategy = strategy;
  strategy.type ??= 'RollingUpdate';
  if (strategy.type === 'RollingUpdate') {
    const ru = obj(strategy.rollingUpdate);
    ru.maxUnavailable ??= 1;
    ru.maxSurge ??= 0;
    strategy.rollingUpdate = ru;
  }
  spec.revisionHistoryLimit ??= 10;
  spec.template = defaultTemplate(spec.template);
}

function validateDaemonSet(ds: KObject, old: KObject | undefined): StatusCause[] {
  const causes = checkMetadata(ds, 'subdomain');
  const spec = obj(ds.spec);
  causes.push(...validateSelector('spec.selector', spec.selector));
  causes.push(...validateTemplate('spec.template', spec.template, spec.selector, ['Always']));
  const strategy = obj(spec.updateStrategy);
  if (!['RollingUpdate', 'OnDelete'].includes(String(strategy.type))) causes.push(unsupported('spec.updateStrategy.type', strategy.type, ['OnDelete', 'RollingUpdate']));
  if (strategy.type === 'RollingUpdate') causes.push(...validateRollingUpdate('spec.updateStrategy.rollingUpdate', obj(strategy.rollingUpdate)));
  causes.push(...nonNegativeInt('spec.revisionHistoryLimit', spec.revisionHistoryLimit), ...nonNegativeInt('spec.minReadySeconds', spec.minReadySeconds));
  return [...causes, ...immutableSelector(ds, old)];
}

function validateControllerRevision(cr: KObject, old: KObject | undefined): StatusCause[] {
  const causes = checkMetadata(cr, 'subdomain');
  if (cr.revision === undefined) causes.push(required('revision'));
  else causes.push(...nonNegativeInt('revision', cr.revision));
  if (old && canonicalJson(cr.data) !== canonicalJson(old.data)) causes.push(invalidValue('data', '<data>', 'field is immutable'));
  return causes;
}

export const appsStrategies: Record<string, WorkloadStrategy> = {
  Deployment: { defaults: defaultDeployment, prepareForCreate: clearStatus, validate: validateDeployment },
  ReplicaSet: { defaults: defaultReplicaSet, prepareForCreate: clearStatus, validate: validateReplicaSet },
  DaemonSet: { defaults: defaultDaemonSet, prepareForCreate: clearStatus, validate: validateDaemonSet },
  ControllerRevision: { validate: validateControllerRevision },
};
