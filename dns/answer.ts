/**
 * What the cluster zone answers to one question (pure; the server encodes it). Behaviour matched:
 *  - the Kubernetes DNS specification (docs/specification.md): `dns-version.<zone>` TXT "1.1.0",
 *    Service, endpoint, SRV, PTR and ExternalName records from ./records.ts;
 *  - CoreDNS's kubernetes plugin with `pods insecure`: `a-b-c-d.<ns>.pod.<zone>` → A a.b.c.d for
 *    any well-formed address, without checking that such a Pod exists;
 *  - a name that exists with other types, or has names below it (an empty non-terminal), gets
 *    NOERROR with no answers (NODATA); a name that does not exist gets NXDOMAIN; both carry the
 *    zone's SOA in the authority section so that resolvers cache them negatively for its minimum
 *    (RFC 2308);
 *  - reverse names (in-addr.arpa, ip6.arpa) answered from the index when known, otherwise handed
 *    on to the upstream resolvers, like CoreDNS's `fallthrough in-addr.arpa ip6.arpa`;
 *  - an ExternalName CNAME is followed: inside the zone here, outside it by the caller (`chase`),
 *    because stub resolvers (glibc, musl, busybox) do not follow a CNAME themselves.
 * Before the first list from the API server the zone answers SERVFAIL, never a false NXDOMAIN.
 */
import { isIPv4 } from 'node:net';
import type { Answer } from 'dns-packet';
import type { ClusterIndex, ClusterRecord } from './records.js';

const schemaVersion = '1.1.0';

export type Rcode = 'NOERROR' | 'FORMERR' | 'SERVFAIL' | 'NXDOMAIN' | 'NOTIMP' | 'REFUSED';

export interface LocalAnswer {
  kind: 'local';
  rcode: Rcode;
  answers: Answer[];
  authorities: Answer[];
  /** A CNAME target outside the zone that the caller resolves and appends. */
  chase?: string;
}

type Resolution = LocalAnswer | { kind: 'forward' };

interface QuestionIn {
  name: string;
  type: string;
  class?: string;
}

/** Lower-case, without the trailing dot. */
export const normalize = (name: string) => name.toLowerCase().replace(/\.$/, '');

export const inZone = (name: string, zone: string) => name === zone || name.endsWith(`.${zone}`);

export const isReverse = (name: string) => name.endsWith('.in-addr.arpa') || name.endsWith('.ip6.arpa') || name === 'in-addr.arpa' || name === 'ip6.arpa';

function soaRecord(index: ClusterIndex): Answer {
  return {
    name: index.zone,
    type: 'SOA',
    class: 'IN',
    ttl: index.ttl,
    data: { mname: `ns.dns.${index.zone}`, rname: `hostmaster.${index.zone}`, serial: index.generation >>> 0, refresh: 7200, retry: 1800, expire: 86400, minimum: index.ttl },
  };
}

const toAnswer = (record: ClusterRecord): Answer => ({ ...record, class: 'IN' }) as Answer;

/** The A record of a `pods insecure` name `a-b-c-d.<ns>.pod.<zone>`, when the name has that shape. */
function podRecord(name: string, zone: string, ttl: number): { exists: boolean; answer?: Answer } {
  const labels = name.slice(0, name.length - zone.length - 1).split('.');
  if (labels.length !== 3 || labels[2] !== 'pod') return { exists: false };
  const ip = labels[0]!.replace(/-/g, '.');
  if (!isIPv4(ip)) return { exists: false };
  return { exists: true, answer: { name, type: 'A', class: 'IN', ttl, data: ip } };
}

function matching(records: readonly ClusterRecord[], type: string): ClusterRecord[] {
  return type === 'ANY' ? [...records] : records.filter((record) => record.type === type);
}

/**
 * Names the zone always has: the apex, `svc.<zone>` and `pod.<zone>`, and any
 * `<ns>.pod.<zone>` (pods insecure covers every namespace).
 */
function structural(name: string, zone: string): boolean {
  if (name === zone || name === `svc.${zone}` || name === `pod.${zone}`) return true;
  const rest = name.slice(0, name.length - zone.length - 1).split('.');
  return rest.length === 2 && rest[1] === 'pod' && rest[0] !== '';
}

/** Answers a question from the cluster zone, or says to forward it. `synced` = listed once. */
export function resolveQuestion(index: ClusterIndex, question: QuestionIn, synced: boolean): Resolution {
  const name = normalize(question.name);
  const zone = index.zone;
  if (!inZone(name, zone)) {
    if (!isReverse(name)) return { kind: 'forward' };
    const records = index.lookup(name);
    if (!records || (question.class ?? 'IN') !== 'IN') return { kind: 'forward' };
    const found = matching(records, question.type);
    if (found.length === 0) return { kind: 'forward' };
    return { kind: 'local', rcode: 'NOERROR', answers: found.map((r) => ({ ...toAnswer(r), name: question.name })), authorities: [] };
  }
  if ((question.class ?? 'IN') !== 'IN' && question.class !== 'ANY') return { kind: 'local', rcode: 'REFUSED', answers: [], authorities: [] };
  if (!synced) return { kind: 'local', rcode: 'SERVFAIL', answers: [], authorities: [] };
  return resolveInZone(index, question, name);
}

function resolveInZone(index: ClusterIndex, question: QuestionIn, name: string): LocalAnswer {
  const zone = index.zone;
  const soa = soaRecord(index);
  const nodata = (): LocalAnswer => ({ kind: 'local', rcode: 'NOERROR', answers: [], authorities: [soa] });
  if (name === zone) {
    if (question.type === 'SOA' || question.type === 'ANY') return { kind: 'local', rcode: 'NOERROR', answers: [{ ...soa, name: question.name }], authorities: [] };
    if (question.type === 'NS') return { kind: 'local', rcode: 'NOERROR', answers: [{ name: question.name, type: 'NS', class: 'IN', ttl: index.ttl, data: `ns.dns.${zone}` }], authorities: [] };
    return nodata();
  }
  if (name === `dns-version.${zone}`) {
    if (question.type !== 'TXT' && question.type !== 'ANY') return nodata();
    return { kind: 'local', rcode: 'NOERROR', answers: [{ name: question.name, type: 'TXT', class: 'IN', ttl: index.ttl, data: schemaVersion }], authorities: [] };
  }
  const pod = podRecord(name, zone, index.ttl);
  if (pod.exists) {
    const wanted = question.type === 'A' || question.type === 'ANY';
    return wanted ? { kind: 'local', rcode: 'NOERROR', answers: [{ ...pod.answer!, name: question.name }], authorities: [] } : nodata();
  }
  const answers: Answer[] = [];
  let current = name;
  let owner = question.name;
  // Follow CNAMEs inside the zone (at most 8 hops, as a loop guard).
  for (let hop = 0; hop < 8; hop++) {
    const records = index.lookup(current);
    if (!records) {
      if (hop > 0) return { kind: 'local', rcode: 'NXDOMAIN', answers, authorities: [soa] };
      return index.hasDescendants(current) || structural(current, zone) ? nodata() : { kind: 'local', rcode: 'NXDOMAIN', answers: [], authorities: [soa] };
    }
    const found = matching(records, question.type);
    if (found.length > 0) {
      answers.push(...found.map((r) => ({ ...toAnswer(r), name: owner })));
      return { kind: 'local', rcode: 'NOERROR', answers, authorities: [] };
    }
    const cname = records.find((r) => r.type === 'CNAME');
    if (!cname || question.type === 'CNAME') return { kind: 'local', rcode: 'NOERROR', answers, authorities: [soa] };
    answers.push({ ...toAnswer(cname), name: owner });
    const target = cname.data as string;
    if (!inZone(target, zone)) return { kind: 'local', rcode: 'NOERROR', answers, authorities: [], chase: target };
    current = target;
    owner = target;
  }
  return { kind: 'local', rcode: 'SERVFAIL', answers: [], authorities: [] };
}
