/** A SourceListener (agent/sources/file.ts) that records every pod set and manifest error. */
import type { V1Pod } from '@kubernetes/client-node';
import type { ManifestError } from '../../agent/sources/manifest.js';
import type { SourceListener } from '../../agent/sources/file.js';

export class SourceRecorder implements SourceListener {
  sets: V1Pod[][] = [];
  errors: ManifestError[] = [];
  onPods(_source: string, pods: V1Pod[]): void {
    this.sets.push(pods);
  }
  onManifestError(_source: string, error: ManifestError): void {
    this.errors.push(error);
  }
  /** Names of the pods of the latest set, sorted. */
  get names(): string[] {
    return (this.sets.at(-1) ?? []).map((p) => p.metadata!.name!).sort();
  }
}
