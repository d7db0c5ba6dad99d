/**
 * `node bench/dist/write-cork.js [sockets] [eventsPerRound] [rounds]`: server CPU per SSE-sized
 * event written to many sockets, several ways: one uncorked `socket.write(id + event)` per event
 * (what Herald's SSE transport did when BENCHMARKS.md's SSE section was recorded), the same
 * corked per tick (as Herald's WebSocket transport does), corked with the shared event as one
 * pre-encoded Buffer, then with the `2.` text id (a cached per-connection head + the seq) as a
 * second write, copied into one Buffer per event, or gathered into one Buffer per connection per
 * tick (what apps/node/src/sse-gather.ts does). A forked child holds the client ends and discards
 * what it reads; every round waits for all sockets to drain, so nothing queues without bound.
 */
import { fork } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const [m = 1000, k = 32, rounds = 20] = process.argv.slice(process.argv[2] === 'client' ? 4 : 2).map(Number);

if (process.argv[2] === 'client') {
  const port = Number(process.argv[3]);
  let open = 0;
  for (let i = 0; i < m; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      if (++open === m) process.send?.('ready');
    });
    s.on('data', () => undefined);
  }
  process.on('disconnect', () => process.exit(0));
} else {
  const socks: net.Socket[] = [];
  const srv = net.createServer((s) => {
    s.setNoDelay(true);
    socks.push(s);
  });
  srv.listen(0, '127.0.0.1', () => void main());
  const main = async () => {
    const port = (srv.address() as net.AddressInfo).port;
    const child = fork(fileURLToPath(import.meta.url), ['client', String(port), String(m)]);
    await new Promise((r) => child.once('message', r));
    for (let t = 0; socks.length < m; t++) {
      if (t > 1000) throw new Error(`only ${socks.length} of ${m} connections arrived`);
      await new Promise((r) => setTimeout(r, 10));
    }
    // The broadcast scenario's notification event (200-byte payload) and a 3-stream `id:`.
    const ev = `event: notification\ndata: {"type":"notification","stream":"topic:bench.broadcast","seq":1,"id":"0193abcdef","ts":1764073400000,"data":{"bt":1764073400000.123,"bi":1,"p":"${'x'.repeat(160)}"}}\n\n`;
    const evBuf = Buffer.from(ev);
    const id = (seq: number) =>
      `id: 1.${Buffer.from(`{"inbox":0,"broadcast":0,"topic:bench.broadcast":${seq}}`, 'latin1').toString('base64url')}\n`;
    const evBody = Buffer.from(ev.slice(0, -1));
    const head = 'id: 2.inbox=0,broadcast=0,topic:bench.broadcast=';
    const cork = (s: net.Socket) => {
      if (s.writableCorked) return;
      s.cork();
      process.nextTick(() => s.uncork());
    };
    const variants: Record<string, (s: net.Socket, seq: number) => void> = {
      uncorked: (s, seq) => s.write(id(seq) + ev),
      corked: (s, seq) => {
        cork(s);
        s.write(id(seq) + ev);
      },
      'corked + Buffer': (s, seq) => {
        cork(s);
        s.write(id(seq));
        s.write(evBuf);
      },
      // The `2.` id: a per-connection head cached, the moving stream's seq appended.
      'v2 id + Buffer': (s, seq) => {
        cork(s);
        s.write(`${head}${seq}\n`);
        s.write(evBuf);
      },
      // One Buffer per event and connection: the shared bytes (without the blank line) + the id.
      'v2 one Buffer': (s, seq) => {
        cork(s);
        const tail = `${head}${seq}\n\n`;
        const b = Buffer.allocUnsafe(evBody.length + tail.length);
        evBody.copy(b, 0);
        b.write(tail, evBody.length, 'latin1');
        s.write(b);
      },
      // Each connection gathers the tick's events (shared bytes + id text) and writes one Buffer.
      'v2 tick batch': (s, seq) => {
        let p = pend.get(s);
        if (!p) {
          p = { parts: [], bytes: 0 };
          pend.set(s, p);
          if (pend.size === 1) process.nextTick(flush);
        }
        const tail = `${head}${seq}\n\n`;
        p.parts.push(evBody, tail);
        p.bytes += evBody.length + tail.length;
      },
    };
    const pend = new Map<net.Socket, { parts: (Buffer | string)[]; bytes: number }>();
    const flush = () => {
      for (const [s, p] of pend) {
        const b = Buffer.allocUnsafe(p.bytes);
        let o = 0;
        for (const x of p.parts) o += typeof x === 'string' ? b.write(x, o, 'latin1') : x.copy(b, o);
        s.write(b);
      }
      pend.clear();
    };
    for (const rep of [1, 2])
      for (const [name, write] of Object.entries(variants)) {
        const c0 = process.cpuUsage();
        for (let r = 0; r < rounds; r++) {
          for (let seq = 0; seq < k; seq++) for (const s of socks) write(s, seq);
          await new Promise((res) => setImmediate(res));
          await Promise.all(
            socks.filter((s) => s.writableLength > 0).map((s) => new Promise((res) => s.once('drain', res))),
          );
        }
        const c = process.cpuUsage(c0);
        const n = m * k * rounds;
        console.log(
          `${name.padEnd(16)} run ${rep}: ${((c.user + c.system) / 1e3).toFixed(0)} ms CPU for ${n} events, ${((c.user + c.system) / n).toFixed(2)} µs per event`,
        );
      }
    child.kill();
    srv.close();
    for (const s of socks) s.destroy();
  };
}
