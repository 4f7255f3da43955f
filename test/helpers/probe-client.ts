/**
 * A separate client process for probes: while a test blocks a worker's loop, probes must be sent
 * from a process that nothing blocks. Polls the given URLs back to back for `durationMs` and
 * prints one JSON line: per URL, how many answers, their status codes and the slowest one.
 *
 * usage: node probe-client.js <durationMs> <url> [url...]
 */
const [durationArg, ...urls] = process.argv.slice(2);
const until = Date.now() + Number(durationArg);

export interface Tally {
  count: number;
  statuses: Record<string, number>;
  maxMs: number;
  errors: number;
  /** Every request's latency in ms, in order. */
  samples: number[];
}

async function poll(url: string): Promise<Tally> {
  const t: Tally = { count: 0, statuses: {}, maxMs: 0, errors: 0, samples: [] };
  while (Date.now() < until) {
    const started = performance.now();
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      t.statuses[res.status] = (t.statuses[res.status] ?? 0) + 1;
    } catch {
      t.errors++;
    }
    t.count++;
    const ms = performance.now() - started;
    t.samples.push(Math.round(ms * 10) / 10);
    t.maxMs = Math.max(t.maxMs, ms);
    await new Promise((r) => setTimeout(r, 20));
  }
  return t;
}

void Promise.all(urls.map(poll)).then((tallies) => {
  process.stdout.write(JSON.stringify(Object.fromEntries(urls.map((u, i) => [u, tallies[i]]))) + '\n');
});
