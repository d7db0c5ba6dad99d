/**
 * `node bench/dist/idle-ab.js [connections] [runs]`: idle memory of one SSE stream against one
 * WebSocket, side by side in one stack. Two push nodes of the same stack, one Redis: node-1 gets
 * `connections` WebSocket devices (hello + welcome), node-2 as many SSE devices (`GET /v1/sse`,
 * first event read), opened in the same rounds; then each node's RSS (/proc) and V8 heap
 * (`nodejs_heap_size_used_bytes` of its /metrics) are read against the same readings before the
 * connects, each after two full GCs (gc-preload.ts) and a settle.
 *
 * Why not the `idle` scenario alone: it runs the transports one after the other in fresh stacks,
 * and three nodes' RSS moves by whole V8 pages and malloc arenas with the machine's load, so the
 * same build gave SSE 7.4 to 16 KiB per connection in one sitting. Here both transports meet the
 * same load at the same moment, and the heap figure does not move with page granularity.
 * Prints one line per run and the medians.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack } from '@herald/stack';
import { mintDeviceToken } from '@herald/token';
import WebSocket from 'ws';

const [n = 3000, runs = 3] = process.argv.slice(2).map(Number);
const SECRET = 'bench-token-secret-0123456789';
const GC_PRELOAD = fileURLToPath(new URL('./gc-preload.js', import.meta.url));
const ROUND = 200;
/** Wait after each GC (IDLE_AB_GC_WAIT_MS; the smoke test shortens it). */
const GC_WAIT_MS = Number(process.env.IDLE_AB_GC_WAIT_MS ?? 3000);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Reading {
  rssKb: number;
  heapKb: number;
}

const rssKb = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);

async function heapKb(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^nodejs_heap_size_used_bytes(?:\{[^}]*\})? (\S+)/m.exec(text)?.[1] ?? Number.NaN) / 1024;
}

async function read(nodes: { pid: number; port: number }[]): Promise<Reading[]> {
  // Two GCs a few seconds apart: V8 gives pages back to the system after a GC, not in it.
  for (let i = 0; i < 2; i++) {
    for (const node of nodes) process.kill(node.pid, 'SIGUSR2');
    await sleep(GC_WAIT_MS);
  }
  return Promise.all(
    nodes.map(async (node) => ({ rssKb: rssKb(node.pid), heapKb: await heapKb(node.port) })),
  );
}

function once<T>(ms: number, start: (done: (v: T) => void, fail: (e: Error) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    start(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

async function openWs(port: number, device: string): Promise<WebSocket> {
  const token = await mintDeviceToken({ secret: SECRET, device, user: `u-${device}` });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`);
  await once<void>(10_000, (done, fail) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', token })));
    ws.on('message', (m) => {
      if (String(m).includes('"welcome"')) done();
    });
    ws.on('error', fail);
  });
  return ws;
}

async function openSse(port: number, device: string): Promise<net.Socket> {
  const token = await mintDeviceToken({ secret: SECRET, device, user: `u-${device}` });
  const s = net.connect(port, '127.0.0.1');
  await once<void>(10_000, (done, fail) => {
    s.on('connect', () =>
      s.write(`GET /v1/sse HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer ${token}\r\n\r\n`),
    );
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.startsWith('HTTP/1.1 200')) {
        if (head.includes('\r\n')) fail(new Error(head.split('\r\n')[0]));
        return;
      }
      if (head.includes('\n\n', head.indexOf('\r\n\r\n') + 4)) {
        s.off('data', onData);
        s.on('data', () => undefined);
        done();
      }
    };
    s.on('data', onData);
    s.on('error', fail);
  });
  return s;
}

async function run(): Promise<{ ws: Reading; sse: Reading }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-idle-ab-'));
  const stack = await startStack({
    dataDir: path.join(dir, 'data'),
    logDir: path.join(dir, 'logs'),
    apiKeys: ['bench-api-key-0123456789abcdef'],
    tokenSecret: SECRET,
    logLevel: 'warn',
    nodes: 2,
    env: {
      NODE_OPTIONS: `--import=${GC_PRELOAD}`,
      HERALD_ACCEPT_RATE: '1000000',
      HERALD_MAX_CONNECTIONS: '1000000',
    },
  });
  const open: { destroy(): void }[] = [];
  try {
    const [wsNode, sseNode] = stack.nodes as [(typeof stack.nodes)[0], (typeof stack.nodes)[0]];
    const nodes = [wsNode, sseNode];
    const before = await read(nodes);
    for (let i = 0; i < n; i += ROUND) {
      const ids = Array.from({ length: Math.min(ROUND, n - i) }, (_, j) => i + j);
      const [w, s] = await Promise.all([
        Promise.all(ids.map((k) => openWs(wsNode.port, `w${k}`))),
        Promise.all(ids.map((k) => openSse(sseNode.port, `s${k}`))),
      ]);
      for (const ws of w) open.push({ destroy: () => ws.terminate() });
      open.push(...s);
    }
    await sleep(GC_WAIT_MS);
    const after = await read(nodes);
    const per = (i: number): Reading => ({
      rssKb: (after[i]!.rssKb - before[i]!.rssKb) / n,
      heapKb: (after[i]!.heapKb - before[i]!.heapKb) / n,
    });
    return { ws: per(0), sse: per(1) };
  } finally {
    for (const c of open) c.destroy();
    await stack.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const f = (x: number) => x.toFixed(2);
const results: { ws: Reading; sse: Reading }[] = [];
console.log(`idle memory per connection, ${n} WebSocket (node-1) and ${n} SSE (node-2), after full GCs, KiB`);
console.log('| run | WS RSS | SSE RSS | WS heap | SSE heap |\n| --- | --- | --- | --- | --- |');
for (let r = 1; r <= runs; r++) {
  const x = await run();
  results.push(x);
  console.log(`| ${r} | ${f(x.ws.rssKb)} | ${f(x.sse.rssKb)} | ${f(x.ws.heapKb)} | ${f(x.sse.heapKb)} |`);
}
const m = (g: (x: { ws: Reading; sse: Reading }) => number) => f(median(results.map(g)));
console.log(
  `| median | ${m((x) => x.ws.rssKb)} | ${m((x) => x.sse.rssKb)} | ${m((x) => x.ws.heapKb)} | ${m((x) => x.sse.heapKb)} |`,
);
console.log(
  `machine: ${os.cpus().length} cores, load ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}, node ${process.version}`,
);
