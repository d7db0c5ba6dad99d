import Type from 'typebox';
import { webhookRetries, webhookWorker } from './webhook-settings.js';

/**
 * Every setting, one schema per app, read from the environment. The schema is the single
 * source: validation at start-up, types, and the README's settings table all come from it.
 */
const Int = (def: number, min: number, max: number, description: string) =>
  Type.Integer({ default: def, minimum: min, maximum: max, description });

export const common = {
  REDIS_URL: Type.String({
    pattern: '^(rediss?|redis\\+sentinel|redis\\+cluster)://',
    description:
      'Redis to use: redis://host:6379/0, redis+sentinel://h1:26379,h2:26379/mymaster, or redis+cluster://h1:7000,h2:7001. Needs AOF and maxmemory-policy noeviction.',
  }),
  HERALD_HOST: Type.String({ default: '0.0.0.0', description: 'Address to bind.' }),
  HERALD_LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'pino log level.' },
  ),
  HERALD_REDIS_PREFIX: Type.String({
    default: 'herald',
    pattern: '^[A-Za-z0-9_-]{1,32}$',
    description: 'Prefix of every Redis key and channel.',
  }),
  HERALD_APPS_FILE: Type.String({
    default: '',
    description:
      'Apps file (JSON, or YAML if it ends in .yaml/.yml): apps with their keys, token verification, origins and limits (docs/tenancy.md). Reloaded on SIGHUP and when it changes. Empty: one app `default` from the variables here.',
  }),
  HERALD_WEBHOOKS: Type.String({
    default: '',
    description:
      'Without HERALD_APPS_FILE: webhook endpoints of the app `default`, a JSON array of `{"id","url","events":[...],"secret":"whsec_..."}` for every key of HERALD_API_KEYS (docs/webhooks.md). With the file: ignored, endpoints are under `apps[].keys[].webhooks`. API, node and worker set it alike.',
  }),
  HERALD_METRICS_APP_LABEL: Type.Boolean({
    default: true,
    description:
      'Per-app metrics carry the app id in a `tenant` label (the first 100 app ids a process sees; later ones share `other`). false: every app is `all`.',
  }),
  HERALD_DEVICE_RETENTION_S: Int(
    30 * 86400,
    60,
    365 * 86400,
    'How long device registry, subscriptions and cursors live after last use.',
  ),
};

/** Stream bounds: whoever appends needs them (the worker, and the API for direct publishes), so set them alike on both. */
export const streams = {
  HERALD_INBOX_MAXLEN: Int(1000, 10, 1_000_000, 'Most entries kept per device inbox.'),
  HERALD_TOPIC_MAXLEN: Int(10_000, 10, 10_000_000, 'Most entries kept per topic or broadcast stream.'),
  HERALD_STREAM_KEEP_S: Int(86400, 1, 30 * 86400, 'How long a stream outlives its longest-lived entry.'),
};

/** Synchronous replication: whoever writes deliveries (the API's direct path and queue, the worker) waits alike; nodes deliver only what the replicas hold. */
export const replication = {
  HERALD_REDIS_MIN_REPLICAS: Int(
    0,
    0,
    16,
    'Replicas that must hold a publish before it is answered 202 (API), its fan-out step counts as done (worker) or a node delivers it (node): Redis WAIT, or WAITAOF on Redis 7.2+ with AOF on. 0: asynchronous replication, a failover right after a 202 can lose it (docs/guarantees.md).',
  ),
  HERALD_REDIS_REPLICA_TIMEOUT_MS: Int(
    250,
    1,
    60_000,
    'Longest wait for HERALD_REDIS_MIN_REPLICAS to confirm; past it the publish is answered 503 HERALD_REDIS_UNAVAILABLE (it may still have happened) and a fan-out step is retried. API: keep it under HERALD_REDIS_TIMEOUT_MS.',
  ),
};

/** Device-token verification beyond the HS256 secret: the nodes, and the API for its device routes, set them alike. */
export const deviceTokens = {
  HERALD_JWKS_URL: Type.String({
    default: '',
    description: 'JWKS URL for asymmetric device tokens (RS256, ES256, EdDSA).',
  }),
  HERALD_JWKS_FILE: Type.String({
    default: '',
    description: 'JWKS file for asymmetric device tokens, instead of a URL.',
  }),
  HERALD_TOKEN_ISSUER: Type.String({
    default: '',
    description: 'Required `iss` of device tokens (empty: not checked).',
  }),
};

/** Web Push (docs/webpush.md): the API checks subscriptions and serves the public key; the worker signs and sends. */
export const webpush = {
  HERALD_VAPID_PUBLIC_KEY: Type.String({
    default: '',
    pattern: '^[A-Za-z0-9_-]*$',
    description:
      'VAPID public key (RFC 8292, base64url P-256 point) served by GET /v1/webpush/key and used by the worker. Empty: Web Push off. `npm start` generates a pair into .herald/secrets.json.',
  }),
  HERALD_WEBPUSH_ALLOW_LOCAL_HTTP: Type.Boolean({
    default: false,
    description: 'Test only: also accept and send to http://127.0.0.1 push endpoints (a local push service).',
  }),
};

export const apiSchema = Type.Object({
  ...common,
  HERALD_PORT: Int(8080, 0, 65535, 'HTTP port of this process.'),
  HERALD_API_KEYS: Type.String({
    default: '',
    description:
      'Comma-separated API keys for publishers (each at least 16 characters), all scopes, app `default`. Required without HERALD_APPS_FILE; ignored with it.',
  }),
  HERALD_MAX_BODY_BYTES: Int(1 << 20, 1024, 16 << 20, 'Largest publish request body (413 above).'),
  HERALD_MAX_DATA_BYTES: Int(4096, 16, 1 << 20, 'Largest notification `data`, as JSON text (413 above).'),
  HERALD_TTL_DEFAULT_S: Int(3600, 1, 365 * 86400, 'TTL when a publish gives none.'),
  HERALD_TTL_MAX_S: Int(7 * 86400, 1, 365 * 86400, 'Largest TTL a publish may ask for.'),
  HERALD_MAX_SCHEDULE_AHEAD_S: Int(30 * 86400, 1, 365 * 86400, 'How far ahead `deliverAt` may be.'),
  HERALD_MAX_BATCH: Int(500, 1, 10_000, 'Most notifications in one POST /v1/notifications/batch.'),
  HERALD_DIRECT_PUBLISH: Type.Boolean({
    default: true,
    description:
      'Append immediate publishes to a topic, to every device or to at most HERALD_DIRECT_MAX_DEVICES devices in the API itself (its status is `sent` when the 202 is answered) instead of queueing them for the worker. Scheduled and user publishes always go through the queue.',
  }),
  HERALD_DIRECT_MAX_DEVICES: Int(
    100,
    1,
    10_000,
    'Largest `devices` list a direct publish appends; longer lists go through the queue.',
  ),
  ...streams,
  ...replication,
  HERALD_API_KEY_CACHE_MS: Int(
    5000,
    0,
    60_000,
    'How long an API process reuses its lookup of a runtime API key (created with the admin API or `herald keys`): a revoked key may keep working this long on other API processes.',
  ),
  HERALD_RATE_PUBLISHES_PER_S: Int(
    0,
    0,
    10_000_000,
    'Without HERALD_APPS_FILE: publish requests per second of the app across all API processes (0: unlimited); above: 429 HERALD_RATE_LIMITED.',
  ),
  HERALD_RATE_PUBLISH_BURST: Int(0, 0, 10_000_000, 'Burst of HERALD_RATE_PUBLISHES_PER_S (0: the rate).'),
  HERALD_RATE_KEY_PUBLISHES_PER_S: Int(
    0,
    0,
    10_000_000,
    'Without HERALD_APPS_FILE: publish requests per second of each API key (0: unlimited).',
  ),
  HERALD_RATE_KEY_PUBLISH_BURST: Int(
    0,
    0,
    10_000_000,
    'Burst of HERALD_RATE_KEY_PUBLISHES_PER_S (0: the rate).',
  ),
  HERALD_RATE_NOTIFICATIONS_PER_S: Int(
    0,
    0,
    100_000_000,
    'Without HERALD_APPS_FILE: notifications fanned out per second (one per listed device or user, one per topic or broadcast publish; 0: unlimited).',
  ),
  HERALD_IDEMPOTENCY_WINDOW_S: Int(86400, 1, 30 * 86400, 'How long an Idempotency-Key is remembered.'),
  HERALD_REDIS_TIMEOUT_MS: Int(
    1000,
    50,
    60_000,
    "Longest a request waits for Redis (from the moment it has been read): past it the answer is 503 HERALD_REDIS_UNAVAILABLE with Retry-After: 1, even while Redis is stalled rather than down. Also the command timeout of the API's Redis connections.",
  ),
  HERALD_STATUS_KEEP_S: Int(86400, 60, 30 * 86400, 'How long a notification status outlives its TTL.'),
  HERALD_TOKEN_SECRET: Type.String({
    default: '',
    description:
      'HS256 secret of device tokens (at least 16 characters). Node: required unless a JWKS is set. API: optional, lets the web console (`/console`) mint tokens for its demo device and devices register their own Web Push subscription (with or instead of HERALD_JWKS_URL/FILE).',
  }),
  ...deviceTokens,
  HERALD_PUBLIC_WS_URL: Type.String({
    default: '',
    pattern: '^(wss?://\\S+)?$',
    description:
      'WebSocket URL of the balancer as browsers reach it, shown by the web console (empty: the console suggests ws://<host>:8000/v1/ws).',
  }),
  HERALD_TRUST_PROXY: Type.String({
    default: 'false',
    pattern: '^(true|false|[A-Za-z0-9.:/, ]+)$',
    description:
      'Whose X-Forwarded-For to believe for the client address in logs: `false` (the peer itself), `true` (any peer: only when nothing but the proxy can reach the API), or a comma-separated list of proxy addresses or CIDRs (`loopback`, `linklocal`, `uniquelocal` work too).',
  }),
  ...webpush,
  HERALD_WEBPUSH_ALLOWED_HOSTS: Type.String({
    default:
      'fcm.googleapis.com,updates.push.services.mozilla.com,*.push.services.mozilla.com,*.notify.windows.com,web.push.apple.com,*.push.apple.com',
    description:
      'Comma-separated push-service hosts a Web Push endpoint may have (`*.example.com` for subdomains); empty: any https host.',
  }),
  HERALD_WEBPUSH_MAX_PER_DEVICE: Int(
    5,
    1,
    100,
    'Web Push subscriptions kept per device; registering one more drops the oldest.',
  ),
  ...webhookRetries,
  HERALD_WEBPUSH_DEFAULT_AFTER_S: Int(
    -1,
    -1,
    7 * 86400,
    'Default `push.after` for publishes to devices, users or topics that give no `push` (the message is the notification data, no title); -1: none, nothing is pushed unless asked.',
  ),
});

export const workerSchema = Type.Object({
  ...common,
  HERALD_PORT: Int(8070, 0, 65535, 'HTTP port of this process.'),
  HERALD_WORKER_CONCURRENCY: Int(
    8,
    1,
    256,
    'Fan-out jobs run at once per worker process (jobs for the same target still run in accept order).',
  ),
  HERALD_FANOUT_CHUNK: Int(500, 1, 10_000, 'Devices appended per pipeline in a fan-out.'),
  ...streams,
  ...replication,
  HERALD_JOB_LOCK_MS: Int(
    6000,
    1000,
    600_000,
    "BullMQ lock of a running fan-out, renewed every half of it. A crashed worker's job is taken over once its lock has expired (within this plus two HERALD_STALLED_CHECK_MS). A worker whose event loop or Redis stalls for about half of it loses its jobs; it then stops at its next chunk.",
  ),
  HERALD_STALLED_CHECK_MS: Int(
    1500,
    100,
    600_000,
    'How often the workers (one at a time) look for fan-outs whose lock expired and hand them to a live worker.',
  ),
  HERALD_MAX_STALLED: Int(
    3,
    0,
    100,
    'Times a fan-out may be taken over from a lost worker before it fails for good (a job that keeps crashing workers).',
  ),
  HERALD_SHUTDOWN_MS: Int(
    8000,
    0,
    600_000,
    'On SIGTERM, how long running fan-outs may take to finish before the worker exits anyway (they resume on another worker).',
  ),
  HERALD_PRESENCE_DEBOUNCE_MS: Int(
    5000,
    0,
    600_000,
    'Webhooks `device.online` / `device.offline`: a device that reconnects within this long after a disconnect gets neither (docs/webhooks.md).',
  ),
  ...webpush,
  HERALD_VAPID_PRIVATE_KEY: Type.String({
    default: '',
    pattern: '^[A-Za-z0-9_-]*$',
    description: 'VAPID private key (base64url), paired with HERALD_VAPID_PUBLIC_KEY. Never logged.',
  }),
  HERALD_VAPID_SUBJECT: Type.String({
    default: '',
    pattern: '^((mailto:|https://)\\S+)?$',
    description: 'VAPID `sub`: a mailto: or https: contact for push services (required with the keys).',
  }),
  HERALD_WEBPUSH_CONCURRENCY: Int(32, 1, 1024, 'Web Push requests in flight per check job.'),
  HERALD_WEBPUSH_TIMEOUT_MS: Int(10_000, 100, 120_000, 'Longest a push service may take to answer one push.'),
  HERALD_WEBPUSH_MAX_ATTEMPTS: Int(
    5,
    1,
    50,
    'Sends of one push to one subscription while the push service answers 429, 5xx or nothing; then it counts as pushFailed.',
  ),
  HERALD_WEBPUSH_RETRY_MS: Int(
    1000,
    10,
    3_600_000,
    'First retry delay of a push (doubling each attempt); a longer Retry-After from the push service wins.',
  ),
  ...webhookRetries,
  ...webhookWorker,
});

export const nodeSchema = Type.Object({
  ...common,
  ...replication,
  HERALD_PORT: Int(8090, 0, 65535, 'HTTP port of this process.'),
  HERALD_NODE_ID: Type.String({
    default: '',
    pattern: '^[A-Za-z0-9_.-]{0,64}$',
    description: 'Node id in presence and doorbells; default hostname-pid. Must be unique among live nodes.',
  }),
  HERALD_TOKEN_SECRET: Type.String({
    default: '',
    description: 'HS256 secret of device tokens (at least 16 characters). Required unless a JWKS is set.',
  }),
  ...deviceTokens,
  HERALD_ALLOWED_ORIGINS: Type.String({
    default: '*',
    description:
      'Comma-separated Origins allowed for browser clients (`*` any). Requests without Origin (native clients) are always allowed.',
  }),
  HERALD_COOKIE_SECURE: Type.Boolean({
    default: false,
    description:
      'Mark the device-token cookie (`POST /v1/cookie`) `Secure` on every request, not only TLS ones or `X-Forwarded-Proto: https`: set it when TLS ends at an L4 balancer.',
  }),
  HERALD_PROXY_PROTOCOL: Type.Boolean({
    default: false,
    description:
      'Expect a PROXY protocol v1/v2 header from the balancer on every connection (refuse connections without it).',
  }),
  HERALD_HEALTH_PORT: Int(
    0,
    0,
    65535,
    'Extra plain-HTTP port for /healthz, /readyz and /metrics (for probes that cannot send PROXY protocol); 0: none.',
  ),
  HERALD_ACCEPT_RATE: Int(
    2000,
    1,
    1_000_000,
    'New connections accepted per second (burst of the same size); above: close 4013.',
  ),
  HERALD_MAX_CONNECTIONS_PER_USER: Int(
    50,
    1,
    100_000,
    'Connections per user on one node; above: close 4013.',
  ),
  HERALD_FRAME_RATE: Int(
    50,
    1,
    100_000,
    'Client frames per second per connection (burst twice that); above: close 4008.',
  ),
  HERALD_HEARTBEAT_MS: Int(
    25_000,
    100,
    300_000,
    'Server ping interval; keep under the balancer idle timeout.',
  ),
  HERALD_HELLO_TIMEOUT_MS: Int(5000, 100, 60_000, 'Time a new socket has to send hello.'),
  HERALD_MAX_FRAME_BYTES: Int(65_536, 256, 1 << 20, 'Largest client frame (close 1009 above).'),
  HERALD_MAX_CONNECTIONS: Int(50_000, 1, 1_000_000, 'Connections this node accepts.'),
  HERALD_MAX_TOPICS: Int(64, 0, 10_000, 'Topics per connection.'),
  HERALD_SLOW_CONSUMER_BYTES: Int(
    1 << 20,
    1024,
    64 << 20,
    'Unsent bytes per socket before it is closed as a slow consumer.',
  ),
  HERALD_PRESENCE_TTL_MS: Int(
    60_000,
    1000,
    3_600_000,
    'Presence lifetime without refresh; above the heartbeat.',
  ),
  HERALD_FLUSH_MS: Int(200, 10, 10_000, 'Interval of ack/delivery count and cursor flushes to Redis.'),
  HERALD_REPLAY_BATCH: Int(200, 1, 10_000, 'Entries read per replay round trip.'),
  HERALD_DRAIN_MS: Int(10_000, 0, 600_000, 'Drain window on SIGTERM: reconnect hints are spread over it.'),
  HERALD_POLL_MAX_WAIT_S: Int(
    60,
    1,
    600,
    'Longest a long-poll is held (its `wait`, default 25 s, is capped here); keep under the balancer idle timeout.',
  ),
  HERALD_LISTEN_BACKLOG: Int(
    4096,
    1,
    65_535,
    "Pending-connection queue of the node's listening socket, room for a reconnect storm (the kernel caps it at net.core.somaxconn).",
  ),
});
