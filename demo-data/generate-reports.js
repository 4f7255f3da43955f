#!/usr/bin/env node
'use strict';
/**
 * Writes the report files that `GET /report` serves (demo-data/reports/*.json). Deterministic
 * (seeded PRNG, fixed dates), so re-running it reproduces the committed files byte for byte:
 *
 *   node demo-data/generate-reports.js
 *
 * Sizes are chosen to show the difference between `fs.readFileSync` and `fs.promises.readFile`:
 * a small file (a few KB), a medium one (~200 KB) and a large one (~1 MB).
 */
const fs = require('node:fs');
const path = require('node:path');

const OUT = path.join(__dirname, 'reports');
const REGIONS = ['north', 'south', 'east', 'west', 'central'];
const CHANNELS = ['web', 'store', 'phone', 'partner'];
const SKUS = Array.from({ length: 40 }, (_, i) => `SKU-${String(1000 + i * 37)}`);

/** mulberry32: tiny, fast, good enough for demo data, and the same on every machine. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function day(start, offsetDays) {
  return new Date(Date.parse(start) + offsetDays * 86_400_000).toISOString().slice(0, 10);
}

function orders(seed, count, start, days) {
  const rnd = prng(seed);
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  return Array.from({ length: count }, (_, i) => {
    const quantity = 1 + Math.floor(rnd() * 12);
    const unitPrice = Math.round((2 + rnd() * 148) * 100) / 100;
    return {
      id: `ord-${seed}-${String(i + 1).padStart(6, '0')}`,
      date: day(start, Math.floor((i / count) * days)),
      region: pick(REGIONS),
      channel: pick(CHANNELS),
      sku: pick(SKUS),
      quantity,
      unitPrice,
      amount: Math.round(quantity * unitPrice * 100) / 100,
    };
  });
}

function refunds(seed, count, start, days) {
  const rnd = prng(seed);
  return Array.from({ length: count }, (_, i) => ({
    id: `ref-${String(i + 1).padStart(5, '0')}`,
    date: day(start, Math.floor((i / count) * days)),
    order: `ord-2024-${String(1 + Math.floor(rnd() * 6500)).padStart(6, '0')}`,
    reason: ['damaged', 'late', 'wrong-item', 'changed-mind'][Math.floor(rnd() * 4)],
    amount: -Math.round((5 + rnd() * 300) * 100) / 100,
  }));
}

const reports = [
  { name: 'refunds-2024-01', title: 'Refunds, January 2024', records: refunds(7, 40, '2024-01-01', 31) },
  { name: 'orders-2024-q1', title: 'Orders, first quarter 2024', records: orders(2024_1, 1300, '2024-01-01', 91) },
  { name: 'orders-2024', title: 'Orders, 2024', records: orders(2024, 6500, '2024-01-01', 366) },
];

fs.mkdirSync(OUT, { recursive: true });
for (const r of reports) {
  const body = { report: r.name, title: r.title, currency: 'EUR', generatedAt: '2025-01-02T03:04:05.000Z', records: r.records };
  const file = path.join(OUT, `${r.name}.json`);
  fs.writeFileSync(file, `${JSON.stringify(body, null, 1)}\n`);
  console.log(`${path.relative(process.cwd(), file)}: ${r.records.length} records, ${fs.statSync(file).size} bytes`);
}
