/** Kept for test/integration/blocks.test.ts, which imports it from here; the load generator is bench/lib/load.ts. */
export { loadUntil, type LoadResult } from '../../bench/lib/load';
