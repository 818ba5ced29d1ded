/**
 * failSwapOn (pkg/kubelet/cm/container_manager_linux.go NewContainerManager): the kubelet refuses
 * to start when /proc/swaps lists an active swap device and failSwapOn is true, with
 * "running with swap on is not supported, please disable swap or set --fail-swap-on flag to false".
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../../lib/errors.js';

/** The swap devices /proc/swaps lists (its first line is the header). */
export function activeSwaps(procSwaps: string): string[] {
  return procSwaps
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

/**
 * Throws when swap is on and failSwapOn is set; returns the active devices otherwise. A missing
 * /proc/swaps (no swap support in the kernel) means no swap, as the kubelet reads it.
 */
export async function checkSwap(failSwapOn: boolean, file = '/proc/swaps'): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot read ${file}`, { cause: error });
  }
  const swaps = activeSwaps(text);
  if (failSwapOn && swaps.length > 0) {
    throw new ConfigError(`running with swap on is not supported, please disable swap or set failSwapOn to false in the KubeletConfiguration (${file} lists ${swaps.join(', ')})`);
  }
  return swaps;
}
