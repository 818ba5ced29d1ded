/**
 * Fakes of probes/' narrow interfaces (prober, executor, listener, status provider), checked
 * against them at compile time below.
 */
import type { V1PodStatus } from '@kubernetes/client-node';
import type { ProbeContext, Prober } from '../../probes/prober.js';
import type { ContainerExecutor, ContainerKillRequest, ExecResult, PodStatusProvider, ProbeEvent, ProbeListener, ProbeOutcome, ProbeResultUpdate } from '../../probes/types.js';
import type { ProbeSpec } from '../../probes/spec.js';

/** Fake listener: records everything, for tests and for agents that poll. */
export class RecordingProbeListener implements ProbeListener {
  readonly updates: ProbeResultUpdate[] = [];
  readonly kills: ContainerKillRequest[] = [];
  readonly events: ProbeEvent[] = [];

  resultChanged(update: ProbeResultUpdate): void {
    this.updates.push(update);
  }

  killContainer(request: ContainerKillRequest): void {
    this.kills.push(request);
  }

  event(event: ProbeEvent): void {
    this.events.push(event);
  }
}

/** Fake executor: answers from a function, e.g. by command, or hangs until timeout. */
export class FakeExecutor implements ContainerExecutor {
  readonly calls: Array<{ containerId: string; cmd: string[]; timeoutMs: number }> = [];

  constructor(private readonly answer: (containerId: string, cmd: string[]) => ExecResult | Promise<ExecResult> = () => ({ exitCode: 0, stdout: '', stderr: '' })) {}

  async execSync(containerId: string, cmd: string[], timeoutMs: number): Promise<ExecResult> {
    this.calls.push({ containerId, cmd, timeoutMs });
    return this.answer(containerId, cmd);
  }
}

/** Fake status provider: a map the test fills. */
export class FakePodStatusProvider implements PodStatusProvider {
  readonly statuses = new Map<string, V1PodStatus>();
  readonly terminating = new Set<string>();

  getPodStatus(podUid: string): V1PodStatus | undefined {
    return this.statuses.get(podUid);
  }

  isPodTerminationRequested(podUid: string): boolean {
    return this.terminating.has(podUid);
  }
}

/** Fake prober for worker tests: answers from a queue or a function; counts calls. */
export class FakeProber implements Prober {
  calls = 0;
  readonly contexts: ProbeContext[] = [];

  constructor(public next: (spec: ProbeSpec, context: ProbeContext) => ProbeOutcome | Promise<ProbeOutcome> = () => ({ result: 'success', output: '' })) {}

  async probe(spec: ProbeSpec, context: ProbeContext): Promise<ProbeOutcome> {
    this.calls++;
    this.contexts.push(context);
    return this.next(spec, context);
  }
}


const _checks: [ProbeListener, ContainerExecutor, PodStatusProvider, Prober] = [new RecordingProbeListener(), new FakeExecutor(), new FakePodStatusProvider(), new FakeProber()];
void _checks;
