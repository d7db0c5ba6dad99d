import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { HeraldClient, type HeraldEvents } from '../src/client.js';
import { Recorder } from './fake-node.js';

// Client-side liveness against a real process that stops (SIGSTOP): the stalled node case of
// docs/protocol.md, with the timings scaled down from 15 s + 5 s to 300 ms + 200 ms.
const SCRIPT = fileURLToPath(new URL('./stoppable-node.mjs', import.meta.url));
const PING_IDLE_MS = 300;
const PONG_TIMEOUT_MS = 200;
const WELCOME_TIMEOUT_MS = 300;
/** Timer and scheduling slack on a loaded machine. */
const SLACK_MS = 400;

let child: ChildProcess | undefined;
let client: HeraldClient | undefined;

afterEach(async () => {
  if (child?.pid !== undefined) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  }
  child = undefined;
  await client?.close();
  client = undefined;
});

async function startNode(): Promise<string> {
  const c = spawn(process.execPath, [SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] });
  child = c;
  const [line] = (await Promise.race([
    once(c.stdout!, 'data'),
    new Promise((_, reject) => setTimeout(() => reject(new Error('node did not start')), 5000)),
  ])) as [Buffer];
  return `ws://127.0.0.1:${line.toString().trim()}/v1/ws`;
}

describe('liveness: a node that stops answering (SIGSTOP)', () => {
  it('is detected within pingIdleMs + pongTimeoutMs, then connects are dropped at welcomeTimeoutMs until it resumes', async () => {
    const url = await startNode();
    client = new HeraldClient({
      url,
      token: 'tok',
      pingIdleMs: PING_IDLE_MS,
      pongTimeoutMs: PONG_TIMEOUT_MS,
      welcomeTimeoutMs: WELCOME_TIMEOUT_MS,
      backoff: { initialMs: 20, maxMs: 50 },
      lifecycle: false,
    });
    const rec = new Recorder<HeraldEvents>(client, ['disconnect', 'welcome', 'state']);
    await client.connect();
    // Healthy and quiet: pings are answered, so it stays.
    await new Promise((r) => setTimeout(r, 2 * (PING_IDLE_MS + PONG_TIMEOUT_MS)));
    expect(rec.of('disconnect')).toEqual([]);

    child!.kill('SIGSTOP');
    const stoppedAt = Date.now();
    const d = await rec.wait('disconnect', () => true, PING_IDLE_MS + PONG_TIMEOUT_MS + SLACK_MS);
    expect(d.reason).toBe(`no answer to ping within ${PONG_TIMEOUT_MS} ms`);
    expect(Date.now() - stoppedAt).toBeLessThan(PING_IDLE_MS + PONG_TIMEOUT_MS + SLACK_MS);
    expect(client.state).toBe('reconnecting');

    // The stopped node's kernel completes the TCP handshake; no welcome ever comes.
    const d2 = await rec.nth('disconnect', 2, 50 + WELCOME_TIMEOUT_MS + SLACK_MS);
    expect(d2.reason).toBe(`no welcome within ${WELCOME_TIMEOUT_MS} ms`);

    child!.kill('SIGCONT');
    await rec.nth('welcome', 2, 3000);
    expect(client.state).toBe('open');
  });
});
