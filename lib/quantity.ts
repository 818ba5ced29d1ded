/**
 * Kubernetes resource quantities ("100Mi", "1.5Gi", "250m", "1e3") and the percentage form
 * that eviction thresholds accept ("10%"). Grammar from k8s.io/apimachinery resource.Quantity:
 * <signedNumber><suffix> where suffix is binarySI (Ki..Ei), decimalSI (n u m "" k M G T P E)
 * or a decimal exponent (e3, E-2).
 */

const binarySI: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const decimalSI: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

const quantityPattern = /^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

/** Parses a quantity into a plain number (bytes, cores, count). Throws on bad syntax. */
export function parseQuantity(text: string): number {
  const trimmed = String(text).trim();
  const match = quantityPattern.exec(trimmed);
  if (!match) throw new Error(`invalid quantity "${text}"`);
  const value = Number(match[1]);
  const suffix = match[2] ?? '';
  if (suffix in binarySI) return value * binarySI[suffix]!;
  if (suffix in decimalSI) return value * decimalSI[suffix]!;
  return value * 10 ** Number(suffix.slice(1));
}

/** A quantity that must not be negative (capacities, reservations, thresholds). */
export function parseNonNegativeQuantity(text: string): number {
  const value = parseQuantity(text);
  if (value < 0) throw new Error(`quantity "${text}" must not be negative`);
  return value;
}

/** Parses CPU into millicores ("250m" → 250, "2" → 2000). */
export function parseMilliCPU(text: string): number {
  return Math.round(parseQuantity(text) * 1000);
}

export type ThresholdValue = { quantity: number } | { percentage: number };

/** Eviction threshold value: a quantity or a percentage of capacity ("10%" → 0.1). */
export function parseThresholdValue(text: string): ThresholdValue {
  const trimmed = String(text).trim();
  if (trimmed.endsWith('%')) {
    const number = trimmed.slice(0, -1);
    if (!/^\d+(\.\d+)?$/.test(number)) throw new Error(`invalid percentage "${text}"`);
    const percent = Number(number);
    if (percent > 100) throw new Error(`percentage "${text}" is over 100%`);
    return { percentage: percent / 100 };
  }
  return { quantity: parseNonNegativeQuantity(trimmed) };
}

/** Formats bytes in the largest binary unit that keeps an integer ("104857600" → "100Mi"). */
export function formatBytes(bytes: number): string {
  const units = ['Ei', 'Pi', 'Ti', 'Gi', 'Mi', 'Ki'];
  for (const unit of units) {
    const size = binarySI[unit]!;
    if (bytes !== 0 && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(Math.round(bytes));
}
