import { describe, expect, it } from 'vitest';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, SelectorError } from '../../controlplane/selectors.js';

const labels = { app: 'web', tier: 'front', env: 'prod' };

describe('label selectors', () => {
  it.each([
    ['', true],
    ['app=web', true],
    ['app==web', true],
    ['app=db', false],
    ['app!=db', true],
    ['app!=web', false],
    ['missing!=x', true],
    ['app in (web,db)', true],
    ['app in (db)', false],
    ['app notin (db, cache)', true],
    ['app notin (web)', false],
    ['missing notin (web)', true],
    ['tier', true],
    ['missing', false],
    ['!missing', true],
    ['!tier', false],
    ['app=web,tier=front', true],
    ['app=web,tier=back', false],
    ['app in (web, db),!missing,env', true],
  ])('%s -> %s', (selector, expected) => {
    expect(matchesLabels(parseLabelSelector(selector), labels)).toBe(expected);
  });

  it.each(['app in (web', 'app=web,', '=x', 'a b c', 'app=bad value', 'app=-x'])('rejects %s', (selector) => {
    expect(() => parseLabelSelector(selector)).toThrow(SelectorError);
  });

  it('treats absent labels as empty', () => {
    expect(matchesLabels(parseLabelSelector('!app'), undefined)).toBe(true);
    expect(matchesLabels(parseLabelSelector('app'), undefined)).toBe(false);
  });
});

describe('field selectors', () => {
  const pod = { metadata: { name: 'p', namespace: 'ns' }, spec: { nodeName: 'n1' }, status: { phase: 'Running' } };
  it.each([
    ['metadata.name=p', true],
    ['metadata.name!=p', false],
    ['metadata.namespace==ns', true],
    ['spec.nodeName=n1,status.phase=Running', true],
    ['spec.nodeName=', false],
    ['status.phase!=Succeeded,status.phase!=Failed', true],
  ])('%s -> %s', (selector, expected) => {
    expect(matchesFields(parseFieldSelector(selector), pod)).toBe(expected);
  });

  it('matches an empty nodeName for unscheduled pods', () => {
    expect(matchesFields(parseFieldSelector('spec.nodeName='), { metadata: { name: 'x' }, spec: {} })).toBe(true);
  });

  it.each(['spec.foo=1', 'metadata.name', 'x'])('rejects %s', (selector) => {
    expect(() => parseFieldSelector(selector)).toThrow(SelectorError);
  });
});
