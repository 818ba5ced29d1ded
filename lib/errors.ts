/** Errors that the CLI turns into a one-line message and a specific exit code. */

/** A config file (or flag value) is invalid. The CLI exits with code 2. */
export class ConfigError extends Error {
  readonly exitCode = 2;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

/** Message of an unknown thrown value, with its causes ("a: b: c"). */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth < 5; depth++) {
    const message = current instanceof Error ? current.message : String(current);
    if (!parts.some((part) => part.includes(message))) parts.push(message);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(': ');
}

/** The errno code (ENOENT, ESRCH, EBUSY …) of a Node system error; undefined for anything else. */
export function errnoCode(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as NodeJS.ErrnoException).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A rejection handler for an expected failure: `value` when the error is a system error with one
 * of `codes` (ENOENT: an optional file that is absent; EBUSY …), anything else is rethrown, so an
 * unexpected failure still reaches the code that logs it.
 */
export function onErrno<T>(codes: readonly string[], value: T): (error: unknown) => T {
  return (error) => {
    const code = errnoCode(error);
    if (code !== undefined && codes.includes(code)) return value;
    throw error;
  };
}
