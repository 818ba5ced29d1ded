import { describe, expect, it } from 'vitest';
import { formatBytes, parseMilliCPU, parseQuantity, parseThresholdValue } from '../../lib/quantity.js';

describe('parseQuantity', () => {
  it.each([
    ['100Mi', 100 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['1.5Gi', 1.5 * 2 ** 30],
    ['128974848', 128974848],
    ['129M', 129e6],
    ['123k', 123000],
    ['250m', 0.25],
    ['1e3', 1000],
    ['1E-2', 0.01],
    ['0', 0],
    ['-5Mi', -5 * 2 ** 20],
    ['.5', 0.5],
  ])('%s → %d', (text, expected) => {
    expect(parseQuantity(text)).toBeCloseTo(expected, 9);
  });

  it.each(['', 'Mi', '100MB', '1.2.3', '10 Mi', 'abc', '100Mx', '1Ki2'])('rejects %j', (text) => {
    expect(() => parseQuantity(text)).toThrow(/invalid quantity/);
  });

  it('parses CPU into millicores', () => {
    expect(parseMilliCPU('250m')).toBe(250);
    expect(parseMilliCPU('2')).toBe(2000);
    expect(parseMilliCPU('0.1')).toBe(100);
  });
});

describe('parseThresholdValue', () => {
  it('reads percentages and quantities', () => {
    expect(parseThresholdValue('10%')).toEqual({ percentage: 0.1 });
    expect(parseThresholdValue('7.5%')).toEqual({ percentage: 0.075 });
    expect(parseThresholdValue('100Mi')).toEqual({ quantity: 100 * 2 ** 20 });
  });

  it.each(['-1Mi', '110%', 'x%', '%'])('rejects %j', (text) => {
    expect(() => parseThresholdValue(text)).toThrow();
  });
});

describe('formatBytes', () => {
  it('uses the largest whole binary unit', () => {
    expect(formatBytes(100 * 2 ** 20)).toBe('100Mi');
    expect(formatBytes(2 ** 30)).toBe('1Gi');
    expect(formatBytes(1000)).toBe('1000');
  });
});
