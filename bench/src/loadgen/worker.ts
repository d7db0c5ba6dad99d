/**
 * One load-generator process: holds a share of the clients, WebSocket (raw `ws`: Herald,
 * Socket.IO with Engine.IO v4 / Socket.IO v5 framing, Nchan's plain WebSocket) or Server-Sent
 * Events (sse.ts: Herald's GET /v1/sse, Nchan's EventSource subscriber), and records deliveries:
 * distinct (client, message index) pairs and publish-to-receipt latency. Driven by the parent
 * over IPC (see protocol.ts); exits when the parent goes away.
 *
 * Over 400 lines: one process's client state is module-level and every part (open, record, ack,
 * reconnect hooks, stats) reads it; the pieces that stand alone are beside it (sse.ts,
 * http-acks.ts, reconnect.ts).
 */
import net from 'node:net';
import { mintDeviceToken } from '@herald/token';
import WebSocket from 'ws';
import { Histogram } from '../histogram.js';
import { nowMs, numberAfter, readPayload } from '../payload.js';
import { HttpAcker } from './http-acks.js';
import type { Command, ConnectResult, ConnectSpec, DeliveryStats, Reply } from './protocol.js';
import { Reconnector } from './reconnect.js';
import { SseClient } from './sse.js';

interface Client {
  /** Global index (device id, target URL, source address). */
  k: number;
  /** Index in this process's `clients` (delivery bitmap slot). */
  local: number;
  id: string;
  token: string;
  /** A connect was attempted already. */
  tried: boolean;
  ws: WebSocket | undefined;
  sse: SseClient | undefined;
  sock: net.Socket | undefined;
  ready: boolean;
  /** SSE: the reason of the server's `error` event, if one came before the end. */
  why: string;
  closed: boolean;
  /** Herald: the stream and seq to ack next (cumulative). */
  ackStream: string;
  ackSeq: number;
  /** When it last acked (ms, Date.now()). */
  ackedAt: number;
  /** Herald: the node of the last `welcome`. */
  node: string;
}

let spec: ConnectSpec | undefined;
let clients: Client[] = [];
let perNode: Record<string, number> = {};
const dirtyAcks = new Set<Client>();
let ackTimer: NodeJS.Timeout | undefined;
/**
 * HTTP acks in flight per generator process, at most. Beyond it a device's cumulative ack waits
 * for the next tick (it only gets coarser), so neither this process nor the server queues them.
 */
const ACKS_IN_FLIGHT = 64;
let acker = new HttpAcker(ACKS_IN_FLIGHT);
/** Parsed `spec.urls` (SSE clients connect with raw sockets). */
let targets: URL[] = [];
/** ConnectSpec.reconnect: brings back ready clients the other side closed (off by default). */
let reconnector: Reconnector<Client> | undefined;

// Recording state, reset by `expect`.
let perClient = 0;
let seen: Uint8Array = new Uint8Array(0);
let received = 0;
let unique = 0;
let duplicates = 0;
let unexpected = 0;
let dropped = 0;
let dropReasons: Record<string, number> = {};
let firstAt = 0;
let lastAt = 0;
let hist = new Histogram();
let cpuBase = process.cpuUsage();
let wsAcks = 0;

const send = (r: Reply) => process.send?.(r);
const bump = (m: Record<string, number>, key: string) => {
  m[key] = (m[key] ?? 0) + 1;
};

function record(c: Client, text: string): void {
  const p = readPayload(text);
  if (!p) return;
  received++;
  if (p.index >= 0 && p.index < perClient) {
    const slot = c.local * perClient + p.index;
    if (seen[slot]) duplicates++;
    else {
      seen[slot] = 1;
      unique++;
    }
  } else unexpected++;
  const now = nowMs();
  hist.record(now - p.sentAt);
  if (firstAt === 0) firstAt = now;
  lastAt = now;
}

function url(s: ConnectSpec, c: Client): string {
  const base = s.urls[c.k % s.urls.length]!;
  if (s.kind === 'herald') return base;
  if (s.kind === 'socketio') return `${base}/socket.io/?EIO=4&transport=websocket`;
  const channel = s.sub.mode === 'topic' ? s.sub.topic : s.sub.mode === 'broadcast' ? 'all' : c.id;
  return `${base}/sub/${channel}`;
}

/** Socket.IO connect packet: namespace `/` with the rooms to join in the auth payload. */
function socketioConnect(s: ConnectSpec, c: Client): string {
  const rooms = s.sub.mode === 'topic' ? [s.sub.topic] : s.sub.mode === 'own' ? [c.id] : [];
  return rooms.length > 0 ? `40${JSON.stringify({ rooms })}` : '40';
}

const isSse = (s: ConnectSpec) => s.kind === 'herald-sse' || s.kind === 'nchan-sse';

/** Path and query of an SSE client's GET. */
function ssePath(s: ConnectSpec, c: Client, base: URL): string {
  if (s.kind === 'herald-sse')
    return s.sub.mode === 'topic'
      ? `${base.pathname}?topics=${encodeURIComponent(s.sub.topic)}`
      : base.pathname;
  const channel = s.sub.mode === 'topic' ? s.sub.topic : s.sub.mode === 'broadcast' ? 'all' : c.id;
  return `/sse/${channel}`;
}

/** Remembers a Herald notification's stream and seq for the next cumulative ack. */
function noteAck(c: Client, text: string): void {
  const so = text.indexOf('"stream":"') + 10;
  c.ackStream = text.slice(so, text.indexOf('"', so));
  c.ackSeq = numberAfter(text, '"seq":', so);
  dirtyAcks.add(c);
}

/**
 * Opens one SSE client: ready on Herald's `welcome` event (its topics are live by then), or on
 * Nchan's 200 (its subscriber is registered before the head is sent).
 */
function openSse(s: ConnectSpec, c: Client, finish: (reason: string | undefined) => void): void {
  const base = targets[c.k % targets.length]!;
  const herald = s.kind === 'herald-sse';
  const sse = new SseClient(
    {
      host: base.hostname,
      port: Number(base.port),
      path: ssePath(s, c, base),
      headerLines: herald ? `Authorization: Bearer ${c.token}\r\n` : '',
      localAddress: s.sources[c.k % s.sources.length],
    },
    {
      onHead(status) {
        if (status !== 200) finish(`http:${status}`);
        else if (!herald) finish(undefined);
      },
      onEvent(type, data) {
        if (!herald) {
          if (type === 'message') record(c, data);
        } else if (type === 'notification') {
          record(c, data);
          noteAck(c, data);
        } else if (type === 'welcome') {
          const node = (JSON.parse(data) as { node?: string }).node;
          if (node) bump(perNode, node);
          finish(undefined);
        } else if (type === 'error') {
          const code = (JSON.parse(data) as { code?: number }).code;
          c.why = `sse-error:${code}`;
          if (!c.ready) finish(`herald:${code}`);
        }
      },
      onClose(reason) {
        const wasReady = c.ready && !c.closed;
        const why = c.why || reason;
        c.closed = true;
        dirtyAcks.delete(c);
        finish(why);
        if (wasReady) {
          dropped++;
          bump(dropReasons, why);
        }
      },
    },
  );
  c.sse = sse;
  c.sock = sse.sock;
}

/** Opens one client and completes its handshake; resolves with a failure reason or undefined. */
function openClient(s: ConnectSpec, c: Client): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (reason: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (reason === undefined) c.ready = true;
      else destroy(c);
      resolve(reason);
    };
    const timer = setTimeout(() => finish('timeout'), s.clientTimeoutMs);
    if (isSse(s)) {
      openSse(s, c, finish);
      return;
    }
    const connect = (options: net.NetConnectOpts & { socketPath?: string }) => {
      // As ws's own netConnect: `path` is the URL path, not an IPC socket path.
      const sock = net.connect({ ...options, path: options.socketPath } as net.NetConnectOpts);
      c.sock = sock;
      return sock;
    };
    let ws: WebSocket;
    try {
      ws = new WebSocket(url(s, c), {
        localAddress: s.sources[c.k % s.sources.length],
        perMessageDeflate: false,
        skipUTF8Validation: true,
        handshakeTimeout: s.clientTimeoutMs,
        createConnection: connect as unknown as typeof net.createConnection,
      });
    } catch (err) {
      finish(`throw:${(err as Error).message.slice(0, 40)}`);
      return;
    }
    c.ws = ws;
    ws.on('error', (err: NodeJS.ErrnoException) => {
      finish(`error:${err.code ?? err.message.slice(0, 60)}`);
    });
    ws.on('close', (code) => {
      const wasReady = c.ready;
      // destroy() marks the client closed first: then the close is ours, not the server's.
      const byUs = c.closed;
      c.closed = true;
      dirtyAcks.delete(c);
      finish(`close:${code}`);
      if (wasReady) {
        dropped++;
        bump(dropReasons, `close:${code}`);
        if (!byUs) reconnector?.dropped(c);
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      finish(`http:${res.statusCode}`);
    });

    if (s.kind === 'herald') {
      ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', token: c.token })));
      ws.on('message', (data) => {
        const text = data.toString();
        if (text.startsWith('{"type":"notification"')) {
          record(c, text);
          noteAck(c, text);
          return;
        }
        const f = JSON.parse(text) as { type: string; node?: string; code?: string };
        if (f.type === 'welcome') {
          c.node = f.node ?? '';
          if (f.node) bump(perNode, f.node);
          if (s.sub.mode === 'topic') ws.send(JSON.stringify({ type: 'subscribe', topic: s.sub.topic }));
          else finish(undefined);
        } else if (f.type === 'subscribed') finish(undefined);
        else if (f.type === 'error') finish(`herald:${f.code}`);
      });
    } else if (s.kind === 'socketio') {
      ws.on('message', (data) => {
        const text = data.toString();
        const t = text.charCodeAt(0);
        if (t === 52 /* '4' message */) {
          const p = text.charCodeAt(1);
          if (p === 50 /* '2' event */) record(c, text);
          else if (p === 48 /* '0' connect */) finish(undefined);
          else if (p === 52 /* '4' connect_error */) finish('socketio:connect_error');
        } else if (t === 50 /* '2' ping */) ws.send('3');
        else if (t === 48 /* '0' open */) ws.send(socketioConnect(s, c));
      });
    } else {
      ws.on('open', () => finish(undefined));
      ws.on('message', (data) => record(c, data.toString()));
    }
  });
}

/** Closes without a handshake and with a TCP RST, so no TIME_WAIT holds the source port. */
function destroy(c: Client): void {
  c.closed = true;
  dirtyAcks.delete(c);
  try {
    if (c.sock && !c.sock.destroyed) c.sock.resetAndDestroy();
  } catch {
    // not a TCP handle yet
  }
  try {
    c.ws?.terminate();
  } catch {
    // already gone
  }
}

/** Adds `s.count` clients (not connected yet) to those this process already holds. */
async function prepare(s: ConnectSpec): Promise<void> {
  spec = s;
  if ((s.kind === 'herald' || s.kind === 'herald-sse') && !s.tokenSecret)
    throw new Error('herald clients need tokenSecret');
  targets = s.urls.map((u) => new URL(u));
  for (let i = 0; i < s.count; i++) {
    const k = s.first + i;
    const id = `${s.idPrefix}${k}`;
    const token =
      s.kind === 'herald' || s.kind === 'herald-sse'
        ? await mintDeviceToken({ secret: s.tokenSecret!, device: id, user: `u-${id}`, expiresIn: '3h' })
        : '';
    clients.push({
      k,
      local: clients.length,
      id,
      token,
      tried: false,
      ws: undefined,
      sse: undefined,
      sock: undefined,
      ready: false,
      why: '',
      closed: false,
      ackStream: '',
      ackSeq: 0,
      ackedAt: 0,
      node: '',
    });
  }
  if (s.reconnect && s.kind === 'herald' && !reconnector)
    reconnector = new Reconnector<Client>(s.reconnect, (c) => {
      Object.assign(c, { ready: false, closed: false, ws: undefined, sock: undefined, why: '' });
      return openClient(s, c);
    });
  clearInterval(ackTimer);
  const every = s.ackEveryMs ?? 100;
  ackTimer = every > 0 ? setInterval(flushAcks, every) : undefined;
}

/**
 * Each client that received since its last ack acks its last (stream, seq), cumulative, unless
 * it acked less than `ackIntervalMs` ago (then a later tick does, as the SDK would).
 */
function flushAcks(): void {
  const now = Date.now();
  const holdFrom = now - (spec?.ackIntervalMs ?? 0);
  for (const c of dirtyAcks) {
    if (c.closed) {
      dirtyAcks.delete(c);
      continue;
    }
    if (c.ackedAt > holdFrom) continue;
    if (c.ws) {
      if (c.ws.readyState === WebSocket.OPEN) {
        c.ws.send(`{"type":"ack","stream":"${c.ackStream}","seq":${c.ackSeq}}`);
        wsAcks++;
      }
    } else if (c.sse) {
      const t = targets[c.k % targets.length]!;
      const body = `{"cursors":{"${c.ackStream}":${c.ackSeq}}}`;
      // Full: this one and the rest keep their (cumulative) ack for the next tick.
      if (!acker.post(t.hostname, Number(t.port), c.token, body)) return;
    }
    c.ackedAt = now;
    dirtyAcks.delete(c);
  }
}

async function connectAll(): Promise<ConnectResult> {
  const s = spec!;
  const t0 = performance.now();
  const deadline = t0 + s.phaseTimeoutMs;
  const errors: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  let lastDone = t0;
  const todo = clients.filter((c) => !c.tried);
  let next = 0;
  let inflight = 0;
  await new Promise<void>((resolve) => {
    const launch = () => {
      while (inflight < s.concurrency && next < todo.length && performance.now() < deadline) {
        const c = todo[next++]!;
        c.tried = true;
        inflight++;
        void openClient(s, c).then((reason) => {
          inflight--;
          if (reason === undefined) {
            ok++;
            lastDone = performance.now();
          } else {
            failed++;
            bump(errors, reason);
          }
          launch();
        });
      }
      if (inflight === 0) resolve();
    };
    launch();
  });
  for (let i = next; i < todo.length; i++) todo[i]!.tried = true;
  if (next < todo.length) {
    failed += todo.length - next;
    errors.phase_timeout = todo.length - next;
  }
  return { ok, failed, errors, ms: Math.round(lastDone - t0), perNode };
}

function expect(n: number): void {
  perClient = n;
  seen = new Uint8Array(clients.length * n);
  received = 0;
  unique = 0;
  duplicates = 0;
  unexpected = 0;
  dropped = 0;
  dropReasons = {};
  firstAt = 0;
  lastAt = 0;
  hist = new Histogram();
  cpuBase = process.cpuUsage();
  wsAcks = 0;
  acker.reset();
}

function stats(): DeliveryStats {
  const cpu = process.cpuUsage(cpuBase);
  let open = 0;
  for (const c of clients) if (c.ready && !c.closed) open++;
  return {
    received,
    unique,
    duplicates,
    unexpected,
    dropped,
    dropReasons,
    open,
    firstAt,
    lastAt,
    hist: hist.toJSON(),
    cpuS: (cpu.user + cpu.system) / 1e6,
    acks: wsAcks + acker.sent,
    acksAnswered: acker.ok,
    ackErrors: acker.errors,
  };
}

async function closeAll(): Promise<void> {
  reconnector?.stop();
  reconnector = undefined;
  clearInterval(ackTimer);
  dirtyAcks.clear();
  for (const c of clients) destroy(c);
  clients = [];
  // Keep-alive ack connections point at servers that are about to stop.
  acker.close();
  acker = new HttpAcker(ACKS_IN_FLIGHT);
  perNode = {};
  seen = new Uint8Array(0);
  // Let the RSTs go out before answering.
  await new Promise((r) => setTimeout(r, 50));
}

process.on('message', (cmd: Command) => {
  void (async () => {
    try {
      switch (cmd.op) {
        case 'prepare':
          await prepare(cmd.spec);
          return send({ op: 'ok', id: cmd.id });
        case 'connect':
          return send({ op: 'connected', id: cmd.id, result: await connectAll() });
        case 'expect':
          expect(cmd.perClient);
          return send({ op: 'ok', id: cmd.id });
        case 'stats':
          return send({ op: 'stats', id: cmd.id, stats: stats() });
        case 'reconnects':
          if (!reconnector) throw new Error('reconnect mode is off (ConnectSpec.reconnect)');
          return send({ op: 'reconnects', id: cmd.id, stats: reconnector.stats(cmd.times) });
        case 'close':
          await closeAll();
          return send({ op: 'ok', id: cmd.id });
        case 'exit':
          await closeAll();
          send({ op: 'ok', id: cmd.id });
          process.disconnect?.();
          process.exit(0);
      }
    } catch (err) {
      send({ op: 'error', id: cmd.id, message: (err as Error).stack ?? String(err) });
    }
  })();
});

// Never outlive the parent.
process.on('disconnect', () => process.exit(0));
