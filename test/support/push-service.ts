import { createECDH, type ECDH, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as ece from 'http_ece';
import { importJWK, jwtVerify } from 'jose';

/**
 * A local push service (RFC 8030) for the Web Push tests: it hands out subscriptions (a P-256
 * key pair and an auth secret per browser, as a browser's PushManager would make), receives
 * pushes at their endpoints, checks the VAPID signature (RFC 8292) and decrypts each message
 * with the subscription's private key using http_ece (RFC 8188/8291 aes128gcm): a message the
 * sender encrypted wrongly fails here. Answers can be scripted per subscription (410, 503 with
 * Retry-After, ...) and the whole service can be taken down and brought back on the same port.
 */
export interface ReceivedPush {
  sub: string;
  at: number;
  ttl: number;
  urgency: string | undefined;
  topic: string | undefined;
  /** The VAPID JWT's claims, once verified against the `k` key of the Authorization header. */
  vapid: { aud: string; sub: string; exp: number; k: string };
  /** Decrypted plaintext. */
  text: string;
  /** The status the service answered. */
  status: number;
}

export interface TestSubscription {
  id: string;
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export class PushService {
  readonly received: ReceivedPush[] = [];
  /** Every request that reached the service, answered or not. */
  attempts: { sub: string; at: number; status: number }[] = [];
  private readonly subs = new Map<string, { ecdh: ECDH; auth: string }>();
  private readonly scripted = new Map<string, { status: number; headers?: Record<string, string> }[]>();
  private server: Server | undefined;
  private port = 0;

  static async start(): Promise<PushService> {
    const s = new PushService();
    await s.listen(0);
    return s;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  subscribe(): TestSubscription {
    const id = randomBytes(8).toString('hex');
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const auth = randomBytes(16).toString('base64url');
    this.subs.set(id, { ecdh, auth });
    return {
      id,
      endpoint: `${this.origin}/push/${id}`,
      keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth },
    };
  }

  /** The next answers for a subscription, in order (then 201 again). */
  script(sub: string, ...answers: { status: number; headers?: Record<string, string> }[]): void {
    this.scripted.set(sub, answers);
  }

  /** Pushes received (2xx answered), optionally for one subscription. */
  pushes(sub?: string): ReceivedPush[] {
    return this.received.filter((r) => r.status < 300 && (sub === undefined || r.sub === sub));
  }

  async waitFor(cond: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > until) throw new Error(`push service: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops answering (connections refused) until `up()`. */
  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s)
      await new Promise<void>((r) => {
        s.close(() => r());
        s.closeAllConnections();
      });
  }

  async up(): Promise<void> {
    await this.listen(this.port);
  }

  async stop(): Promise<void> {
    await this.down();
  }

  private async listen(port: number): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req).then(
        ([status, headers]) => {
          res.writeHead(status, headers).end();
        },
        (err: unknown) => {
          res.writeHead(400, { 'content-type': 'text/plain' }).end(String((err as Error).message));
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  private async handle(req: IncomingMessage): Promise<[number, Record<string, string>]> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const m = /^\/push\/([0-9a-f]+)$/.exec(req.url ?? '');
    const sub = m?.[1] ?? '';
    const at = Date.now();
    const known = this.subs.get(sub);
    const next = this.scripted.get(sub)?.shift();
    const status = !known ? 404 : (next?.status ?? 201);
    this.attempts.push({ sub, at, status });
    if (!known || status >= 300) return [status, next?.headers ?? {}];
    if (req.headers['content-encoding'] !== 'aes128gcm')
      throw new Error('Content-Encoding must be aes128gcm');
    if (body.length > 4096) throw new Error('message over 4096 bytes');
    const ttl = Number(req.headers.ttl);
    if (!Number.isInteger(ttl) || ttl < 0) throw new Error('TTL header missing');
    const vapid = await verifyVapid(req.headers.authorization ?? '', this.origin);
    const text = ece
      .decrypt(body, { version: 'aes128gcm', privateKey: known.ecdh, authSecret: known.auth })
      .toString('utf8');
    this.received.push({
      sub,
      at,
      ttl,
      urgency: req.headers.urgency as string | undefined,
      topic: req.headers.topic as string | undefined,
      vapid,
      text,
      status,
    });
    return [status, { location: `${this.origin}/message/${randomBytes(4).toString('hex')}` }];
  }
}

/** RFC 8292: `Authorization: vapid t=<JWT ES256>, k=<public key>`; the JWT's aud is the push service's origin. */
async function verifyVapid(header: string, origin: string): Promise<ReceivedPush['vapid']> {
  const m = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(header);
  if (!m) throw new Error(`not a VAPID Authorization header: ${header.slice(0, 20)}`);
  const [, t, k] = m as unknown as [string, string, string];
  const raw = Buffer.from(k, 'base64url');
  if (raw.length !== 65 || raw[0] !== 4) throw new Error('VAPID k is not an uncompressed P-256 point');
  const key = await importJWK(
    {
      kty: 'EC',
      crv: 'P-256',
      x: raw.subarray(1, 33).toString('base64url'),
      y: raw.subarray(33).toString('base64url'),
    },
    'ES256',
  );
  const { payload } = await jwtVerify(t, key, { algorithms: ['ES256'], audience: origin });
  if (typeof payload.sub !== 'string' || typeof payload.exp !== 'number') throw new Error('VAPID claims');
  return { aud: String(payload.aud), sub: payload.sub, exp: payload.exp, k };
}

/** A VAPID key pair as web-push and HERALD_VAPID_* take them (base64url). */
export function vapidKeys(): { publicKey: string; privateKey: string } {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return {
    publicKey: ecdh.getPublicKey().toString('base64url'),
    // 32 bytes even when the scalar has leading zeros (web-push checks the length).
    privateKey: Buffer.from(ecdh.getPrivateKey().toString('hex').padStart(64, '0'), 'hex').toString(
      'base64url',
    ),
  };
}
