import { describe, expect, it } from 'vitest';
import { checkFields, parseFieldValidation, unknownFields } from '../../controlplane/field-validation.js';
import { ApiError } from '../../controlplane/status.js';

describe('field validation', () => {
  it.each<[string, unknown, string[]]>([
    ['Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', labels: {} }, spec: { containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 80 }] }] } }, []],
    ['Pod', { metadata: { nmae: 'p' }, spec: { contianers: [] } }, ['metadata.nmae', 'spec.contianers']],
    ['Pod', { spec: { containers: [{ name: 'c' }, { name: 'd', imagee: 'x', ports: [{ contanerPort: 1 }] }] } }, ['spec.containers[1].imagee', 'spec.containers[1].ports[0].contanerPort']],
    ['Pod', { spec: { '$setElementOrder/containers': [], containers: [{ name: 'c', $patch: 'delete' }] } }, []],
    ['Service', { spec: { ports: [{ port: 80, targetport: 8080 }], selectr: {} } }, ['spec.selectr', 'spec.ports[0].targetport']],
    ['ConfigMap', { data: {}, spec: {} }, ['spec']],
    ['Unknown', { anything: 1 }, []],
  ])('%s %j', (kind, body, expected) => {
    expect(unknownFields(kind, body)).toEqual(expected);
  });

  it('Strict fails, Warn warns, Ignore ignores', () => {
    const body = { spec: { containers: [{ name: 'c', imagee: 'x' }] } };
    expect(() => checkFields('Pod', 'v1', body, 'Strict')).toThrow(ApiError);
    expect(checkFields('Pod', 'v1', body, 'Warn')).toEqual(['unknown field "spec.containers[0].imagee"']);
    expect(checkFields('Pod', 'v1', body, 'Ignore')).toEqual([]);
    expect(parseFieldValidation(null)).toBe('Warn');
    expect(() => parseFieldValidation('Loose')).toThrow(ApiError);
  });
});
