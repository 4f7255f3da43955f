/** Kept for test/integration/blocks.test.ts, which imports it from here; the code is in bench/lib/prom.ts. */
export * from '../../bench/lib/prom';
