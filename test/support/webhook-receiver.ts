import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** A random Standard Webhooks secret (`whsec_` + base64 of 24 bytes). */
export function webhookSecret(): string {
  return `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64')}`;
}

export interface ReceivedEvent {
  id: string;
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

/**
 * A webhook endpoint for tests (docs/webhooks.md): verifies every request's signature with the
 * `standardwebhooks` package (a request that fails is answered 400 and counted in `badSignatures`),
 * keeps every event and every request's webhook-id. `mode`: `ok` answers 204, `fail` 500,
 * `slow` 204 after `slowMs`; `down()` closes the port (connections refused) until `up()`.
 */
export class WebhookReceiver {
  mode: 'ok' | 'fail' | 'slow' = 'ok';
  slowMs = 5000;
  readonly events: ReceivedEvent[] = [];
  /** webhook-id of each request answered 2xx, in arrival order. */
  readonly requests: string[] = [];
  /** Requests answered 500 (mode `fail`). */
  failed = 0;
  badSignatures = 0;
  private server: Server | undefined;
  private port = 0;
  private readonly verifier: Webhook;

  private constructor(readonly secret: string) {
    this.verifier = new Webhook(secret);
  }

  static async start(secret = webhookSecret()): Promise<WebhookReceiver> {
    const r = new WebhookReceiver(secret);
    await r.up();
    return r;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** Distinct event ids received. */
  uniqueIds(type?: string): Set<string> {
    return new Set(this.events.filter((e) => !type || e.type === type).map((e) => e.id));
  }

  async up(): Promise<void> {
    const server = createServer((req, res) => {
      void this.handle(req).then(
        (status) => {
          res.statusCode = status;
          res.end();
        },
        () => {
          res.statusCode = 400;
          res.end();
        },
      );
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async handle(req: IncomingMessage): Promise<number> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    let payload: { type: string; events: ReceivedEvent[] };
    try {
      payload = this.verifier.verify(body, req.headers as Record<string, string>) as typeof payload;
    } catch {
      this.badSignatures++;
      return 400;
    }
    if (this.mode === 'fail') {
      this.failed++;
      return 500;
    }
    if (this.mode === 'slow') await new Promise((r) => setTimeout(r, this.slowMs));
    this.requests.push(String(req.headers['webhook-id']));
    this.events.push(...payload.events);
    return 204;
  }

  async stop(): Promise<void> {
    await this.down();
  }
}
