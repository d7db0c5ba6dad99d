import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { isValidId, isValidTopic } from '@herald/protocol';
import { Probe } from '@herald/stack';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Ending,
  familySeed,
  fragments,
  OP,
  pool,
  RawWs,
  Rng,
  show,
  showEnding,
  timeout,
  wsFrame,
} from '../support/fuzz.js';
import { API_KEY, type SystemStack, startSystem, TOKEN_SECRET } from '../support/system.js';

/**
 * A bounded fuzz of the door: malformed WebSocket frames at a push node (directly and through
 * nginx) and malformed HTTP at the API. Every case runs on its own connection and must end with
 * the code docs/protocol.md or docs/api.md gives for that input; after every family the node and
 * the API must still serve a real device and a real publish, and at the end every process must
 * still run. Inputs come from a seeded PRNG: set HERALD_FUZZ_SEED to replay a failure.
 */

const SEED = Number(process.env.HERALD_FUZZ_SEED ?? 0x5eed_d00d);
const CONCURRENCY = 20;
const CASE_MS = 5000;
/** Shortened so the "nothing after the handshake" cases end within a case's time. */
const HELLO_TIMEOUT_MS = 2000;
/** The node's default HERALD_MAX_FRAME_BYTES. */
const MAX_FRAME = 65_536;

// Close codes from docs/protocol.md (1002, 1007, 1008 are ws's own answers to RFC 6455 violations).
const BAD_FRAME = 4000;
const BAD_TOKEN = 4001;
const HELLO_TIMEOUT = 4002;
const TOKEN_EXPIRED = 4003;
const RATE = 4008;
const TOO_BIG = 1009;
const PROTOCOL = 1002;
const NOT_UTF8 = 1007;
const TOO_MANY_FRAGMENTS = 1008;
/** Every code protocol.md documents. */
const DOCUMENTED = [
  PROTOCOL,
  NOT_UTF8,
  TOO_MANY_FRAGMENTS,
  TOO_BIG,
  4000,
  4001,
  4002,
  4003,
  4008,
  4009,
  4012,
  4013,
  4500,
];

let sys: SystemStack;
let nodePort: number;
let nginxPort: number;
let apiPort: number;
let uniq = 0;

beforeAll(async () => {
  sys = await startSystem({ nodes: 1, env: { HERALD_HELLO_TIMEOUT_MS: String(HELLO_TIMEOUT_MS) } });
  nodePort = sys.nodes[0]!.port;
  nginxPort = Number(new URL(sys.wsUrl).port);
  apiPort = Number(new URL(sys.apiUrl).port);
}, 60_000);
afterAll(async () => {
  await sys?.teardown();
}, 30_000);

const nextDevice = (tag: string) => `fz-${tag}-${++uniq}`;
const token = (device: string, topics?: string[]) => sys.token(device, `fzu-${device}`, topics);

// ---------------------------------------------------------------------------------------------
// Liveness: after every family, both doors still serve real traffic.
// ---------------------------------------------------------------------------------------------

let liveRound = 0;

async function assertServing(after: string): Promise<void> {
  const procs = [sys.api, sys.worker, ...sys.nodes];
  for (const p of procs) expect(p.process.running, `${p.name} died during "${after}"`).toBe(true);
  for (const url of [...sys.nodes.map((n) => n.url), sys.apiUrl]) {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(CASE_MS) });
    expect(res.status, `${url}/healthz after "${after}"`).toBe(200);
  }
  const k = ++liveRound;
  const direct = `fz-live-direct-${k}`;
  const viaLb = `fz-live-lb-${k}`;
  const a = await Probe.open(`ws://127.0.0.1:${nodePort}/v1/ws`);
  const b = await sys.connect(viaLb);
  try {
    a.send({ type: 'hello', token: await token(direct) });
    await a.frame('welcome', CASE_MS);
    const res = await sys.publish({ to: { devices: [direct, viaLb] }, data: { live: k } });
    expect(res.status, `a valid publish after "${after}": ${show(res.body)}`).toBe(202);
    for (const p of [a, b]) {
      const n = await p.frame('notification', CASE_MS, (f) => f.id === res.body.id);
      expect(n.data).toEqual({ live: k });
    }
  } finally {
    a.close();
    b.close();
  }
}

/**
 * Failures grouped by what went wrong, with a few inputs each, so one bug reads as one line. A
 * problem is `what | detail`: cases group on `what`; the detail is shown with each example.
 */
function report(family: string, seed: number, failures: { input: string; problem: string }[]): string {
  const groups = new Map<string, string[]>();
  for (const f of failures) {
    const [what, detail] = f.problem.split(' | ', 2);
    const key = what!.replace(/\b[0-9a-f]{8}-[0-9a-f-]{27}\b/g, '<id>').replace(/fz-[\w-]+-\d+/g, '<dev>');
    groups.set(key, [...(groups.get(key) ?? []), detail ? `${f.input} -> ${detail}` : f.input]);
  }
  const lines = [...groups].map(
    ([problem, inputs]) =>
      `  ${inputs.length} x ${problem}\n${inputs
        .slice(0, 3)
        .map((i) => `      e.g. ${i}`)
        .join('\n')}`,
  );
  return `${failures.length} case(s) of "${family}" failed (HERALD_FUZZ_SEED=${SEED}, family seed ${seed}):\n${lines.join('\n')}`;
}

// ---------------------------------------------------------------------------------------------
// WebSocket cases
// ---------------------------------------------------------------------------------------------

type Via = 'node' | 'nginx';

interface WsCase {
  /** What was sent, for the report. */
  input: string;
  /** undefined when the node answered as documented, else what it did instead. */
  run(ws: RawWs): Promise<string | undefined>;
}

/** Checks an ending against the codes allowed for the input (`drop`: a cut without a close frame is fine too). */
function judge(
  e: Ending,
  codes: readonly number[],
  o: { drop?: boolean; open?: boolean } = {},
): string | undefined {
  if (e.kind === 'close' && codes.includes(e.code)) return undefined;
  if (e.kind === 'drop' && o.drop) return undefined;
  if (e.kind === 'open' && o.open) return undefined;
  const want = [...codes.map(String), ...(o.drop ? ['a drop'] : []), ...(o.open ? ['staying open'] : [])];
  const undocumented =
    e.kind === 'close' && !DOCUMENTED.includes(e.code) ? ' (a code protocol.md does not list)' : '';
  return `got ${showEnding(e)}${undocumented}; expected ${want.join(' or ')}`;
}

/** Sends `frames` (encoded) and expects the connection to end with one of `codes`. */
function closes(
  input: string,
  codes: readonly number[],
  send: (ws: RawWs) => Promise<void> | void,
  o: { drop?: boolean; open?: boolean; waitMs?: number } = {},
): WsCase {
  return {
    input,
    async run(ws) {
      await send(ws);
      return judge(await ws.waitEnd(o.waitMs ?? CASE_MS - 500), codes, o);
    },
  };
}

/** Says hello with a fresh valid token; returns an error text when no welcome came. */
async function hello(ws: RawWs, device = nextDevice('h'), topics?: string[]): Promise<string | undefined> {
  ws.json({ type: 'hello', token: await token(device, topics) });
  const w = await ws.frame('welcome', 3000);
  return w ? undefined : `no welcome to a valid hello: ${showEnding(ws.ending)}`;
}

/** Valid hello first, then `send`, then one of `codes`. */
function closesAfterHello(
  input: string,
  codes: readonly number[],
  send: (ws: RawWs) => Promise<void> | void,
  o: { drop?: boolean; open?: boolean; waitMs?: number } = {},
): WsCase {
  return {
    input: `hello, then ${input}`,
    async run(ws) {
      const bad = await hello(ws);
      if (bad) return bad;
      await send(ws);
      return judge(await ws.waitEnd(o.waitMs ?? CASE_MS - 1500), codes, o);
    },
  };
}

/** Valid hello, then a request the node refuses or answers with `frame`; the connection must stay open. */
function staysOpen(
  input: string,
  frame: { type: string; code?: string },
  send: (ws: RawWs, device: string) => Promise<void> | void,
  topics?: string[],
): WsCase {
  return {
    input: `hello, then ${input}`,
    async run(ws) {
      const device = nextDevice('open');
      const bad = await hello(ws, device, topics);
      if (bad) return bad;
      await send(ws, device);
      const got = await ws.frame(frame.type, 3000, (f) => frame.code === undefined || f.code === frame.code);
      if (!got)
        return `no ${frame.type}${frame.code ? ` ${frame.code}` : ''} frame; frames ${show(ws.frames.slice(1))}, ${showEnding(ws.ending)}`;
      await new Promise((r) => setTimeout(r, 150));
      return ws.ending.kind === 'open'
        ? undefined
        : `then ${showEnding(ws.ending)}; expected it to stay open`;
    },
  };
}

const expectedForSize = (text: string | Buffer, codes: readonly number[]) =>
  Buffer.byteLength(text) > MAX_FRAME ? [TOO_BIG] : codes;

async function runWsFamily(
  family: string,
  count: number,
  gen: (rng: Rng, i: number) => WsCase,
): Promise<void> {
  const seed = familySeed(SEED, family);
  const rng = new Rng(seed);
  const cases = Array.from({ length: count }, (_, i) => ({
    c: gen(rng, i),
    // Most cases straight at the node, some through nginx (L4: the same bytes either way).
    via: (rng.bool(0.7) ? 'node' : 'nginx') as Via,
  }));
  const failures: { input: string; problem: string }[] = [];
  await pool(cases, CONCURRENCY, async ({ c, via }, i) => {
    const input = `#${i} via ${via}: ${c.input}`;
    let ws: RawWs | undefined;
    try {
      ws = await RawWs.open(via === 'node' ? nodePort : nginxPort);
      const opened = ws;
      const problem = await timeout(c.run(opened), CASE_MS, 'case');
      if (problem) failures.push({ input, problem });
      else if (opened.odd.length > 0)
        failures.push({ input, problem: `odd server frames ${show(opened.odd)}` });
    } catch (err) {
      failures.push({ input, problem: (err as Error).message });
    } finally {
      ws?.destroy();
    }
  });
  await assertServing(family);
  expect(failures.length, report(family, seed, failures)).toBe(0);
}

// ---- value pools ----

const BAD_SEQS: unknown[] = [
  '13',
  -1,
  -13,
  1.5,
  0.1,
  1e308,
  -1e308,
  'NaN',
  'Infinity',
  null,
  true,
  {},
  { seq: 1 },
  [],
  [1],
  2 ** 53,
  2 ** 64,
];
const BAD_TOPICS: unknown[] = [
  1,
  null,
  true,
  {},
  [],
  ['news'],
  '',
  '.',
  '..',
  'a..b',
  '.news',
  'news.',
  'news sport',
  'news/sport',
  'news.*',
  'news.>',
  '*',
  '>',
  'x'.repeat(129),
  `${'a.'.repeat(64)}a`,
  'nëws',
  '日本',
  '🔥',
  'news\u0000',
  'news\n',
  'topic:news',
];
/** Not strings: a bad frame (4000). A string that is not a valid topic gets `topic_invalid`. */
const NON_STRING_TOPICS = BAD_TOPICS.filter((t) => typeof t !== 'string');
const INVALID_STRING_TOPICS = BAD_TOPICS.filter((t): t is string => typeof t === 'string');
const BAD_STREAMS: unknown[] = [
  1,
  null,
  {},
  [],
  '',
  'nope',
  'INBOX',
  'inbox ',
  'topic:',
  'topic:a..b',
  'topic:news sport',
  'broadcast:',
  `topic:${'x'.repeat(129)}`,
];

function randomJson(rng: Rng, depth = 0): unknown {
  const r = rng.int(0, depth > 2 ? 4 : 6);
  switch (r) {
    case 0:
      return null;
    case 1:
      return rng.bool();
    case 2:
      return rng.pick([0, -1, 1e308, -1e-308, 2 ** 53 + 1, rng.int(-1e9, 1e9), rng.float()]);
    case 3:
      return rng.unicode(rng.int(0, 20));
    case 4:
      return rng.nasty(rng.int(0, 6));
    case 5:
      return Array.from({ length: rng.int(0, 4) }, () => randomJson(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(0, 4); i > 0; i--) o[rng.nasty(rng.int(1, 3))] = randomJson(rng, depth + 1);
      return o;
    }
  }
}

/** Valid-looking frames of every client type, as text (the token is a placeholder). */
function sampleFrame(rng: Rng): string {
  return JSON.stringify(
    rng.pick([
      {
        type: 'hello',
        token: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln',
        cursors: { inbox: 12, 'topic:news': 40 },
      },
      { type: 'ack', stream: 'inbox', seq: 13 },
      { type: 'subscribe', topic: 'news.sport', cursor: 3 },
      { type: 'unsubscribe', topic: 'news.sport' },
      { type: 'ping' },
      { type: 'refresh', token: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln' },
    ]),
  );
}

/** Replaces, inserts or deletes a few characters. */
function garble(rng: Rng, s: string): string {
  let out = s;
  for (let n = rng.int(1, 4); n > 0; n--) {
    const at = rng.int(0, Math.max(0, out.length - 1));
    const ch = rng.pick([
      '{',
      '}',
      '[',
      ']',
      '"',
      ':',
      ',',
      '\\',
      ' ',
      'x',
      '0',
      '\u0000',
      'é',
      rng.unicode(1),
    ]);
    const op = rng.int(0, 2);
    out =
      op === 0
        ? out.slice(0, at) + ch + out.slice(at + 1)
        : op === 1
          ? out.slice(0, at) + ch + out.slice(at)
          : out.slice(0, at) + out.slice(at + 1);
  }
  return out;
}

const b64url = (v: unknown) =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const secret = new TextEncoder().encode(TOKEN_SECRET);
const nowS = () => Math.floor(Date.now() / 1000);

/** A token that must be refused: [token, expected close code]. */
async function badToken(rng: Rng): Promise<[string, number]> {
  const dev = nextDevice('tok');
  const claims = { sub: dev, uid: `u-${dev}`, exp: nowS() + 3600 };
  const sign = (payload: Record<string, unknown>, alg = 'HS256', key: Uint8Array = secret) =>
    new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT' }).sign(key);
  switch (rng.int(0, 17)) {
    case 0:
      return [rng.unicode(rng.int(1, 300)), BAD_TOKEN];
    case 1:
      return [`${b64url(rng.bytes(20))}.${b64url(rng.bytes(30))}.${b64url(rng.bytes(32))}`, BAD_TOKEN];
    case 2:
      return [rng.pick(['a.b.c', '..', '.', 'eyJ', 'Bearer x', 'null', '{}']), BAD_TOKEN];
    case 3:
      return [`${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`, BAD_TOKEN];
    case 4:
      return [await sign(claims, 'HS256', new TextEncoder().encode('not-the-secret-at-all')), BAD_TOKEN];
    case 5:
      return [await sign(claims, 'HS512'), BAD_TOKEN];
    case 6:
      return [await sign({ sub: dev, uid: `u-${dev}` }), BAD_TOKEN];
    case 7:
      return [await sign({ uid: `u-${dev}`, exp: claims.exp }), BAD_TOKEN];
    case 8:
      return [await sign({ ...claims, sub: rng.pick(['a b', 'x'.repeat(129), 'dév', '', 42]) }), BAD_TOKEN];
    case 9:
      return [await sign({ ...claims, uid: rng.pick([undefined, 7, '', 'u u', {}]) }), BAD_TOKEN];
    case 10:
      return [await sign({ ...claims, topics: rng.pick(['news', [1], { a: 1 }, [null]]) }), BAD_TOKEN];
    case 11:
      return [await sign({ ...claims, exp: nowS() - rng.int(60, 1e6) }), TOKEN_EXPIRED];
    case 12:
      return [await sign({ ...claims, nbf: nowS() + 3600 }), BAD_TOKEN];
    case 13:
      return [await sign({ ...claims, exp: rng.pick(['soon', null, [], {}]) }), BAD_TOKEN];
    case 14: {
      // Not ' ', '=' or '\n': jose ignores those in the signature, so the signature still verifies.
      const suffix = rng.pick(['x', 'A', '.', '==', '.abc']);
      return [`${await sign(claims)}${suffix}`, BAD_TOKEN];
    }
    case 15: {
      const sig = b64url(rng.bytes(32));
      const [h, p] = (await sign(claims)).split('.');
      return [`${h}.${p}.${sig}`, BAD_TOKEN];
    }
    case 16:
      return [
        `${b64url({ alg: 'HS256', crit: ['x-unknown'], 'x-unknown': 1 })}.${b64url(claims)}.${b64url(rng.bytes(32))}`,
        BAD_TOKEN,
      ];
    default:
      return [rng.unicode(8192).slice(0, 8192) || 'x', BAD_TOKEN];
  }
}

/** A cursor value that passes validation (a safe non-negative integer), small or huge. */
function extremeCursor(rng: Rng): number {
  return rng.pick([
    0,
    1,
    7,
    1e6,
    1e12,
    1e13,
    1e14 - 1,
    1e14,
    1e15,
    2 ** 53 - 1,
    rng.int(0, 2 ** 31),
    Math.floor(rng.float() * 2 ** 53),
  ]);
}

// ---- the families ----

describe('WebSocket door: every malformed input gets its documented close, and the node keeps serving', () => {
  it('random valid-UTF-8 text closes 4000', async () => {
    await runWsFamily('random unicode text', 15, (rng) => {
      const text = rng.unicode(rng.int(1, 2000));
      return closes(`text ${show(text, 60)}`, expectedForSize(text, [BAD_FRAME]), (ws) => ws.text(text));
    });
  });

  it('random bytes as a text frame close 4000, 1002 or 1007 (not UTF-8)', async () => {
    await runWsFamily('random bytes as text', 15, (rng) => {
      const bytes = rng.bytes(rng.int(1, 2000));
      const before = rng.bool(0.7);
      return before
        ? closes(`text frame of ${show(bytes)}`, [BAD_FRAME, PROTOCOL, NOT_UTF8], (ws) => ws.text(bytes))
        : closesAfterHello(`text frame of ${show(bytes)}`, [BAD_FRAME, PROTOCOL, NOT_UTF8], (ws) =>
            ws.text(bytes),
          );
    });
  });

  it('truncated JSON closes 4000', async () => {
    await runWsFamily('truncated JSON', 15, (rng) => {
      const full = sampleFrame(rng);
      const text = full.slice(0, rng.int(0, full.length - 1));
      return closes(`text ${show(text)}`, [BAD_FRAME], (ws) => ws.text(text));
    });
  });

  it('garbled JSON closes 4000 (or 4001 when it still parses as a hello)', async () => {
    await runWsFamily('garbled JSON', 20, (rng) => {
      const text = garble(rng, sampleFrame(rng));
      return closes(`text ${show(text)}`, [BAD_FRAME, BAD_TOKEN], (ws) => ws.text(text));
    });
  });

  it('hello with wrong types closes 4000 (1009 when over the frame limit)', async () => {
    await runWsFamily('hello with wrong types', 30, (rng) => {
      const kind = rng.int(0, 2);
      if (kind === 0) {
        const tok = rng.pick<unknown>([
          7,
          1e308,
          -1,
          null,
          true,
          false,
          {},
          { jwt: 'x' },
          [],
          ['a.b.c'],
          '',
          'x'.repeat(8193),
          'x'.repeat(rng.int(8193, 60_000)),
          'x'.repeat(rng.int(70_000, 100_000)),
          undefined,
        ]);
        const text = JSON.stringify({ type: 'hello', token: tok });
        return closes(`hello ${show(text)}`, expectedForSize(text, [BAD_FRAME]), (ws) => ws.text(text));
      }
      // Bad cursors behind a valid token: the frame is refused before the token is looked at.
      const cursors = rng.pick<() => string>([
        () => JSON.stringify(rng.pick<unknown>([[], 'inbox', 1, true, null, [['inbox', 1]]])),
        () =>
          `{"inbox":${rng.pick(['-1', '-13', '1.5', '0.5', '1e308', '1e400', '-1e400', '"NaN"', '"12"', 'null', 'true', '{}', '[]', '[1]', '9007199254740992', '18446744073709551616'])}}`,
        () => `{"broadcast":${rng.pick(['-1', '2.5', '"1"', '{"seq":1}', '1e308'])}}`,
        () =>
          `{${JSON.stringify(rng.pick(['nope', 'INBOX', 'topic:', 'topic:a..b', 'topic:x y', '__proto__', 'constructor', '', rng.nasty(4)]))}:1}`,
        () => {
          const d = rng.int(2, 2000);
          return `{"inbox":${'{"a":'.repeat(d)}1${'}'.repeat(d)}}`;
        },
        () => {
          const n = rng.pick([257, 300, rng.int(257, 5000), 10_000]);
          const keys = Array.from({ length: n }, (_, i) => `"topic:t${i}":${i}`);
          return `{${keys.join(',')}}`;
        },
      ])();
      return {
        input: `hello with a valid token and cursors ${show(cursors, 100)}`,
        async run(ws) {
          const text = `{"type":"hello","token":${JSON.stringify(await token(nextDevice('cur')))},"cursors":${cursors}}`;
          ws.text(text);
          return judge(await ws.waitEnd(CASE_MS - 500), expectedForSize(text, [BAD_FRAME]));
        },
      };
    });
  });

  it('bad tokens close 4001 (4003 when expired)', async () => {
    await runWsFamily('bad tokens', 25, (rng) => {
      const refresh = rng.bool(0.2);
      // Drawn now, so the inputs do not depend on the order the cases run in.
      const pick = badToken(rng);
      return {
        input: refresh ? 'hello, then refresh with a bad token' : 'hello with a bad token',
        async run(ws) {
          const [tok, code] = await pick;
          if (refresh) {
            const bad = await hello(ws);
            if (bad) return bad;
            ws.json({ type: 'refresh', token: tok });
          } else ws.json({ type: 'hello', token: tok });
          const problem = judge(await ws.waitEnd(3000), [code]);
          return problem && `token ${show(tok, 100)}: ${problem}`;
        },
      };
    });
  });

  it('unknown frame types and non-objects close 4000', async () => {
    await runWsFamily('unknown frame types', 20, (rng) => {
      const text = rng.pick<() => string>([
        () => JSON.stringify({ type: rng.unicode(rng.int(0, 40)) }),
        () =>
          JSON.stringify({
            type: rng.pick<unknown>([
              'HELLO',
              'Hello',
              ' hello',
              'hello\u0000',
              '__proto__',
              'constructor',
              'toString',
              'welcome',
              'notification',
              'pong',
              'error',
              'gap',
              null,
              1,
              true,
              {},
              ['hello'],
            ]),
            token: 'x',
          }),
        () => JSON.stringify({ token: 'x' }),
        () => JSON.stringify(randomJson(rng)),
        () => rng.pick(['[]', '[1]', '"hello"', '42', 'null', 'true', '{}', '""']),
      ])();
      return rng.bool()
        ? closes(`text ${show(text)}`, [BAD_FRAME], (ws) => ws.text(text))
        : closesAfterHello(`text ${show(text)}`, [BAD_FRAME], (ws) => ws.text(text));
    });
  });

  it('valid frames before hello close 4000', async () => {
    await runWsFamily('frames before hello', 15, (rng) => {
      const kind = rng.pick(['ack', 'subscribe', 'unsubscribe', 'ping', 'refresh']);
      const seq = rng.int(0, 100);
      return {
        input: `${kind} before hello`,
        async run(ws) {
          const frame =
            kind === 'ack'
              ? { type: 'ack', stream: 'inbox', seq }
              : kind === 'subscribe'
                ? { type: 'subscribe', topic: 'fz.news' }
                : kind === 'unsubscribe'
                  ? { type: 'unsubscribe', topic: 'fz.news' }
                  : kind === 'ping'
                    ? { type: 'ping' }
                    : { type: 'refresh', token: await token(nextDevice('pre')) };
          ws.json(frame);
          return judge(await ws.waitEnd(3000), [BAD_FRAME]);
        },
      };
    });
  });

  it('valid hello followed by garbage closes 4000', async () => {
    await runWsFamily('valid hello then garbage', 25, (rng) => {
      const kind = rng.int(0, 3);
      if (kind === 3) {
        const bytes = rng.bytes(rng.int(1, 500));
        return closesAfterHello(`a binary frame ${show(bytes)}`, [BAD_FRAME], (ws) =>
          ws.write(wsFrame(OP.binary, bytes)),
        );
      }
      const text =
        kind === 0
          ? rng.unicode(rng.int(1, 500))
          : kind === 1
            ? sampleFrame(rng).slice(0, rng.int(1, 20))
            : JSON.stringify(randomJson(rng));
      return closesAfterHello(`text ${show(text)}`, [BAD_FRAME], (ws) => ws.text(text));
    });
  });

  it('after hello, wrong field types close 4000', async () => {
    await runWsFamily('valid hello then wrong field types', 25, (rng) => {
      const frame = rng.pick<() => Record<string, unknown>>([
        () => ({ type: 'ack', stream: 'inbox', seq: rng.pick(BAD_SEQS) }),
        () => ({ type: 'ack', stream: rng.pick(BAD_STREAMS), seq: 1 }),
        () => ({ type: 'ack', seq: 1 }),
        () => ({ type: 'ack', stream: 'inbox' }),
        () => ({ type: 'subscribe', topic: rng.pick(NON_STRING_TOPICS) }),
        () => ({ type: 'subscribe', topic: 'fz.ok', cursor: rng.pick(BAD_SEQS) }),
        () => ({ type: 'subscribe' }),
        () => ({ type: 'unsubscribe', topic: rng.pick(NON_STRING_TOPICS) }),
        () => ({ type: 'refresh', token: rng.pick<unknown>([1, null, {}, [], '', 'x'.repeat(8193)]) }),
        () => ({ type: 'refresh' }),
      ])();
      const text = JSON.stringify(frame);
      return closesAfterHello(show(text), [BAD_FRAME], (ws) => ws.text(text));
    });
  });

  it('after hello, refused requests answer an error frame and keep the connection', async () => {
    await runWsFamily('valid hello then refused requests', 15, (rng) => {
      // Drawn up front: a draw inside a case would depend on the order the cases run in.
      const n = rng.int(0, 1e6);
      const seq = rng.pick([1, 99, 2 ** 53 - 1]);
      const size = rng.int(1, 3);
      const invalid = rng.pick(INVALID_STRING_TOPICS);
      const op = rng.pick(['subscribe', 'unsubscribe'] as const);
      return rng.pick<() => WsCase>([
        () =>
          staysOpen(
            `${op} of the invalid topic ${JSON.stringify(invalid).slice(0, 40)}`,
            { type: 'error', code: 'topic_invalid' },
            (ws) => ws.json({ type: op, topic: invalid }),
          ),
        () =>
          staysOpen('a second hello', { type: 'error', code: 'already_hello' }, async (ws, d) =>
            ws.json({ type: 'hello', token: await token(d) }),
          ),
        () =>
          staysOpen('an ack on a stream it does not read', { type: 'error', code: 'unknown_stream' }, (ws) =>
            ws.json({ type: 'ack', stream: `topic:fz.never.${n}`, seq: 1 }),
          ),
        () =>
          staysOpen('an ack past what was sent', { type: 'error', code: 'bad_ack' }, (ws) =>
            ws.json({ type: 'ack', stream: 'inbox', seq }),
          ),
        () =>
          staysOpen(
            'a subscribe its token does not allow',
            { type: 'error', code: 'topic_forbidden' },
            (ws) => ws.json({ type: 'subscribe', topic: `fz.denied.${n}` }),
            ['fz.allowed.>'],
          ),
        () =>
          staysOpen('an unsubscribe of a topic it never had', { type: 'unsubscribed' }, (ws) =>
            ws.json({ type: 'unsubscribe', topic: `fz.never.${n}` }),
          ),
        () => staysOpen('a ping', { type: 'pong' }, (ws) => ws.json({ type: 'ping' })),
        () =>
          staysOpen('a refresh with a valid token, then a ping', { type: 'pong' }, async (ws, d) => {
            ws.json({ type: 'refresh', token: await token(d) });
            ws.json({ type: 'ping' });
          }),
        () =>
          staysOpen(`a ping in ${size}-byte fragments`, { type: 'pong' }, (ws) =>
            ws.write(fragments('{"type":"ping"}', size)),
          ),
      ])();
    });
  });

  it('valid but extreme cursors resume, and the device still gets what is published', async () => {
    await runWsFamily('extreme valid cursors', 20, (rng) => {
      const onSubscribe = rng.bool(0.4);
      const cursor = extremeCursor(rng);
      const broadcast = extremeCursor(rng);
      const exp = rng.pick<number | undefined>([undefined, undefined, 1e11, 2 ** 31 * 100]);
      return {
        input: onSubscribe
          ? `hello, subscribe {"topic":"fz.cur.<n>","cursor":${cursor}}, publish to the topic`
          : `hello {"cursors":{"inbox":${cursor},"broadcast":${broadcast}}}${exp ? ` (token exp ${exp})` : ''}, publish to the device`,
        async run(ws) {
          const device = nextDevice('cur');
          const topic = `fz.cur.${uniq}`;
          const tok = exp
            ? await new SignJWT({ uid: `fzu-${device}` })
                .setProtectedHeader({ alg: 'HS256' })
                .setSubject(device)
                .setExpirationTime(exp)
                .sign(secret)
            : await token(device);
          ws.json(
            onSubscribe
              ? { type: 'hello', token: tok }
              : { type: 'hello', token: tok, cursors: { inbox: cursor, broadcast } },
          );
          if (!(await ws.frame('welcome', 3000))) return `no welcome: ${showEnding(ws.ending)}`;
          if (onSubscribe) {
            ws.json({ type: 'subscribe', topic, cursor });
            if (!(await ws.frame('subscribed', 3000))) return `no subscribed: ${showEnding(ws.ending)}`;
          }
          const res = await sys.publish({
            to: onSubscribe ? { topic } : { devices: [device] },
            data: { fz: 1 },
          });
          if (res.status !== 202) return `publish answered ${res.status} ${show(res.body)}`;
          const n = await ws.frame('notification', 3000, (f) => f.id === res.body.id);
          if (!n)
            return `the published notification never came within 3 s (${showEnding(ws.ending)}) | frames after welcome: ${show(ws.frames.slice(1))}`;
          return undefined;
        },
      };
    });
  });

  it('binary frames close 4000 (1009 when over the frame limit)', async () => {
    await runWsFamily('binary frames', 10, (rng) => {
      const bytes = rng.bytes(rng.pick([0, 1, rng.int(2, 2000), rng.int(MAX_FRAME + 1, 100_000)]));
      const codes = expectedForSize(bytes, [BAD_FRAME]);
      const send = (ws: RawWs) => ws.write(wsFrame(OP.binary, bytes));
      return rng.bool()
        ? closes(`binary ${show(bytes)}`, codes, send)
        : closesAfterHello(`binary ${show(bytes)}`, codes, send);
    });
  });

  it('frames over 64 KiB close 1009', async () => {
    await runWsFamily('oversized frames', 10, (rng) => {
      const n = rng.pick([MAX_FRAME + 1, rng.int(MAX_FRAME + 2, 300_000), 1 << 20]);
      const text = `{"type":"hello","token":"${'x'.repeat(n)}"}`;
      return rng.bool()
        ? closes(`a ${text.length}-byte hello`, [TOO_BIG], (ws) => ws.text(text))
        : closesAfterHello(`a ${text.length}-byte frame`, [TOO_BIG], (ws) => ws.text(text));
    });
  });

  it('RFC 6455 violations close 1002', async () => {
    await runWsFamily('protocol violations', 25, (rng) => {
      const v = rng.pick<() => [string, Buffer[]]>([
        () => ['an unmasked text frame', [wsFrame(OP.text, '{"type":"ping"}', { mask: false })]],
        () => {
          const rsv = rng.int(1, 7);
          return [`a text frame with RSV=${rsv}`, [wsFrame(OP.text, '{"type":"ping"}', { rsv })]];
        },
        () => ['a continuation without a start', [wsFrame(OP.cont, 'abc')]],
        () => [
          'a text frame inside a fragmented message',
          [wsFrame(OP.text, '{"ty', { fin: false }), wsFrame(OP.text, 'pe":"ping"}')],
        ],
        () => [
          'a binary frame inside a fragmented message',
          [wsFrame(OP.text, '{"ty', { fin: false }), wsFrame(OP.binary, 'x')],
        ],
        () => {
          const op = rng.pick([OP.ping, OP.pong, OP.close]);
          return [`a fragmented control frame (opcode ${op})`, [wsFrame(op, 'x', { fin: false })]];
        },
        () => {
          const n = rng.int(126, 2000);
          return [`a ${n}-byte ping`, [wsFrame(rng.pick([OP.ping, OP.pong]), rng.bytes(n))]];
        },
        () => {
          const op = rng.pick([3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]);
          return [`reserved opcode ${op}`, [wsFrame(op, 'x')]];
        },
        () => {
          const code = rng.pick([0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]);
          const p = Buffer.alloc(2);
          p.writeUInt16BE(code);
          return [`a close frame with code ${code}`, [wsFrame(OP.close, p)]];
        },
        () => ['a close frame with a 1-byte payload', [wsFrame(OP.close, Buffer.from([3]))]],
      ])();
      const [what, frames] = v;
      return rng.bool(0.7)
        ? closes(what, [PROTOCOL], (ws) => ws.write(frames))
        : closesAfterHello(what, [PROTOCOL], (ws) => ws.write(frames));
    });
  });

  it('length fields claiming more than the limit close 1009', async () => {
    await runWsFamily('lying length fields', 6, (rng) => {
      const len = rng.pick<bigint>([
        2n ** 63n,
        2n ** 64n - 1n,
        2n ** 53n - 1n,
        65_537n,
        BigInt(rng.int(65_537, 2 ** 31)),
      ]);
      return closes(`a text frame claiming ${len} bytes, with 16 sent`, [TOO_BIG], (ws) =>
        ws.write(wsFrame(OP.text, Buffer.alloc(16, 0x61), { length: len })),
      );
    });
  });

  it('raw random bytes after the handshake end with a documented code or a drop', async () => {
    await runWsFamily('random wire bytes', 15, (rng) => {
      const bytes = rng.bytes(rng.int(2, 4000));
      return closes(
        `wire bytes ${show(bytes)}`,
        [PROTOCOL, TOO_BIG, BAD_FRAME, HELLO_TIMEOUT],
        (ws) => ws.write(bytes),
        {
          drop: true,
        },
      );
    });
  });

  it('fragment floods: over 64 KiB closes 1009, garbage closes 4000, unfinished closes 4002, a valid hello works', async () => {
    await runWsFamily('fragment floods', 20, (rng) =>
      rng.pick<() => WsCase>([
        () => {
          const size = rng.int(1024, 16_384);
          const count = Math.ceil((MAX_FRAME + rng.int(1, 50_000)) / size);
          const frames = [wsFrame(OP.text, Buffer.alloc(size, 0x61), { fin: false })];
          for (let i = 1; i < count; i++)
            frames.push(wsFrame(OP.cont, Buffer.alloc(size, 0x61), { fin: false }));
          return closes(`${count} non-final fragments of ${size} bytes`, [TOO_BIG], (ws) => ws.write(frames));
        },
        () => {
          const count = rng.int(1000, 16_000);
          const frames = [wsFrame(OP.text, 'x', { fin: false })];
          for (let i = 1; i < count; i++)
            frames.push(wsFrame(OP.cont, rng.bytes(1).toString('hex').slice(0, 1), { fin: false }));
          frames.push(wsFrame(OP.cont, 'x'));
          return closes(`${count} 1-byte fragments of garbage, then FIN`, [BAD_FRAME], (ws) =>
            ws.write(frames),
          );
        },
        () => {
          // Control frames may come between fragments (RFC 6455 5.4). At most 20 of them: from
          // about 60 unanswered pings on, ws cuts the peer (the flood family covers that).
          const count = rng.int(100, 5000);
          const pings = new Set(Array.from({ length: rng.int(1, 20) }, () => rng.int(1, count - 1)));
          const frames = [wsFrame(OP.text, '{', { fin: false })];
          for (let i = 1; i < count; i++) {
            frames.push(wsFrame(OP.cont, ' ', { fin: false }));
            if (pings.has(i)) frames.push(wsFrame(OP.ping, 'p'));
          }
          frames.push(wsFrame(OP.cont, '}'));
          return closes(
            `{ + ${count} whitespace fragments with ${pings.size} pings between + } (an object without a type)`,
            [BAD_FRAME],
            (ws) => ws.write(frames),
          );
        },
        () => {
          const count = rng.int(100, 5000);
          const frames = [wsFrame(OP.text, '{', { fin: false })];
          for (let i = 1; i < count; i++) frames.push(wsFrame(OP.cont, ' ', { fin: false }));
          return closes(`${count} fragments that never finish, before hello`, [HELLO_TIMEOUT], (ws) =>
            ws.write(frames),
          );
        },
        () => {
          const size = rng.int(1, 3);
          return {
            input: `a valid hello in ${size}-byte fragments`,
            async run(ws) {
              const device = nextDevice('frag');
              ws.write(fragments(JSON.stringify({ type: 'hello', token: await token(device) }), size));
              const w = await ws.frame('welcome', 3000);
              return w?.device === device ? undefined : `no welcome: ${showEnding(ws.ending)}`;
            },
          };
        },
      ])(),
    );
  });

  it('more fragments than ws keeps (16384) end with a documented code or a drop', async () => {
    await runWsFamily('fragment count floods', 6, (rng) => {
      const count = rng.int(16_400, 30_000);
      const empty = rng.bool();
      const frames = [wsFrame(OP.text, empty ? '' : ' ', { fin: false })];
      for (let i = 1; i < count; i++) frames.push(wsFrame(OP.cont, empty ? '' : ' ', { fin: false }));
      return closes(
        `${count} ${empty ? 'empty' : '1-byte'} non-final fragments`,
        [TOO_BIG, TOO_MANY_FRAGMENTS, PROTOCOL, BAD_FRAME, HELLO_TIMEOUT, RATE],
        (ws) => ws.write(frames),
        { drop: true },
      );
    });
  });

  it('frame floods close 4008; control-frame floods are cut or survive', async () => {
    await runWsFamily('frame floods', 12, (rng) => {
      const n = rng.int(150, 500);
      const pings = Array.from({ length: n }, () => wsFrame(OP.text, '{"type":"ping"}'));
      return rng.pick<() => WsCase>([
        () => closesAfterHello(`${n} ping frames at once`, [RATE], (ws) => ws.write(pings)),
        // Before hello the first ping is already a bad frame; which of the two wins is timing.
        () => closes(`${n} ping frames before hello`, [BAD_FRAME, RATE], (ws) => ws.write(pings)),
        () => {
          const m = rng.int(100, 2000);
          // The node's frame rate counts messages, not control frames; ws itself cuts a peer
          // with 60 unanswered automatic pongs. Either way: no undocumented code, no crash.
          return closesAfterHello(
            `${m} WebSocket ping control frames at once`,
            [RATE],
            (ws) => ws.write(Array.from({ length: m }, () => wsFrame(OP.ping, 'p'))),
            { drop: true, open: true, waitMs: 1500 },
          );
        },
      ])();
    });
  });

  it('a silent connection closes 4002 at the hello deadline', async () => {
    await runWsFamily('silent connections', 3, () =>
      closes('nothing at all after the handshake', [HELLO_TIMEOUT], () => undefined, {
        waitMs: HELLO_TIMEOUT_MS + 2000,
      }),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// HTTP cases
// ---------------------------------------------------------------------------------------------

interface HttpAnswer {
  status: number;
  contentType: string;
  text: string;
}

/** One request on a fresh connection, with the path and headers exactly as given. */
function request(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Buffer | string,
): Promise<HttpAnswer> {
  const h =
    body === undefined || Object.keys(headers).some((k) => k.toLowerCase() === 'content-length')
      ? headers
      : { ...headers, 'content-length': String(Buffer.byteLength(body)) };
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path, headers: h, agent: false, timeout: CASE_MS },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? ''),
            text: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${CASE_MS} ms (a hang)`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** A 4xx (one of `statuses` when given) with the documented `{code: "HERALD_...", message}` body. */
function judgeHttp(a: HttpAnswer, statuses?: readonly number[]): string | undefined {
  let body: { code?: unknown; message?: unknown } | undefined;
  try {
    const v: unknown = JSON.parse(a.text);
    if (typeof v === 'object' && v !== null) body = v;
  } catch {
    body = undefined;
  }
  const code = typeof body?.code === 'string' ? body.code : undefined;
  const got = `answered ${a.status} ${code ?? (body ? 'without a code' : 'without a JSON body')}`;
  const detail = ` | ${show(a.text, 200)}`;
  if (a.status < 400 || a.status > 499) return `${got}; expected a 4xx${detail}`;
  if (statuses && !statuses.includes(a.status)) return `${got}; expected ${statuses.join(' or ')}${detail}`;
  if (!code?.startsWith('HERALD_') || typeof body?.message !== 'string')
    return `${got}: not {"code":"HERALD_...","message":"..."}${detail}`;
  if (!a.contentType.startsWith('application/json'))
    return `${got} with Content-Type ${a.contentType}${detail}`;
  return undefined;
}

interface HttpCase {
  input: string;
  run(): Promise<string | undefined>;
}

const AUTH = { authorization: `Bearer ${API_KEY}` };
const JSON_HEADERS = { ...AUTH, 'content-type': 'application/json' };

/** POST /v1/notifications with `body` and `headers` (default: the API key and JSON). */
function publishCase(
  input: string,
  body: string | Buffer,
  statuses?: readonly number[],
  headers: Record<string, string> = JSON_HEADERS,
): HttpCase {
  return {
    input: `POST /v1/notifications ${input}`,
    async run() {
      return judgeHttp(await request(apiPort, 'POST', '/v1/notifications', headers, body), statuses);
    },
  };
}

async function runHttpFamily(
  family: string,
  count: number,
  gen: (rng: Rng, i: number) => HttpCase,
): Promise<void> {
  const seed = familySeed(SEED, family);
  const rng = new Rng(seed);
  const cases = Array.from({ length: count }, (_, i) => gen(rng, i));
  const failures: { input: string; problem: string }[] = [];
  await pool(cases, CONCURRENCY, async (c, i) => {
    try {
      const problem = await timeout(c.run(), CASE_MS + 500, 'request');
      if (problem) failures.push({ input: `#${i}: ${c.input}`, problem });
    } catch (err) {
      failures.push({ input: `#${i}: ${c.input}`, problem: (err as Error).message });
    }
  });
  await assertServing(family);
  expect(failures.length, report(family, seed, failures)).toBe(0);
}

const validBody = () => ({ to: { devices: ['fz-http-dev'] }, data: { a: 1 }, ttl: 60 });

/** Percent-encodes every byte outside the unreserved set, so any string becomes a well-formed path segment. */
function segment(s: string): string {
  let out = '';
  for (const b of Buffer.from(s)) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9_.~-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function nested(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array'
    ? `${'['.repeat(depth)}${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** Wrong values for every field of a publish body, as [what, body]. */
function wrongTypeBody(rng: Rng): [string, unknown] {
  const b: Record<string, unknown> = validBody();
  const field = rng.pick([
    'to',
    'to.devices',
    'to.users',
    'to.topic',
    'to.broadcast',
    'ttl',
    'deliverAt',
    'data',
    'extra',
    'root',
  ]);
  const ids = () =>
    rng.pick<unknown>([
      'd1',
      1,
      {},
      [],
      [1],
      [null],
      [''],
      [[]],
      [{}],
      [true],
      ['x'.repeat(129)],
      ['a b'],
      null,
      true,
    ]);
  switch (field) {
    case 'to':
      b.to = rng.pick<unknown>([
        'x',
        1,
        [],
        null,
        true,
        {},
        { devices: ['a'], users: ['b'] },
        { planets: ['a'] },
        { devices: ['a'], topic: 'news' },
        [{ devices: ['a'] }],
      ]);
      break;
    case 'to.devices':
      b.to = { devices: ids() };
      break;
    case 'to.users':
      b.to = { users: ids() };
      break;
    case 'to.topic':
      b.to = { topic: rng.pick(BAD_TOPICS) };
      break;
    case 'to.broadcast':
      b.to = { broadcast: rng.pick<unknown>([false, 'true', 1, 0, null, {}, [true]]) };
      break;
    case 'ttl':
      b.ttl = rng.pick<unknown>([
        '60',
        60.5,
        0,
        -1,
        null,
        true,
        [],
        {},
        [60],
        1e308,
        -1e308,
        604_801,
        2 ** 53 + 1,
        'NaN',
      ]);
      break;
    case 'deliverAt':
      b.deliverAt = rng.pick<unknown>([
        1,
        Date.now(),
        null,
        '',
        'tomorrow',
        'now',
        '2030-13-45T00:00:00Z',
        '2030-01-01',
        '2030-01-01T00:00:00',
        '9999-12-31T23:59:59Z',
        '+275760-09-13T00:00:00.000Z',
        {},
        [],
        true,
      ]);
      break;
    case 'data':
      delete b.data;
      break;
    case 'extra':
      b[rng.pick(['priority', 'id', 'status', 'ttl2', 'To', rng.nasty(3) || 'x'])] = randomJson(rng);
      break;
    default:
      return ['a body that is not an object', rng.pick<unknown>([[], [validBody()], 'str', 1, null, true])];
  }
  return [field, b];
}

describe('HTTP door: every malformed request gets a 4xx {code: "HERALD_...", message}, and the API keeps serving', () => {
  it('random bytes as a JSON body answer 400', async () => {
    await runHttpFamily('random bytes bodies', 15, (rng) => {
      const body = rng.bytes(rng.int(1, 4000));
      return publishCase(`body ${show(body)}`, body, [400]);
    });
  });

  it('random text as a JSON body answers 400', async () => {
    await runHttpFamily('random unicode bodies', 15, (rng) => {
      const body = rng.bool() ? rng.unicode(rng.int(1, 2000)) : JSON.stringify(randomJson(rng));
      return publishCase(`body ${show(body)}`, body, [400]);
    });
  });

  it('truncated JSON answers 400', async () => {
    await runHttpFamily('truncated JSON bodies', 15, (rng) => {
      const full = JSON.stringify({ ...validBody(), deliverAt: '2030-01-01T00:00:00Z' });
      const body = full.slice(0, rng.int(1, full.length - 1));
      return publishCase(`body ${show(body)}`, body, [400]);
    });
  });

  it('a body that is not application/json answers 415', async () => {
    await runHttpFamily('wrong content types', 15, (rng) => {
      const type = rng.pick<string | undefined>([
        'text/plain',
        'text/html',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
        'application/jsonx',
        'application/vnd.api+json',
        'application/octet-stream',
        'application/*',
        '*/*',
        'json',
        `x-${rng.nasty(3).replace(/[^\x21-\x7e]/g, '')}/fz`,
        undefined,
      ]);
      const headers: Record<string, string> =
        type === undefined ? { ...AUTH } : { ...AUTH, 'content-type': type };
      const body = rng.bool() ? JSON.stringify(validBody()) : rng.bytes(rng.int(1, 200));
      return publishCase(`Content-Type ${type ?? '(none)'} with ${show(body, 60)}`, body, [415], headers);
    });
  });

  it('deeply nested JSON answers 400 or 413, never 500', async () => {
    await runHttpFamily('deeply nested JSON', 12, (rng) => {
      const depth = rng.pick([10_000, 10_000, rng.int(5000, 100_000)]);
      const kind = rng.pick(['array', 'object'] as const);
      const where = rng.pick(['data', 'data', 'to', 'root', 'data with Idempotency-Key']);
      const deep = nested(depth, kind);
      const body =
        where === 'to'
          ? `{"to":${deep},"data":1}`
          : where === 'root'
            ? deep
            : `{"to":{"devices":["fz-deep"]},"data":${deep}}`;
      const headers =
        where === 'data with Idempotency-Key'
          ? { ...JSON_HEADERS, 'idempotency-key': `fz-deep-${rng.int(0, 1e9)}` }
          : JSON_HEADERS;
      return publishCase(`${kind}s nested ${depth} deep in ${where}`, body, [400, 413], headers);
    });
  });

  it('huge and odd numbers answer 400', async () => {
    await runHttpFamily('huge numbers', 15, (rng) => {
      const n = rng.pick([
        '1e400',
        '-1e400',
        '1e308',
        `1${'0'.repeat(rng.int(20, 400))}`,
        '123456789012345678901234567890',
        '9007199254740993',
        '-9007199254740993',
        '1e-400',
        '0',
        '-0',
        '-1',
        '604801',
        '60.5',
      ]);
      const field = rng.pick(['ttl', 'deliverAt', 'broadcast', 'devices', 'topic']);
      const body =
        field === 'ttl'
          ? `{"to":{"devices":["fz-num"]},"data":1,"ttl":${n}}`
          : field === 'deliverAt'
            ? `{"to":{"devices":["fz-num"]},"data":1,"deliverAt":${n}}`
            : field === 'broadcast'
              ? `{"to":{"broadcast":${n}},"data":1}`
              : field === 'devices'
                ? `{"to":{"devices":[${n}]},"data":1}`
                : `{"to":{"topic":${n}},"data":1}`;
      return publishCase(`${field} = ${n.length > 30 ? `${n.slice(0, 30)}...` : n}`, body, [400]);
    });
  });

  it('wrong types for every field answer 400', async () => {
    await runHttpFamily('wrong types', 30, (rng) => {
      const [field, body] = wrongTypeBody(rng);
      const text = JSON.stringify(body) ?? 'null';
      return publishCase(`wrong ${field}: ${show(text, 120)}`, text, [400]);
    });
  });

  it('arrays of 20k ids answer 400', async () => {
    await runHttpFamily('arrays of 20k ids', 6, (rng) => {
      const n = rng.pick([10_001, 20_000, rng.int(10_001, 30_000)]);
      const key = rng.pick(['devices', 'users']);
      const body = JSON.stringify({
        to: { [key]: Array.from({ length: n }, (_, i) => `fz-id-${i}`) },
        data: 1,
      });
      return publishCase(`${n} ${key}`, body, [400]);
    });
  });

  it('unicode garbage in body ids and topics answers 400', async () => {
    await runHttpFamily('garbage ids in bodies', 15, (rng) => {
      const junk = rng.bool() ? rng.unicode(rng.int(1, 40)) : rng.nasty(rng.int(1, 6));
      const to = rng.pick<Record<string, unknown>>([
        { devices: ['ok', junk] },
        { users: [junk] },
        { topic: junk },
      ]);
      const text = JSON.stringify({ to, data: 1 });
      // A junk string can by chance be a valid id or topic; then it is a valid publish.
      const valid = 'topic' in to ? isValidTopic(junk) : isValidId(junk);
      if (!valid) return publishCase(`to ${show(to, 120)}`, text, [400]);
      return {
        input: `POST /v1/notifications to ${show(to, 120)} (valid by chance)`,
        async run() {
          const a = await request(apiPort, 'POST', '/v1/notifications', JSON_HEADERS, text);
          return a.status === 202 ? undefined : `answered ${a.status} ${show(a.text)}; expected 202`;
        },
      };
    });
  });

  it('garbage ids and topics in well-formed paths answer 400 or 404', async () => {
    await runHttpFamily('garbage in paths', 20, (rng) => {
      const junk = () =>
        rng.pick([
          rng.unicode(rng.int(1, 30)),
          rng.nasty(rng.int(1, 6)),
          'x'.repeat(rng.int(65, 300)),
          '..',
          '.',
          '%',
        ]);
      const which = rng.int(0, 3);
      const [method, path] =
        which < 2
          ? [which === 0 ? 'GET' : 'DELETE', `/v1/notifications/${segment(junk())}`]
          : [which === 2 ? 'PUT' : 'DELETE', `/v1/topics/${segment(junk())}/devices/${segment(junk())}`];
      return {
        input: `${method} ${show(path, 150)}`,
        async run() {
          const a = await request(apiPort, method, path, AUTH);
          // Junk that happens to be valid gets its normal answer (204 for topics, 404 for ids).
          if (a.status === 204 && method !== 'GET') return undefined;
          return judgeHttp(a, [400, 404]);
        },
      };
    });
  });

  it('valid ids and topics of up to 128 characters work in paths', async () => {
    // docs/api.md: ids are 1 to 128 characters, topics at most 128; the edge must work in paths too.
    await runHttpFamily('128-character path parameters', 6, (rng) => {
      const long = (n: number, chars: string) =>
        Array.from({ length: n }, () => rng.pick([...chars])).join('');
      const longTopic = rng.bool();
      const topic = longTopic ? long(rng.int(101, 128), 'abcxyz019_-') : 'fz.long';
      const device = longTopic ? 'fz-long-dev' : long(rng.int(101, 128), 'abcXYZ019_.:@-');
      const method = rng.pick(['PUT', 'DELETE']);
      const path = `/v1/topics/${segment(topic)}/devices/${segment(device)}`;
      return {
        input: `${method} /v1/topics/<${topic.length} chars>/devices/<${device.length} chars>`,
        async run() {
          const a = await request(apiPort, method, path, AUTH);
          return a.status === 204 ? undefined : `answered ${a.status}; expected 204 | ${show(a.text, 200)}`;
        },
      };
    });
  });

  it('malformed percent-encoding in paths answers 400 with a HERALD_ code', async () => {
    await runHttpFamily('malformed percent-encoding', 10, (rng) => {
      const bad = rng.pick(['%', '%Z', '%ZZ', '%F', '%FF', '%C0%AF', '%E0%A4', '%ED%A0%80', '%G1', '%%']);
      const [method, path] = rng.pick([
        ['GET', `/v1/notifications/abc${bad}`],
        ['DELETE', `/v1/notifications/${bad}`],
        ['PUT', `/v1/topics/news${bad}/devices/d1`],
        ['DELETE', `/v1/topics/news/devices/${bad}x`],
      ] as const);
      return {
        input: `${method} ${path}`,
        async run() {
          return judgeHttp(await request(apiPort, method, path, AUTH), [400]);
        },
      };
    });
  });

  it('garbage headers under the header size limit get their documented answer', async () => {
    await runHttpFamily('garbage headers', 15, (rng) =>
      rng.pick<() => HttpCase>([
        () => {
          const n = rng.int(4000, 12_000);
          return publishCase(`with a ${n}-byte X-Junk header and a bad body`, '{"to":', [400], {
            ...JSON_HEADERS,
            'x-junk': 'j'.repeat(n),
          });
        },
        () => {
          const n = rng.int(1000, 12_000);
          return publishCase(`with a ${n}-byte API key`, JSON.stringify(validBody()), [401], {
            ...JSON_HEADERS,
            authorization: `Bearer ${'k'.repeat(n)}`,
          });
        },
        () => {
          const auth = rng.pick([
            '',
            'Bearer',
            'Bearer ',
            'Basic abc',
            `bearer ${API_KEY}x`,
            `Token ${API_KEY}`,
            'Bearer a b',
          ]);
          return publishCase(`with Authorization ${show(auth)} and a garbage body`, rng.bytes(50), [401], {
            'content-type': 'application/json',
            ...(auth ? { authorization: auth } : {}),
          });
        },
        () => {
          const key = rng.pick([
            'x'.repeat(201),
            'é',
            '\u00ff\u00fe',
            `a${'\t'}b`,
            'x'.repeat(rng.int(201, 8000)),
          ]);
          return publishCase(`with Idempotency-Key ${show(key, 40)}`, JSON.stringify(validBody()), [400], {
            ...JSON_HEADERS,
            'idempotency-key': key,
          });
        },
      ])(),
    );
  });

  it('headers over the 16 KiB limit answer 431 with a HERALD_ code', async () => {
    await runHttpFamily('headers over 16 KiB', 4, (rng) => {
      const n = rng.int(17_000, 60_000);
      return publishCase(`with a ${n}-byte X-Junk header`, JSON.stringify(validBody()), [431], {
        ...JSON_HEADERS,
        'x-junk': 'j'.repeat(n),
      });
    });
  });

  it('malformed HTTP framing of the body answers 400 with a HERALD_ code', async () => {
    await runHttpFamily('malformed HTTP framing', 8, (rng) => {
      const head = `POST /v1/notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Type: application/json\r\nConnection: close\r\n`;
      const [what, bytes] = rng.pick<[string, string]>([
        ['a chunk size that is not hex', `${head}Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`],
        [
          'a chunk longer than its size',
          `${head}Transfer-Encoding: chunked\r\n\r\n2\r\n{"to":1}\r\n0\r\n\r\n`,
        ],
        [
          'Content-Length and Transfer-Encoding both',
          `${head}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
        ],
        ['a negative Content-Length', `${head}Content-Length: -1\r\n\r\n{}`],
        ['a Content-Length that is not a number', `${head}Content-Length: abc\r\n\r\n{}`],
        ['two different Content-Lengths', `${head}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}`],
        ['a header name with a space', `${head}X Junk: 1\r\nContent-Length: 2\r\n\r\n{}`],
      ]);
      return {
        input: `POST /v1/notifications with ${what}`,
        run: () => rawHttp(apiPort, bytes).then((a) => judgeHttp(a, [400])),
      };
    });
  });

  it('garbage upgrade requests to a node answer 4xx or close, never 101 or 5xx', async () => {
    await runHttpFamily('node upgrade garbage', 10, (rng) => {
      const upgrade = 'Upgrade: websocket\r\nConnection: Upgrade\r\n';
      const [what, bytes] = rng.pick<[string, string]>([
        ['GET /v1/ws without Upgrade', 'GET /v1/ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
        [
          'POST /v1/ws with a body',
          'POST /v1/ws HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc',
        ],
        [
          'Sec-WebSocket-Version 99',
          `GET /v1/ws HTTP/1.1\r\nHost: x\r\n${upgrade}Sec-WebSocket-Version: 99\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
        ],
        [
          'a bad Sec-WebSocket-Key',
          `GET /v1/ws HTTP/1.1\r\nHost: x\r\n${upgrade}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${rng.nasty(3).replace(/[^\x21-\x7e]/g, '') || 'x'}\r\n\r\n`,
        ],
        [
          'no Sec-WebSocket-Key',
          `GET /v1/ws HTTP/1.1\r\nHost: x\r\n${upgrade}Sec-WebSocket-Version: 13\r\n\r\n`,
        ],
        [
          'an upgrade to an unknown path',
          `GET /v1/%ZZ HTTP/1.1\r\nHost: x\r\n${upgrade}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
        ],
        [
          'a garbage request line',
          `${rng
            .bytes(40)
            .toString('latin1')
            .replace(/[\r\n]/g, 'x')}\r\n\r\n`,
        ],
        ['a 20 KiB header', `GET /v1/ws HTTP/1.1\r\nHost: x\r\nX-Junk: ${'j'.repeat(20_000)}\r\n\r\n`],
      ]);
      return {
        input: what,
        async run() {
          const a = await rawHttp(nodePort, bytes, { closeOk: true });
          if (a.status === 0) return undefined;
          return a.status >= 400 && a.status < 500 ? undefined : `answered ${a.status} ${show(a.text, 200)}`;
        },
      };
    });
  });
});

/** Writes raw bytes and reads one HTTP answer (status 0: closed without one, when `closeOk`). */
function rawHttp(port: number, bytes: string, o: { closeOk?: boolean } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const done = (err?: Error) => {
      clearTimeout(t);
      s.destroy();
      if (err) return reject(err);
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!m || end < 0) {
        if (o.closeOk) return resolve({ status: 0, contentType: '', text });
        return reject(new Error(`no HTTP answer: ${show(text)}`));
      }
      const head = text.slice(0, end);
      const ct = /\r\ncontent-type: *([^\r\n]*)/i.exec(head)?.[1] ?? '';
      const len = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
      const body = buf.subarray(Buffer.byteLength(head, 'latin1') + 4);
      resolve({
        status: Number(m[1]),
        contentType: ct,
        text: (len ? body.subarray(0, Number(len)) : body).toString(),
      });
    };
    const t = setTimeout(() => done(new Error(`no answer within ${CASE_MS} ms (a hang)`)), CASE_MS);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      // A complete answer with a Content-Length: no need to wait for the close.
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, Math.max(0, end)))?.[1];
      if (end >= 0 && len !== undefined && buf.length >= end + 4 + Number(len)) done();
    });
    s.on('error', () => undefined);
    s.on('close', () => done());
    s.write(Buffer.from(bytes, 'latin1'));
  });
}

// ---------------------------------------------------------------------------------------------

describe('after the fuzz', () => {
  it('every process still runs, serves, and logged no internal error on a node', async () => {
    await assertServing('the whole fuzz');
    expect(sys.api.process.running).toBe(true);
    expect(sys.worker.process.running).toBe(true);
    for (const n of sys.nodes) expect(n.process.running, `${n.name} is running`).toBe(true);
    expect((await sys.publish(validBody())).status).toBe(202);
    for (const n of sys.nodes) {
      // Client garbage is the client's fault: a node logs it at debug, never as an error.
      const errors = new Map<string, number>();
      for (const line of readFileSync(n.logFile, 'utf8').split('\n')) {
        if (!/"level":(50|60)\b/.test(line)) continue;
        const { msg } = JSON.parse(line) as { msg?: string };
        errors.set(String(msg), (errors.get(String(msg)) ?? 0) + 1);
      }
      const summary = [...errors].map(([msg, k]) => `  ${k} x ${msg}`).join('\n');
      expect(errors.size, `${n.name} logged errors during the fuzz:\n${summary}`).toBe(0);
    }
  });
});
