/** zod field types shared by the config schemas: durations, quantities, thresholds. */
import { z } from 'zod';
import { parseDuration } from '../duration.js';
import { parseNonNegativeQuantity, parseThresholdValue } from '../quantity.js';
import { describeError } from '../errors.js';

/** A Go duration string ("1m30s"), carried as milliseconds; negative is invalid. */
export const duration = z.union([z.string(), z.number()]).transform((text, ctx) => {
  if (typeof text === 'number') {
    ctx.addIssue({ code: 'custom', message: `invalid duration ${text}: needs a unit, e.g. "${text}s"`, input: text });
    return z.NEVER;
  }
  try {
    const ms = parseDuration(text);
    if (ms < 0) throw new Error(`duration "${text}" must not be negative`);
    return ms;
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: describeError(error), input: text });
    return z.NEVER;
  }
});

/** A resource quantity ("100Mi"), validated and kept as written. */
export const quantity = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const text = String(value);
  try {
    parseNonNegativeQuantity(text);
    return text;
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: describeError(error), input: value });
    return z.NEVER;
  }
});

/** A quantity or a percentage ("10%"), validated and kept as written. */
export const thresholdValue = z.string().transform((text, ctx) => {
  try {
    parseThresholdValue(text);
    return text;
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: describeError(error), input: text });
    return z.NEVER;
  }
});

export const port = z.number().int().min(0).max(65535);
export const percent = z.number().int().min(0).max(100);

/** Resource name → quantity, as kubeReserved/systemReserved. */
export const resourceList = z.record(z.string(), quantity);

/** "host:port" or ":port" with a valid port. */
export const hostPort = z.string().refine((text) => {
  const index = text.lastIndexOf(':');
  if (index < 0) return false;
  const portText = text.slice(index + 1);
  return /^\d+$/.test(portText) && Number(portText) <= 65535;
}, 'must be "host:port"');
