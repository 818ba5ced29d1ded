/**
 * The nesting bound of decoded input (API request bodies, stored objects, static pod
 * manifests). sigs.k8s.io/json stops at 10000 levels, but here the recursive structuredClone
 * (also what carries a worker's answer back to the main thread), JSON.stringify with a replacer
 * and the patch and table code must survive every value with stack to spare: they overflow
 * from about 2,000 levels (issue 25 item 4), so the limit is well below that. Real Kubernetes
 * objects nest < 30 deep.
 */
export const maxNestingDepth = 1_000;

/**
 * What is wrong with a decoded value's shape, or undefined: nested deeper than `max`, or a
 * `__proto__` key anywhere (no Kubernetes type has one, and code that copies fields by
 * assignment would turn it into a prototype change). Iterative, so that hostile input cannot
 * exhaust the stack here. Self-contained (references nothing outside itself): it also runs in
 * the static pod manifest decoder's worker thread from its source text.
 */
export function nestingProblem(value: unknown, max: number): string | undefined {
  const stack: [unknown, number][] = [[value, 1]];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [node, depth] = top;
    if (typeof node !== 'object' || node === null) continue;
    if (depth > max) return `is nested too deeply (more than ${max} levels)`;
    if (!Array.isArray(node) && Object.prototype.hasOwnProperty.call(node, '__proto__')) return 'has a field named "__proto__", which is not allowed';
    for (const child of Array.isArray(node) ? node : Object.values(node)) if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
  }
  return undefined;
}
