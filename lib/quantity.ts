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

const decimalSuffixes = ['n', 'u', 'm', '', 'k', 'M', 'G', 'T', 'P', 'E'];

/** `value` × 1000^(index − 3) with the largest suffix that keeps it whole (apimachinery's canonical DecimalSI). */
function decimalQuantity(value: bigint, index: number): string {
  if (value === 0n) return '0';
  while (index < decimalSuffixes.length - 1 && value % 1000n === 0n) {
    value /= 1000n;
    index++;
  }
  return `${value}${decimalSuffixes[index]}`;
}

/** A quantity of nano-units (CPU in nano-cores) in canonical DecimalSI form: 123456n, 5m, 2. */
export function formatNanoQuantity(nano: number): string {
  return decimalQuantity(BigInt(Math.max(0, Math.floor(nano))), 0);
}

/**
 * Bytes as a BinarySI quantity in canonical form, as resource.Quantity.String() prints it: the
 * largest binary unit that keeps an integer ("104857600" → "100Mi"); below 1024 or not a
 * multiple of 1024, decimal ("1000", "12345k").
 */
export function formatBytes(bytes: number): string {
  let value = BigInt(Math.max(0, Math.round(bytes)));
  if (value < 1024n) return `${value}`;
  if (value % 1024n !== 0n) return decimalQuantity(value, 3);
  const units = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];
  let index = 0;
  while (index < units.length - 1 && value % 1024n === 0n) {
    value /= 1024n;
    index++;
  }
  return `${value}${units[index]}`;
}
