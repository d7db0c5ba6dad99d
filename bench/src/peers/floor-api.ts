/**
 * The floor of Herald's architecture, publish side (issue #14): a bare `node:http` server doing
 * what the API of DESIGN.md must do per notification at the least, and nothing more: read the
 * request, parse its JSON (every JSON API checks its input), one Redis command (a `PUBLISH` to the
 * device's channel: no durable append, no status, no presence lookup), answer 202 once Redis has.
 * No framework, no authentication. With floor-node.ts (the push side) it is the `herald-floor`
 * system: publisher -> API -> Redis -> push node -> device, the hops of Herald's design.
 *
 * POST /p?d=<device>   body: the notification's data (JSON)
 * POST /pb             body: {"items":[{"d":"<device>","b":<data>},...]}: one PUBLISH per item,
 *                      auto-pipelined (one write to Redis for the request)
 * GET  /healthz
 * Env: PORT, HOST (default 127.0.0.1), REDIS_URL, FLOOR_APPEND=1: instead of the bare PUBLISH, one
 * script call that also appends to the device's stream (INCR of its seq, XADD with a length bound)
 * before the PUBLISH: the floor with Herald's durable append.
 */
import http from 'node:http';
import { Redis } from 'ioredis';
import { exitOnSignal } from './bare.js';

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? '127.0.0.1';
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  enableAutoPipelining: true,
  maxRetriesPerRequest: 1,
});

const APPEND = process.env.FLOOR_APPEND === '1';
redis.defineCommand('floorAppend', {
  numberOfKeys: 3,
  lua: `local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 1000, seq .. '-0', 'd', ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[1])
return seq`,
});
type AppendRedis = Redis & {
  floorAppend(seq: string, stream: string, channel: string, data: string): Promise<number>;
};

/** One notification to one device: PUBLISH, or append + PUBLISH (FLOOR_APPEND=1). */
function send(device: string, data: string): Promise<unknown> {
  if (!APPEND) return redis.publish(`d:${device}`, data);
  return (redis as AppendRedis).floorAppend(`{${device}}:seq`, `{${device}}:inbox`, `d:${device}`, data);
}

/** Bound on a request body (a batch of 100 notifications of 200 bytes is about 25 KB). */
const MAX_BODY = 1 << 20;

function answer(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

interface BatchItem {
  d: string;
  b: unknown;
}

async function handle(url: URL, text: string): Promise<[number, string]> {
  if (url.pathname === '/p') {
    const device = url.searchParams.get('d');
    if (!device) return [400, '{"code":"no_device"}'];
    JSON.parse(text);
    await send(device, text);
    return [202, '{"status":"sent"}'];
  }
  const { items } = JSON.parse(text) as { items: BatchItem[] };
  await Promise.all(items.map((it) => send(it.d, JSON.stringify(it.b))));
  return [202, `{"accepted":${items.length}}`];
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.method === 'GET' && url.pathname === '/healthz') return answer(res, 200, '{"status":"ok"}');
  if (req.method !== 'POST' || (url.pathname !== '/p' && url.pathname !== '/pb'))
    return answer(res, 404, '{"code":"not_found"}');
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size > MAX_BODY) req.destroy();
    else chunks.push(c);
  });
  req.on('end', () => {
    handle(url, Buffer.concat(chunks).toString('utf8')).then(
      ([status, body]) => answer(res, status, body),
      (err: Error) => answer(res, err instanceof SyntaxError ? 400 : 503, '{"code":"failed"}'),
    );
  });
});
server.listen(port, host);
exitOnSignal(() => {
  server.close();
  redis.disconnect();
});
