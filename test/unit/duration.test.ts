import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../lib/duration.js';

describe('parseDuration (Go time.ParseDuration)', () => {
  it.each([
    ['10s', 10_000],
    ['1m30s', 90_000],
    ['1m0s', 60_000],
    ['300ms', 300],
    ['2h45m', 9_900_000],
    ['1.5h', 5_400_000],
    ['0', 0],
    ['0s', 0],
    ['-1m', -60_000],
    ['100us', 0.1],
    ['1000000ns', 1],
    ['4h0m0s', 14_400_000],
  ])('%s → %d ms', (text, expected) => {
    expect(parseDuration(text)).toBeCloseTo(expected, 9);
  });

  it.each(['', '10', '1x', 's', '1m30', '10 s', 'ten seconds', '1d'])('rejects %j', (text) => {
    expect(() => parseDuration(text)).toThrow(/invalid duration/);
  });

  it('formats like Go', () => {
    expect(formatDuration(90_000)).toBe('1m30s');
    expect(formatDuration(500)).toBe('500ms');
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(3_600_000)).toBe('1h0m0s');
  });
});
