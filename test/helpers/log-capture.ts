/** A pino logger whose JSON lines a test can read back. */
import { PassThrough } from 'node:stream';
import { createLogger, type Logger } from '../../lib/log.js';

export function capturingLog(component = 'test', level = 'info'): { log: Logger; lines: () => Array<Record<string, unknown>> } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  return {
    log: createLogger(component, level, stream),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
