/**
 * Preloaded (`node -r`) into a supervising process that runs under callgrind (bench/lib/callgrind.ts).
 * node:cluster forks workers with process.execPath; pointing it at the wrapper script runs every
 * worker under callgrind too, with no hook in drover itself.
 */
import cluster from 'node:cluster';

const wrapper = process.env.DROVER_BENCH_CALLGRIND_NODE;
if (cluster.isPrimary && wrapper) process.execPath = wrapper;
