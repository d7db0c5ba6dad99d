import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, type Stack, startStack } from '@herald/stack';
import { decodeJwt, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Runs the built CLI (bin/herald.js -> dist/main.js) as a user would, against one real stack:
// Redis, API, worker, two push nodes and nginx, on free ports in a temp dir.
const BIN = fileURLToPath(new URL('../bin/herald.js', import.meta.url));
const API_KEY = 'cli-test-api-key-0123456789';
const SECRET = 'cli-test-token-secret-0123456789';

let stack: Stack;
let dir: string;
let env: Record<string, string>;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'herald-cli-'));
  stack = await startStack({
    nodes: 2,
    dataDir: path.join(dir, 'data'),
    logDir: path.join(process.env.HERALD_TEST_LOGS ?? dir, 'logs'),
    apiKeys: [API_KEY],
    tokenSecret: SECRET,
    logLevel: 'warn',
    env: { HERALD_FLUSH_MS: '50' },
  });
  env = {
    HERALD_API_URL: stack.apiUrl,
    HERALD_WS_URL: stack.wsUrl,
    HERALD_API_KEY: API_KEY,
    HERALD_TOKEN_SECRET: SECRET,
  };
}, 60_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment without any HERALD_* of the caller's, plus `extra`. */
function cleanEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HERALD_')) out[k] = v;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) out[k] = v;
  return out;
}

interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<Run>;
  /** Resolves when `re` matches what the stream printed so far. */
  waitFor(stream: 'stdout' | 'stderr', re: RegExp, timeoutMs?: number): Promise<void>;
}

function start(
  args: string[],
  o: { input?: string; env?: Record<string, string | undefined>; cwd?: string } = {},
): Started {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: o.cwd ?? dir,
    env: cleanEnv({ ...env, ...o.env }),
    stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const l of listeners) l();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    for (const l of listeners) l();
  });
  if (o.input !== undefined) child.stdin!.end(o.input);
  const exited = new Promise<Run>((resolve) =>
    child.on('close', (code) => {
      children.delete(child);
      for (const l of listeners) l();
      resolve({ code, stdout, stderr });
    }),
  );
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    waitFor(stream, re, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (re.test(stream === 'stdout' ? stdout : stderr)) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve();
          } else if (child.exitCode !== null) {
            listeners.delete(check);
            clearTimeout(timer);
            reject(new Error(`herald exited (${child.exitCode}) before ${re}:\n${stdout}\n${stderr}`));
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no ${re} on ${stream} within ${timeoutMs} ms:\n${stdout}\n${stderr}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
  };
}

/** Runs the CLI to the end (bounded). */
async function herald(
  args: string[],
  o: { input?: string; env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {},
): Promise<Run> {
  const s = start(args, o);
  const timer = setTimeout(() => s.child.kill('SIGKILL'), o.timeoutMs ?? 15_000);
  const r = await s.exited;
  clearTimeout(timer);
  return r;
}

const lines = (s: string) =>
  s
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('usage', () => {
  it('prints help for herald and every command, exit 0', async () => {
    const top = await herald(['--help']);
    expect(top.code).toBe(0);
    for (const c of ['publish', 'subscribe', 'token', 'status', 'cancel', 'bench'])
      expect(top.stdout).toContain(`  ${c} `);
    const commands = ['publish', 'subscribe', 'token', 'status', 'cancel', 'bench'];
    const helps = await Promise.all(commands.map((c) => herald([c, '--help'])));
    for (const [i, c] of commands.entries()) {
      expect(helps[i]!.code, c).toBe(0);
      expect(helps[i]!.stdout, c).toMatch(new RegExp(`^usage: herald ${c}`));
    }
    expect((await herald(['help', 'bench'])).stdout).toMatch(/^usage: herald bench/);
  });

  it('prints its version with --version and -V', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    for (const flag of ['--version', '-V']) {
      const r = await herald([flag]);
      expect(r, flag).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
    }
  });

  it('exits 2 with one clear line on bad arguments', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /^herald: unknown command "frobnicate" \(see herald --help\)\n$/],
      [['publish', '--data', '1'], /no target: give --device, --user, --topic or --broadcast/],
      [['publish', '-d', 'a', '-t', 'news', '--data', '1'], /only one kind of target/],
      [['publish', '-d', 'a', '--data', '{nope'], /--data is not valid JSON/],
      [['publish', '-d', 'a', '--data', '1', '--ttl', 'soon'], /--ttl must be a whole number/],
      [['publish', '-d', 'a', '--data', '1', '--at', 'tomorrow'], /--at "tomorrow" is not a date-time/],
      [
        ['publish', '-d', 'a', '--data', '1', '--priority', 'urgent'],
        /--priority must be high, normal or low/,
      ],
      [['publish', '-d', 'a'], /no data: stdin was empty/],
      [['publish', '-d', 'a', '--data', '1', '--bogus'], /Unknown option '--bogus'/],
      [['status'], /missing notification ID/],
      [['status', 'a/b'], /is not a notification id/],
      [['token'], /missing --device/],
      [['token', '--device', 'bad id'], /--device "bad id" is not a valid id/],
      [['token', '--device', 'd', '--expires', 'forever'], /--expires "forever" is not a duration/],
      [['subscribe', '--topic', 'bad topic'], /--topic "bad topic" is not a valid topic/],
      [
        ['subscribe', '--transport', 'pigeon'],
        /--transport must be auto, websocket, sse or poll, not "pigeon"/,
      ],
      [['bench', '--count', '0'], /--count must be a whole number from 1/],
      [['bench', '--mode', 'carrier-pigeon'], /--mode must be topic or devices/],
      [['publish', '-d', 'a', '--data', '1', '--api', 'ftp://x'], /--api must be a http or https URL/],
    ];
    const runs = await Promise.all(cases.map(([args]) => herald(args)));
    for (const [i, [args, re]] of cases.entries()) {
      const r = runs[i]!;
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stdout, args.join(' ')).toBe('');
    }
  });

  it('says where to get a key or a secret when there is none', async () => {
    const noKey = await herald(['publish', '-d', 'a', '--data', '1'], { env: { HERALD_API_KEY: undefined } });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/no API key: pass --key, set HERALD_API_KEY, or run `npm start`/);
    const noSecret = await herald(['token', '--device', 'd'], { env: { HERALD_TOKEN_SECRET: undefined } });
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toMatch(/no token secret/);
  });
});

describe('token', () => {
  it('mints an HS256 device token the nodes accept', async () => {
    const r = await herald([
      'token',
      '--device',
      'tok-dev',
      '--user',
      'tok-user',
      '--topics',
      'news.*,alerts.>',
    ]);
    expect(r.code).toBe(0);
    const jwt = r.stdout.trim();
    const { payload } = await jwtVerify(jwt, new TextEncoder().encode(SECRET), { algorithms: ['HS256'] });
    expect(payload).toMatchObject({ sub: 'tok-dev', uid: 'tok-user', topics: ['news.*', 'alerts.>'] });
    expect((payload.exp as number) - Date.now() / 1000).toBeGreaterThan(3500);
    const short = await herald(['token', '--device', 'd2', '--expires', '90']);
    const exp = decodeJwt(short.stdout.trim()).exp as number;
    expect(exp - Date.now() / 1000).toBeLessThanOrEqual(90);
    expect(decodeJwt(short.stdout.trim()).uid).toBe('d2'); // user defaults to the device
    expect(decodeJwt(short.stdout.trim()).aud).toBeUndefined(); // no app: the app `default`
    const shop = await herald(['token', '--device', 'd3', '--app', 'shop']);
    expect(decodeJwt(shop.stdout.trim()).aud).toBe('shop');
    const bad = await herald(['token', '--device', 'd3', '--app', 'Shop!']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^herald: token: --app "Shop!" is not an app id/);
  });
});

describe('publish, subscribe, status, cancel', () => {
  it('delivers to a subscribed device, with data from --data and from stdin', async () => {
    const sub = start(['subscribe', '--device', 'cli-dev-1', '--count', '2', '--timeout', '15']);
    await sub.waitFor('stderr', /connected to node-\d as device cli-dev-1/);
    const a = await herald(['publish', '-d', 'cli-dev-1', '--data', '{"title":"one"}', '--ttl', '60']);
    expect(a.code, a.stderr).toBe(0);
    const accepted = JSON.parse(a.stdout) as { id: string; status: string };
    // A publish to a few devices is delivered by the API itself, so it answers `sent` (docs/api.md).
    expect(accepted.status).toBe('sent');
    const b = await herald(['publish', '--device', 'cli-dev-1'], { input: '{"title":"two"}\n' });
    expect(b.code, b.stderr).toBe(0);
    const done = await sub.exited;
    expect(done.code, done.stderr).toBe(0);
    const got = lines(done.stdout);
    expect(got.map((n) => n.data)).toEqual([{ title: 'one' }, { title: 'two' }]);
    expect(got[0]).toMatchObject({ stream: 'inbox', seq: 1, id: accepted.id });
    expect(typeof got[0]!.ts).toBe('number');

    // Acked by the subscriber: the status says so.
    let status: Record<string, unknown> = {};
    for (let i = 0; i < 50; i++) {
      const s = await herald(['status', accepted.id]);
      expect(s.code, s.stderr).toBe(0);
      status = JSON.parse(s.stdout) as Record<string, unknown>;
      if ((status.counts as { acked: number }).acked >= 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toMatchObject({
      id: accepted.id,
      state: 'sent',
      target: 'devices',
      counts: { targets: 1, delivered: 1, acked: 1 },
    });
  });

  it('subscribes over SSE and long-poll with --transport, acking over HTTP', async () => {
    const sse = start([
      'subscribe',
      '--device',
      'cli-sse',
      '--transport',
      'sse',
      '--count',
      '2',
      '--timeout',
      '15',
    ]);
    const poll = start([
      'subscribe',
      '--device',
      'cli-poll',
      '--transport',
      'poll',
      '--count',
      '2',
      '--timeout',
      '15',
    ]);
    await sse.waitFor('stderr', /connected to node-\d as device cli-sse \(user cli-sse\) over sse; streams /);
    await poll.waitFor('stderr', /connected over poll; streams /);
    let last = '';
    for (const data of ['1', '2']) {
      const r = await herald(['publish', '-d', 'cli-sse,cli-poll', '--data', data]);
      expect(r.code, r.stderr).toBe(0);
      last = (JSON.parse(r.stdout) as { id: string }).id;
    }
    for (const sub of [sse, poll]) {
      const done = await sub.exited;
      expect(done.code, done.stderr).toBe(0);
      expect(lines(done.stdout).map((n) => [n.stream, n.seq, n.data])).toEqual([
        ['inbox', 1, 1],
        ['inbox', 2, 2],
      ]);
    }
    // Both acked over POST /v1/acks (close() sends what is pending).
    let acked = 0;
    for (let i = 0; i < 50 && acked < 2; i++) {
      const s = await herald(['status', last]);
      acked = (JSON.parse(s.stdout) as { counts: { acked: number } }).counts.acked;
      if (acked < 2) await new Promise((r) => setTimeout(r, 100));
    }
    expect(acked).toBe(2);
  });

  it('subscribes to topics and receives what is published to them', async () => {
    const sub = start([
      'subscribe',
      '--device',
      'cli-dev-2',
      '-t',
      'cli.news',
      '-t',
      'cli.alerts',
      '--count',
      '2',
    ]);
    await sub.waitFor(
      'stderr',
      /subscribed to cli\.news[\s\S]*subscribed to cli\.alerts|subscribed to cli\.alerts[\s\S]*subscribed to cli\.news/,
    );
    expect((await herald(['publish', '-t', 'cli.news', '--data', '"n"'])).code).toBe(0);
    expect((await herald(['publish', '--topic', 'cli.alerts', '--data', '"a"'])).code).toBe(0);
    const done = await sub.exited;
    expect(done.code, done.stderr).toBe(0);
    const got = lines(done.stdout);
    expect(got.map((n) => [n.stream, n.data])).toEqual([
      ['topic:cli.news', 'n'],
      ['topic:cli.alerts', 'a'],
    ]);
  });

  it('--collapse-key: a device coming back gets the last, told the others were collapsed; --priority shows', async () => {
    for (const n of [1, 2, 3])
      expect(
        (
          await herald([
            'publish',
            '-d',
            'cli-ck',
            '--data',
            `${n}`,
            '--collapse-key',
            'score',
            '--priority',
            'high',
          ])
        ).code,
      ).toBe(0);
    const bad = await herald(['publish', '-d', 'cli-ck', '--data', '1', '--collapse-key', 'x'.repeat(65)]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/HERALD_BAD_REQUEST.*collapseKey/);
    const sub = start(['subscribe', '--device', 'cli-ck', '--count', '1']);
    const done = await sub.exited;
    expect(done.code, done.stderr).toBe(0);
    expect(lines(done.stdout).map((n) => [n.seq, n.priority, n.data])).toEqual([[3, 'high', 3]]);
    expect(done.stderr).toMatch(/collapsed in inbox: seqs 1\.\.2 \(2\) superseded/);
  });

  it('publishes to users and broadcast, and honours --idempotency-key', async () => {
    const u = await herald(['publish', '-u', 'alice,bob', '--data', 'null']);
    expect(u.code, u.stderr).toBe(0);
    const b = await herald(['publish', '-b', '--data', '{"all":true}']);
    expect(b.code, b.stderr).toBe(0);
    const once = await herald([
      'publish',
      '-t',
      'cli.idem',
      '--data',
      '1',
      '--idempotency-key',
      'cli-idem-1',
    ]);
    const again = await herald([
      'publish',
      '-t',
      'cli.idem',
      '--data',
      '1',
      '--idempotency-key',
      'cli-idem-1',
    ]);
    expect(JSON.parse(again.stdout).id).toBe(JSON.parse(once.stdout).id);
    const conflict = await herald([
      'publish',
      '-t',
      'cli.idem',
      '--data',
      '2',
      '--idempotency-key',
      'cli-idem-1',
    ]);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/^herald: HERALD_IDEMPOTENCY_CONFLICT: .* \(HTTP 409\)\n$/);
  });

  it('schedules with --at and cancels; cancelling a sent one is a clear error', async () => {
    const at = new Date(Date.now() + 3600_000).toISOString();
    const s = await herald(['publish', '-d', 'cli-dev-3', '--data', '1', '--at', at]);
    expect(s.code, s.stderr).toBe(0);
    const { id, status } = JSON.parse(s.stdout) as { id: string; status: string };
    expect(status).toBe('scheduled');
    const st = JSON.parse((await herald(['status', id])).stdout) as { state: string; deliverAt: string };
    expect(st).toMatchObject({ state: 'scheduled', deliverAt: at });
    const c = await herald(['cancel', id]);
    expect(c.code, c.stderr).toBe(0);
    expect(JSON.parse(c.stdout)).toEqual({ id, state: 'cancelled' });

    const now = await herald(['publish', '-d', 'cli-dev-3', '--data', '1']);
    const sentId = (JSON.parse(now.stdout) as { id: string }).id;
    const late = await herald(['cancel', sentId]);
    expect(late.code).toBe(1);
    expect(late.stderr).toMatch(
      /^herald: HERALD_ALREADY_SENT: notification .* cannot be cancelled: it is \w+ \(HTTP 409\)\n$/,
    );
  });

  it('exits 1 with the API code and message on HTTP errors', async () => {
    const missing = await herald(['status', '0193c5d2-8f1e-7a3b-9c4d-2e5f6a7b8c9d']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^herald: HERALD_NOT_FOUND: .* \(HTTP 404\)\n$/);
    const badKey = await herald(['publish', '-d', 'x', '--data', '1', '--key', 'wrong-key-0123456789abcdef']);
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toBe('herald: HERALD_UNAUTHORIZED: invalid API key (HTTP 401)\n');
    const badId = await herald(['publish', '-d', 'no spaces', '--data', '1']);
    expect(badId.code).toBe(1);
    expect(badId.stderr).toMatch(/^herald: HERALD_BAD_REQUEST: to\.devices\[0\] .* \(HTTP 400\)\n$/);
    const closed = `http://127.0.0.1:${await freePort('127.0.0.1')}`;
    const down = await herald(['status', 'x1', '--api', closed]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(
      /^herald: cannot reach the API at http:\S+: connect ECONNREFUSED 127\.0\.0\.1:\d+\n$/,
    );
  });

  it('keys: creates a key shown once, lists it without the key, revokes it', async () => {
    const created = await herald(['keys', 'create', '-s', 'publish', '--expires-in', '1d', '--name', 'ci']);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^hrld_[A-Za-z0-9_-]{43}$/);
    const id = /created (k_[0-9a-f]+) for app default: publish, expires \S+Z\./.exec(created.stderr)?.[1];
    expect(id, created.stderr).toBeDefined();
    expect((await herald(['publish', '-d', 'kdev', '--data', '1', '--key', key])).code).toBe(0);
    // A publish-only key cannot manage keys.
    const denied = await herald(['keys', 'list', '--key', key]);
    expect(denied.stderr).toMatch(/^herald: HERALD_FORBIDDEN_SCOPE: .*admin.* \(HTTP 403\)\n$/);

    const listed = await herald(['keys', 'list']);
    expect(listed.stdout).not.toContain(key);
    expect(
      listed.stdout
        .trim()
        .split('\n')
        .map((l) => l.split('\t').slice(0, 3)),
    ).toEqual([
      [expect.any(String), 'config', 'publish,status:read,presence:read,admin'],
      [id, 'redis', 'publish'],
    ]);
    expect((await herald(['keys', 'revoke', id as string])).stdout).toBe(`{"id":"${id}","revoked":true}\n`);
    const gone = await herald(['publish', '-d', 'kdev', '--data', '1', '--key', key]);
    expect(gone.stderr).toBe('herald: HERALD_UNAUTHORIZED: invalid API key (HTTP 401)\n');
  });

  it('reads its defaults from .herald/secrets.json, as npm start writes it', async () => {
    const project = path.join(dir, 'project');
    mkdirSync(path.join(project, '.herald'), { recursive: true });
    mkdirSync(path.join(project, 'sub', 'dir'), { recursive: true });
    writeFileSync(
      path.join(project, '.herald', 'secrets.json'),
      JSON.stringify({ apiKey: API_KEY, tokenSecret: SECRET }),
    );
    const noEnv = { HERALD_API_KEY: undefined, HERALD_TOKEN_SECRET: undefined };
    const r = await herald(['publish', '-d', 'cli-dev-4', '--data', '1'], {
      cwd: path.join(project, 'sub', 'dir'),
      env: noEnv,
    });
    expect(r.code, r.stderr).toBe(0);
    const t = await herald(['token', '--device', 'd'], { cwd: project, env: noEnv });
    await jwtVerify(t.stdout.trim(), new TextEncoder().encode(SECRET));
  });

  it('subscribe exits 0 on SIGINT, and 1 when --count is not reached by --timeout', async () => {
    const sub = start(['subscribe', '--device', 'cli-dev-5']);
    await sub.waitFor('stderr', /connected to/);
    sub.child.kill('SIGINT');
    const r = await sub.exited;
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/closing/);

    const t = await herald(['subscribe', '--device', 'cli-dev-6', '--count', '1', '--timeout', '1', '-q']);
    expect(t.code).toBe(1);
    expect(t.stderr).toBe('herald: timed out after 1 s with 0 of 1 notifications\n');

    const bad = await herald(['subscribe', '--device', 'cli-dev-7', '--token', 'not-a-jwt']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/\nherald: unauthorized: the server rejected the device token \(close 4001: /);

    // A token minted with another secret than the nodes': said so, once, and no retry loop.
    const wrong = await herald([
      'subscribe',
      '--device',
      'cli-dev-8',
      '--secret',
      'not-the-nodes-secret-0123456789',
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.split('\n').slice(-2)).toEqual([
      'herald: unauthorized: the server rejected the device token (close 4001: invalid token: signature verification failed): ' +
        "the token secret used to mint it does not match the server's HERALD_TOKEN_SECRET (the CLI's secret came from --secret)",
      '',
    ]);
  });
});

describe('bench', () => {
  it('publishes N to M subscribed devices and reports throughput and latency', async () => {
    const r = await herald(['bench', '-n', '60', '-c', '6', '-m', '3', '--spread', '--timeout', '20'], {
      timeoutMs: 30_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^published +60 accepted, 0 failed in [\d.]+ s: [\d.]+ accepted\/s$/m);
    expect(r.stdout).toMatch(/^delivered +180 of 180 /m);
    expect(r.stdout).toMatch(/^latency +publish to receipt: p50 [\d.]+ ms, p90 [\d.]+ ms, p99 [\d.]+ ms/m);
  });

  it('--mode devices --json', async () => {
    const r = await herald(['bench', '-n', '20', '-m', '2', '--mode', 'devices', '--json'], {
      timeoutMs: 30_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as {
      mode: string;
      published: { accepted: number };
      delivered: { count: number; expected: number };
      latencyMs: { count: number; p50: number; p99: number };
    };
    expect(res).toMatchObject({
      mode: 'devices',
      published: { accepted: 20 },
      delivered: { count: 40, expected: 40 },
    });
    expect(res.latencyMs.count).toBe(40);
    expect(res.latencyMs.p99).toBeGreaterThanOrEqual(res.latencyMs.p50);
  });

  it('fails clearly when the devices cannot connect in time', async () => {
    const r = await herald([
      'bench',
      '-n',
      '5',
      '-m',
      '2',
      '--ws',
      'ws://127.0.0.1:1/v1/ws',
      '--timeout',
      '1',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'herald: timed out after 1 s with 0 of 2 devices connected to ws://127.0.0.1:1/v1/ws\n',
    );
  });
});
