import { defineConfig } from 'vitest/config';

// Three layers (docs/architecture.md, "Testing"): unit (pure, no root), integration (root, netns, Docker),
// e2e (several knode processes). Integration and e2e files run in parallel forks; each test
// names what it makes uniquely, so files do not collide.
export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 120_000,
          pool: 'forks',
        },
      },
      {
        test: {
          // Standing chaos/fuzz suite (bad-input corpora, kill -9 loops, runtime restarts),
          // bounded in count and time so CI runs it every time.
          name: 'chaos',
          include: ['test/chaos/**/*.test.ts'],
          environment: 'node',
          testTimeout: 180_000,
          hookTimeout: 180_000,
          pool: 'forks',
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          testTimeout: 180_000,
          hookTimeout: 180_000,
          pool: 'forks',
        },
      },
    ],
  },
});
