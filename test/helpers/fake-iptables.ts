/** A fake iptables runner for unit tests: records payloads and jump rules; can be told to fail. */
import type { Backend, Iptables, JumpRule } from '../../lib/netfilter/iptables.js';

export class FakeIptables implements Iptables {
  readonly backend: Backend = 'nft';
  readonly payloads: string[] = [];
  readonly jumps = new Set<string>();
  failNext = false;
  natSave = '*nat\nCOMMIT\n';
  async restore(payload: string): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('iptables-restore: injected failure');
    }
    this.payloads.push(payload);
  }
  async save(): Promise<string> {
    return this.natSave;
  }
  async ensureJump(rule: JumpRule): Promise<void> {
    this.jumps.add(JSON.stringify(rule));
  }
  async deleteJump(rule: JumpRule): Promise<void> {
    this.jumps.delete(JSON.stringify(rule));
  }
  async listChain(): Promise<string[] | undefined> {
    return undefined;
  }
}
const _iptablesCheck: Iptables = new FakeIptables();
void _iptablesCheck;
