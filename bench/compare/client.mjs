// SPDX-License-Identifier: Apache-2.0
// One closed-loop Node.js client for herald, Redis, NATS JetStream and etcd,
// so that the four are measured under the same load (bench/compare/run.sh).
//
// N appends are kept outstanding: each acknowledged one starts the next.
// Every append is a 200-byte payload (--payload) to one of 16 channels
// (a herald channel, a Redis stream, a JetStream subject, an etcd key
// prefix). herald is driven as a web application would: Node's http with
// keep-alive, one socket per append in flight, spread over every node. The
// others through their own client library, connected to every node given
// (etcd and NATS forward to their leader; Redis is one node).
//
// The servers' CPU is read from /proc/PID/stat (utime + stime) of the
// processes given with --pids, from the window's start to its end, and
// divided by the appends acknowledged inside the window.
//
//   node client.mjs --system herald --targets 127.0.0.1:7400 --in-flight 256 \
//        --duration 10 --pids 1234 [--leader-aware]
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';

const CHANNELS = 16;

function parseArgs(argv) {
  const a = { system: '', targets: [], inFlight: 256, duration: 10, payload: 200, pids: [],
              warmup: 1, leaderAware: false };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i], v = argv[i + 1];
    if (k === '--leader-aware') {
      a.leaderAware = true;
      i--;
      continue;
    }
    if (v === undefined) throw new Error(`${k}: needs a value`);
    switch (k) {
      case '--system': a.system = v; break;
      case '--targets': a.targets = v.split(','); break;
      case '--in-flight': a.inFlight = Number(v); break;
      case '--duration': a.duration = Number(v); break;
      case '--payload': a.payload = Number(v); break;
      case '--pids': a.pids = v.split(',').map(Number); break;
      case '--warmup': a.warmup = Number(v); break;
      default: throw new Error(`unknown option ${k}`);
    }
  }
  if (!['herald', 'herald-ws', 'redis', 'nats', 'etcd'].includes(a.system)) {
    throw new Error('--system must be herald, herald-ws, redis, nats or etcd');
  }
  if (a.targets.length === 0) throw new Error('--targets host:port[,host:port...] is required');
  if (a.leaderAware && !a.system.startsWith('herald')) {
    throw new Error('--leader-aware is for herald and herald-ws');
  }
  if (!(a.inFlight >= 1) || !(a.duration > 0) || !(a.payload >= 1)) {
    throw new Error('--in-flight, --duration and --payload must be positive');
  }
  return a;
}

// CPU seconds (user + system) of a process and its threads.
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const hz = 100; // USER_HZ: 100 on Linux x86-64
  return (Number(f[11]) + Number(f[12])) / hz;
}

function serversCpu(pids) {
  return pids.reduce((s, p) => s + cpuSeconds(p), 0);
}

// A time-ordered nonce, as the README tells a Node application to make.
function nonce() {
  return Date.now().toString(16).padStart(12, '0') + crypto.randomBytes(10).toString('hex');
}

function getJson(target, path) {
  const [host, port] = target.split(':');
  return new Promise((resolve, reject) => {
    http.get({ host, port: Number(port), path }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`${path}: status ${res.statusCode}`));
        else resolve(JSON.parse(Buffer.concat(parts).toString()));
      });
    }).on('error', reject);
  });
}

// Which target each channel's appends go to. Round robin by default; with
// --leader-aware, the node leading the channel's shard (GET /v1/shards on
// every target: its node id, and the leader of each shard, xxh3_64 of the
// channel modulo the shard count), as libherald and `herald bench
// --leader-aware` do, so that no follower forwards it. A channel whose
// shard has no known leader keeps round robin.
async function channelTargets(a) {
  if (!a.leaderAware) return null;
  const { xxhash3 } = await import('hash-wasm');
  const shards = await Promise.all(a.targets.map((t) => getJson(t, '/v1/shards')));
  const byNode = new Map(shards.map((s, i) => [s.node_id, i]));
  const out = [];
  for (let ch = 0; ch < CHANNELS; ch++) {
    const shard = Number(BigInt('0x' + await xxhash3(`bench-${ch}`)) % BigInt(shards[0].shards));
    const leader = shards[0].leaders[shard];
    out.push(byNode.has(leader) ? byNode.get(leader) : null);
  }
  return out;
}

// Each driver returns { append(channelIndex) -> Promise, close() -> Promise }.
async function heraldDriver(a, payload) {
  const agents = a.targets.map(() => new http.Agent({ keepAlive: true, maxSockets: a.inFlight }));
  const route = await channelTargets(a);
  let next = 0;
  return {
    append(ch) {
      const rr = next++ % a.targets.length;
      const i = route !== null && route[ch] !== null ? route[ch] : rr;
      const [host, port] = a.targets[i].split(':');
      const body = JSON.stringify({ nonce: nonce(), payload });
      return new Promise((resolve, reject) => {
        const req = http.request({ host, port: Number(port), method: 'POST', agent: agents[i],
                                   path: `/v1/channels/bench-${ch}/messages`,
                                   headers: { 'content-type': 'application/json',
                                              'content-length': Buffer.byteLength(body) } },
          (res) => {
            const parts = [];
            res.on('data', (d) => parts.push(d));
            res.on('end', () => {
              if (res.statusCode !== 201) {
                reject(new Error(`status ${res.statusCode}`));
                return;
              }
              const ans = JSON.parse(Buffer.concat(parts).toString());
              if (!(ans.seq > 0) || ans.duplicate !== false) reject(new Error('bad answer'));
              else resolve();
            });
          });
        req.on('error', reject);
        req.end(body);
      });
    },
    async close() { agents.forEach((ag) => ag.destroy()); },
  };
}

// herald over WebSocket appends (docs/subscribe.md): one connection per
// node, every append in flight on it, each answered by an ack with its id.
async function heraldWsDriver(a, payload) {
  const { default: WebSocket } = await import('ws');
  const pending = new Map();
  const socks = await Promise.all(a.targets.map((t) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${t}/v1/subscribe`);
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      const p = pending.get(f.id);
      if (p === undefined) return;
      pending.delete(f.id);
      if (f.type === 'ack' && f.seq > 0 && f.duplicate === false) p.resolve();
      else p.reject(new Error(f.type === 'error' ? f.code : 'bad answer'));
    });
  })));
  const route = await channelTargets(a);
  let next = 0;
  return {
    append(ch) {
      const rr = next % socks.length;
      const id = String(next++);
      const ws = socks[route !== null && route[ch] !== null ? route[ch] : rr];
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        ws.send(JSON.stringify({ type: 'append', id, channel: `bench-${ch}`, nonce: nonce(),
                                 payload }));
      });
    },
    async close() { socks.forEach((ws) => ws.close()); },
  };
}

async function redisDriver(a, payload) {
  const { createClient } = await import('redis');
  const client = createClient({ url: `redis://${a.targets[0]}` });
  await client.connect();
  return {
    async append(ch) {
      const id = await client.xAdd(`bench-${ch}`, '*', { payload });
      if (typeof id !== 'string') throw new Error('bad answer');
    },
    async close() { await client.quit(); },
  };
}

async function natsDriver(a, payload) {
  const { connect } = await import('nats');
  const nc = await connect({ servers: a.targets });
  const jsm = await nc.jetstreamManager();
  try {
    await jsm.streams.info('BENCH');
  } catch {
    await jsm.streams.add({ name: 'BENCH', subjects: ['bench.>'], storage: 'file',
                            num_replicas: a.targets.length });
  }
  const js = nc.jetstream();
  const data = new TextEncoder().encode(payload);
  return {
    async append(ch) {
      const ack = await js.publish(`bench.${ch}`, data, { msgID: nonce() });
      if (ack.duplicate || !(ack.seq > 0)) throw new Error('bad answer');
    },
    async close() { await nc.drain(); },
  };
}

async function etcdDriver(a, payload) {
  const { Etcd3 } = await import('etcd3');
  const client = new Etcd3({ hosts: a.targets.map((t) => `http://${t}`) });
  const counters = new Array(CHANNELS).fill(0);
  return {
    async append(ch) {
      // A message is a key of its channel's prefix; its revision is its order.
      await client.put(`bench-${ch}/${String(++counters[ch]).padStart(12, '0')}`).value(payload);
    },
    async close() { client.close(); },
  };
}

const DRIVERS = { herald: heraldDriver, 'herald-ws': heraldWsDriver, redis: redisDriver, nats: natsDriver, etcd: etcdDriver };

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const payload = 'x'.repeat(a.payload);
  const driver = await DRIVERS[a.system](a, payload);
  const lat = [];
  const errors = new Map();
  let measuring = false;
  let stop = false;
  let acked = 0;

  async function worker(w) {
    let ch = w % CHANNELS;
    while (!stop) {
      const t0 = process.hrtime.bigint();
      try {
        await driver.append(ch);
        if (measuring) {
          lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
          acked++;
        }
      } catch (e) {
        if (measuring) errors.set(e.message, (errors.get(e.message) || 0) + 1);
      }
      ch = (ch + 1) % CHANNELS;
    }
  }

  const workers = Array.from({ length: a.inFlight }, (_, w) => worker(w));
  await new Promise((r) => setTimeout(r, a.warmup * 1000));
  const cpu0 = serversCpu(a.pids);
  const self0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  measuring = true;
  await new Promise((r) => setTimeout(r, a.duration * 1000));
  measuring = false;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = serversCpu(a.pids);
  const self1 = process.cpuUsage(self0);
  stop = true;
  await Promise.allSettled(workers);
  await driver.close();

  lat.sort((x, y) => x - y);
  const out = {
    system: a.system + (a.leaderAware ? ' (leader-aware)' : ''),
    nodes: a.targets.length,
    in_flight: a.inFlight,
    acked_per_s: Math.round(acked / secs),
    p50_ms: Number(percentile(lat, 0.5).toFixed(2)),
    p99_ms: Number(percentile(lat, 0.99).toFixed(2)),
    server_cpu_us_per_ack: a.pids.length && acked ? Number(((cpu1 - cpu0) / acked * 1e6).toFixed(1))
                                                   : null,
    client_cpu_us_per_ack: acked ? Number(((self1.user + self1.system) / acked).toFixed(1)) : null,
    errors: Object.fromEntries(errors),
    host_cpus: os.cpus().length,
  };
  console.log(JSON.stringify(out));
}

main().then(() => process.exit(0), (e) => {
  console.error(`client.mjs: ${e.message}`);
  process.exit(2);
});
