// Bench app: an Express app whose prom-client registry holds ~1,900 series of its own (plus
// drover's and Node's defaults, ~2,000 per worker), to measure scrape cost at a realistic size.
const express = require('express');
const client = require('prom-client');

const SERIES = Number(process.env.BENCH_SERIES ?? 1900);
const c = new client.Counter({ name: 'bench_items_total', help: 'Synthetic series for the scrape benchmark.', labelNames: ['key'] });
for (let i = 0; i < SERIES; i++) c.inc({ key: `k${i}` }, i);

const app = express();
app.get('/ping', (_req, res) => res.json({ ok: true, pid: process.pid }));
module.exports = app;
