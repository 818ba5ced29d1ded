/**
 * Static pod manifests without blocking the event loop (issue 25 item 5: a 50 MB manifest
 * parsed on the main thread froze the agent for 50 s, its lease lapsed and the node went
 * NotReady). Two bounds:
 *
 * - Size: at most maxManifestBytes (10 MiB, the kubelet's maxConfigLength for static pod
 *   configs it fetches, pkg/kubelet/config/http.go); a larger file is refused from its size,
 *   before anything is read.
 * - Time on the main thread: a manifest above inlineParseBytes is decoded from YAML/JSON in a
 *   worker thread (with a heap cap and a deadline); only the validation of the decoded
 *   documents, which is linear and cheap, runs here.
 *
 * The worker runs manifest.ts's own yamlDocuments (from its source text), so there is one
 * decoder; it is evaluated as a script so that it works from the built output and from sources.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { V1Pod } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { maxNestingDepth, nestingProblem } from '../../lib/nesting.js';
import { ManifestError, podsFromDocuments, yamlDocuments } from './manifest.js';

/** The largest manifest accepted (bytes). */
export const maxManifestBytes = 10 * 1024 * 1024;
/** Manifests up to this size are decoded on the main thread (well under 50 ms). */
const inlineParseBytes = 64 * 1024;
/** A decode that takes longer than this is abandoned (the worker is terminated). */
const parseTimeoutMs = 30_000;

const yamlPath = createRequire(import.meta.url).resolve('yaml');
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const { parseAllDocuments } = require(workerData.yamlPath);
const yamlDocuments = (${yamlDocuments.toString()});
const nestingProblem = (${nestingProblem.toString()});
parentPort.postMessage(yamlDocuments(parseAllDocuments, nestingProblem, workerData.text, ${maxNestingDepth}));
// Stay until the main thread has the answer and terminates this worker: an exit right after
// postMessage may be seen before the message.
parentPort.on('message', () => undefined);
`;

type Decoded = { documents: unknown[] } | { error: string };

function decodeInWorker(text: string, source: string, timeoutMs: number): Promise<Decoded> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerSource, { eval: true, workerData: { yamlPath, text }, resourceLimits: { maxOldGenerationSizeMb: 1024, stackSizeMb: 4 } });
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new ManifestError(source, `decoding took longer than ${timeoutMs / 1000} s; refused`));
    }, timeoutMs);
    const settle = (): void => {
      clearTimeout(timer);
      void worker.terminate();
    };
    worker.once('message', (decoded: Decoded) => {
      settle();
      resolve(decoded);
    });
    worker.once('error', (error) => {
      settle();
      reject(new ManifestError(source, `cannot be decoded: ${error.message}`, { cause: error }));
    });
    // An answer this thread cannot deserialize (the depth bound should make this unreachable)
    // is an error now, not a silent wait for the deadline.
    worker.once('messageerror', (error) => {
      settle();
      reject(new ManifestError(source, `the decoded manifest cannot be passed back: ${error.message}`, { cause: error }));
    });
    worker.once('exit', (code) => {
      // After settle() this is the terminate() and changes nothing; before it, a crash.
      clearTimeout(timer);
      reject(new ManifestError(source, `decoder exited with code ${code} before answering`));
    });
  });
}

/** Decodes a manifest's YAML/JSON documents, off the main thread when large; rejects with ManifestError. */
export async function decodeManifestBounded(text: string, source: string, options: { timeoutMs?: number } = {}): Promise<unknown[]> {
  const bytes = Buffer.byteLength(text);
  if (bytes > maxManifestBytes) throw oversize(source, bytes);
  const decoded = bytes <= inlineParseBytes ? yamlDocuments(parseAllDocuments, nestingProblem, text, maxNestingDepth) : await decodeInWorker(text, source, options.timeoutMs ?? parseTimeoutMs);
  if ('error' in decoded) throw new ManifestError(source, decoded.error);
  return decoded.documents;
}

/** Parses a manifest's text into validated, defaulted pods without blocking the event loop for long. */
export async function parseManifestBounded(text: string, source: string, options: { timeoutMs?: number } = {}): Promise<V1Pod[]> {
  return podsFromDocuments(await decodeManifestBounded(text, source, options), source);
}

export function oversize(source: string, bytes: number): ManifestError {
  return new ManifestError(source, `is ${bytes} bytes, over the ${maxManifestBytes} byte (10 MiB) limit; refused unread`);
}
