// SPDX-License-Identifier: Apache-2.0
// Reads client.mjs' JSON lines on stdin and prints one Markdown table: a row
// per system, nodes and number in flight; with several rounds, each figure
// is the median of the rounds and the acked/s column lists every round.
import readline from 'node:readline';

const rows = new Map();
for await (const line of readline.createInterface({ input: process.stdin })) {
  if (!line.startsWith('{')) continue;
  const r = JSON.parse(line);
  const key = `${r.system}|${r.nodes}|${r.in_flight}`;
  if (!rows.has(key)) rows.set(key, []);
  rows.get(key).push(r);
}

const median = (xs) => {
  const s = xs.filter((x) => x !== null && !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)];
};

console.log('| system | nodes | in flight | acked/s | p50 ms | p99 ms | server CPU µs per append | client CPU µs per append | errors |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const runs of rows.values()) {
  const r0 = runs[0];
  const acked = runs.map((r) => r.acked_per_s);
  const errors = runs.reduce((n, r) => n + Object.values(r.errors).reduce((a, b) => a + b, 0), 0);
  console.log(`| ${r0.system} | ${r0.nodes} | ${r0.in_flight} | ${median(acked)}` +
              `${runs.length > 1 ? ` (${acked.join(', ')})` : ''} | ` +
              `${median(runs.map((r) => r.p50_ms))} | ${median(runs.map((r) => r.p99_ms))} | ` +
              `${median(runs.map((r) => r.server_cpu_us_per_ack))} | ` +
              `${median(runs.map((r) => r.client_cpu_us_per_ack))} | ${errors} |`);
}
