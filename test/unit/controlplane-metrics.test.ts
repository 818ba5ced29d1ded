import { describe, expect, it } from 'vitest';
import { renderResourceMetrics, renderScrapeError } from '../../agent/server/resource-metrics.js';
import type { Summary } from '../../agent/server/stats.js';
import { decodeBatch, MetricsStore, parsePrometheusText, rate, type MetricsPoint, type NodeBatch } from '../../controlplane/metrics-store.js';
import { formatDuration } from '../../lib/duration.js';
import { formatBytes, formatNanoQuantity } from '../../lib/quantity.js';

describe('Prometheus text parsing', () => {
  it('reads names, escaped labels, values and timestamps; skips comments', () => {
    const text = [
      '# HELP x help',
      '# TYPE x counter',
      'node_cpu_usage_seconds_total 12.5 1700000000123',
      'container_memory_working_set_bytes{container="c",namespace="ns",pod="p\\"q\\\\r\\n"} 1.4024704e+07 1700000000000',
      'resource_scrape_error 0',
      'x{a="1",} NaN',
      'y +Inf',
      '',
    ].join('\n');
    expect(parsePrometheusText(text)).toEqual([
      { name: 'node_cpu_usage_seconds_total', labels: {}, value: 12.5, timestamp: 1700000000123 },
      { name: 'container_memory_working_set_bytes', labels: { container: 'c', namespace: 'ns', pod: 'p"q\\r\n' }, value: 14024704, timestamp: 1700000000000 },
      { name: 'resource_scrape_error', labels: {}, value: 0 },
      { name: 'x', labels: { a: '1' }, value: NaN },
      { name: 'y', labels: {}, value: Infinity },
    ]);
  });

  it.each([
    ['no value', 'metric_only'],
    ['bad value', 'm 12abc'],
    ['bad labels', 'm{a=1} 2'],
    ['unterminated labels', 'm{a="1" 2'],
    ['too long', `m{a="${'x'.repeat(70_000)}"} 1`],
  ])('refuses %s with the line number', (_name, line) => {
    expect(() => parsePrometheusText(`ok 1\n${line}\n`)).toThrow(/line 2/);
  });
});

const point = (timestamp: number, cpuSeconds: number, memory: number, startTime = 0): MetricsPoint => ({ timestamp, cpu: cpuSeconds * 1e9, memory, startTime });

describe('decoding a kubelet scrape', () => {
  it('builds node and container points; needs cpu and memory; CPU timestamps; scrape time when none', () => {
    const samples = parsePrometheusText(
      [
        'node_cpu_usage_seconds_total 100 1000',
        'node_memory_working_set_bytes 2048 1000',
        'container_cpu_usage_seconds_total{container="a",namespace="ns",pod="p"} 1.5 900',
        'container_memory_working_set_bytes{container="a",namespace="ns",pod="p"} 4096 900',
        'container_start_time_seconds{container="a",namespace="ns",pod="p"} 0.5 500',
        'container_cpu_usage_seconds_total{container="b",namespace="ns",pod="p"} 2',
        'container_memory_working_set_bytes{container="b",namespace="ns",pod="p"} 10',
        'container_cpu_usage_seconds_total{container="only-cpu",namespace="ns",pod="p"} 2 900',
        'container_cpu_usage_seconds_total{namespace="ns",pod="p"} 2 900',
        'container_memory_working_set_bytes{container="neg",namespace="ns",pod="q"} -1 900',
      ].join('\n'),
    );
    const batch = decodeBatch(samples, 5000);
    expect(batch.node).toEqual({ timestamp: 1000, cpu: 100e9, memory: 2048, startTime: 0 });
    expect([...batch.pods.keys()]).toEqual(['ns/p']);
    expect(Object.fromEntries(batch.pods.get('ns/p')!)).toEqual({ a: { timestamp: 900, cpu: 1.5e9, memory: 4096, startTime: 500 }, b: { timestamp: 5000, cpu: 2e9, memory: 10, startTime: 0 } });
  });

  it('a node without memory has no point', () => {
    expect(decodeBatch(parsePrometheusText('node_cpu_usage_seconds_total 1 1'), 2).node).toBeUndefined();
  });
});

describe('rates and the two-point store (metrics-server storage)', () => {
  it('rate = Δcpu / Δt in nano-cores, window Δt, memory of the last point; none when CPU went down or time stood still', () => {
    expect(rate(point(16_000, 3, 100), point(1_000, 1.5, 50))).toEqual({ timestamp: 16_000, windowMs: 15_000, cpu: 100_000_000, memory: 100 });
    expect(rate(point(16_000, 1, 100), point(1_000, 1.5, 50))).toBeUndefined();
    expect(rate(point(1_000, 2, 100), point(1_000, 1, 50))).toBeUndefined();
  });

  const batch = (nodePoint: MetricsPoint | undefined, containers: Record<string, MetricsPoint> = {}): Map<string, NodeBatch> =>
    new Map([['n1', { ...(nodePoint ? { node: nodePoint } : {}), pods: new Map([['ns/p', new Map(Object.entries(containers))]]) }]]);

  it('needs two points; keeps only the last two; a node missing from a cycle is gone', () => {
    const store = new MetricsStore(15_000);
    store.store(batch(point(1_000, 1, 10), { a: point(1_000, 1, 10, 1) }));
    expect(store.node('n1')).toBeUndefined();
    expect(store.pod('ns', 'p')).toBeUndefined();
    store.store(batch(point(3_000, 2, 20), { a: point(3_000, 1.5, 30, 1) }));
    expect(store.node('n1')).toEqual({ timestamp: 3_000, windowMs: 2_000, cpu: 500_000_000, memory: 20 });
    expect(store.pod('ns', 'p')).toEqual({ timestamp: 3_000, windowMs: 2_000, containers: [{ name: 'a', usage: { timestamp: 3_000, windowMs: 2_000, cpu: 250_000_000, memory: 30 } }] });
    store.store(batch(point(5_000, 2.2, 20), { a: point(5_000, 1.5, 30, 1) }));
    expect(store.node('n1')?.cpu).toBe(100_000_000);
    // The same point again (the kubelet's stats did not move): the previous one stays.
    store.store(batch(point(5_000, 2.2, 20)));
    expect(store.node('n1')?.windowMs).toBe(2_000);
    store.store(new Map());
    expect(store.node('n1')).toBeUndefined();
    expect(store.pod('ns', 'p')).toBeUndefined();
  });

  it('a restarted container starts over; a fresh container is rated from its start', () => {
    const store = new MetricsStore(15_000);
    store.store(batch(undefined, { a: point(10_000, 5, 1, 1_000) }));
    store.store(batch(undefined, { a: point(20_000, 0.1, 1, 15_000) }));
    expect(store.pod('ns', 'p')).toBeUndefined();
    // Started 12 s before its first point (between 10 s and the resolution): from its start.
    const fresh = new MetricsStore(15_000);
    fresh.store(batch(undefined, { a: point(20_000, 1.2, 1, 8_000) }));
    expect(fresh.pod('ns', 'p')?.containers[0]?.usage).toEqual({ timestamp: 20_000, windowMs: 12_000, cpu: 100_000_000, memory: 1 });
  });

  it('a pod is reported only when every container has a rate, with the earliest timestamp', () => {
    const store = new MetricsStore(15_000);
    store.store(batch(undefined, { a: point(1_000, 1, 1), b: point(1_000, 1, 1) }));
    store.store(batch(undefined, { a: point(3_000, 2, 1), b: point(2_000, 1, 1), c: point(3_000, 1, 1) }));
    expect(store.pod('ns', 'p')).toBeUndefined();
    store.store(batch(undefined, { a: point(5_000, 3, 1), b: point(4_000, 1, 1), c: point(5_000, 1, 1) }));
    const pod = store.pod('ns', 'p')!;
    expect(pod.containers.map((c) => c.name)).toEqual(['a', 'b', 'c']);
    expect(pod.timestamp).toBe(4_000);
  });
});

describe('quantities as metrics-server serializes them', () => {
  it.each([
    [0, '0'],
    [123_456, '123456n'],
    [5_000_000, '5m'],
    [1_000_000_000, '1'],
    [1_500_000_000, '1500m'],
    [922_307_138, '922307138n'],
    [-5, '0'],
  ])('cpu %d nano-cores → %s', (nano, text) => expect(formatNanoQuantity(nano)).toBe(text));

  it.each([
    [0, '0'],
    [1000, '1000'],
    [4096, '4Ki'],
    [25_972_736, '25364Ki'],
    [2 * 1024 ** 3, '2Gi'],
    [12_345_678, '12345678'],
    [12_345_000, '12345k'],
  ])('memory %d bytes → %s', (bytes, text) => expect(formatBytes(bytes)).toBe(text));

  it.each([
    [2169, '2.169s'],
    [15_000, '15s'],
    [60_500, '1m0.5s'],
  ])('window %d ms → %s', (ms, text) => expect(formatDuration(ms)).toBe(text));
});

describe('the kubelet side: /metrics/resource text', () => {
  const time = '2026-12-07T04:00:00.000Z';
  const ms = Date.parse(time);
  const summary: Summary = {
    node: { cpu: { time, usageCoreNanoSeconds: 12_500_000_000 }, memory: { time, workingSetBytes: 2048 } },
    pods: [
      {
        podRef: { name: 'web', namespace: 'prod', uid: 'u1' },
        cpu: { time, usageCoreNanoSeconds: 3_000_000_000 },
        memory: { time, workingSetBytes: 4096 },
        containers: [{ name: 'app', startTime: '2026-12-07T03:00:00.000Z', cpu: { time, usageCoreNanoSeconds: 3_000_000_000 }, memory: { time, workingSetBytes: 4096 } }],
      },
      { podRef: { name: 'empty', namespace: 'prod', uid: 'u2' }, cpu: { time, usageCoreNanoSeconds: 0 }, memory: { time, workingSetBytes: 0 }, containers: [] },
    ],
  };

  it('names, labels, HELP/TYPE and timestamps as the kubelet; round-trips through the control plane decoder', () => {
    const text = renderResourceMetrics(summary);
    expect(text).toContain('# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds\n# TYPE node_cpu_usage_seconds_total counter\n');
    expect(text).toContain(`node_cpu_usage_seconds_total 12.5 ${ms}\n`);
    expect(text).toContain(`container_memory_working_set_bytes{container="app",namespace="prod",pod="web"} 4096 ${ms}\n`);
    expect(text).toContain(`container_start_time_seconds{container="app",namespace="prod",pod="web"} ${(ms - 3_600_000) / 1000} ${ms - 3_600_000}\n`);
    expect(text).toContain(`pod_cpu_usage_seconds_total{namespace="prod",pod="web"} 3 ${ms}\n`);
    expect(text).not.toContain('pod="empty"');
    expect(text.endsWith('resource_scrape_error 0\n')).toBe(true);
    const batch = decodeBatch(parsePrometheusText(text), 0);
    expect(batch.node).toEqual({ timestamp: ms, cpu: 12_500_000_000, memory: 2048, startTime: 0 });
    expect(batch.pods.get('prod/web')?.get('app')).toEqual({ timestamp: ms, cpu: 3_000_000_000, memory: 4096, startTime: ms - 3_600_000 });
  });

  it('a failed stats read is resource_scrape_error 1 only', () => {
    expect(parsePrometheusText(renderScrapeError())).toEqual([{ name: 'resource_scrape_error', labels: {}, value: 1 }]);
  });
});
