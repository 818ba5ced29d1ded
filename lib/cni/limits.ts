/**
 * Bounds on what a CNI caller can hand the plugin. Real network configurations (with a
 * prevResult) are a few KiB and about five levels deep; the limits leave ample room and keep a
 * hostile config from costing memory or a stack overflow (JSON.stringify recurses) later.
 */
import { CniError, ErrorCode } from './types.js';

/** Largest network configuration accepted on stdin. */
export const maxNetconfBytes = 1024 * 1024;
/** Deepest nesting of objects and arrays accepted. */
export const maxNetconfDepth = 64;

/** The deepest nesting in a JSON text, scanned without parsing (strings skipped). Pure, O(n). */
export function jsonNestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) deepest = Math.max(deepest, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

/** Throws code 4 when a network configuration is too large or nested too deeply. */
export function assertNetconfBounds(text: string): void {
  const bytes = Buffer.byteLength(text);
  if (bytes > maxNetconfBytes) throw new CniError(ErrorCode.invalidConfig, `network configuration is ${bytes} bytes, above the limit of ${maxNetconfBytes}`);
  const depth = jsonNestingDepth(text);
  if (depth > maxNetconfDepth) throw new CniError(ErrorCode.invalidConfig, `network configuration is nested ${depth} levels deep, above the limit of ${maxNetconfDepth}`);
}
