import {
  type RedisClusterHandle,
  type RedisHandle,
  redisCli,
  startRedis,
  startRedisCluster,
  waitFor,
} from '@herald/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDelivery,
  createRedis,
  Devices,
  Keys,
  type NewEntry,
  type RedisClient,
  ReplicaGate,
  ReplicasNotConfirmed,
  ReplicatedDelivery,
  StatusStore,
  Streams,
  waitCommandFor,
} from '../src/index.js';

const entry = (id: string): NewEntry => ({ id, data: '{"a":1}', ts: Date.now(), exp: Date.now() + 60_000 });

const gates: ReplicaGate[] = [];
afterAll(async () => {
  await Promise.all(gates.map((g) => g.close()));
});

function parts(redis: RedisClient, prefix: string, replicas?: ReplicaGate) {
  if (replicas) gates.push(replicas);
  const keys = new Keys(prefix);
  const streams = new Streams(redis, keys, { inboxMaxLen: 1000, topicMaxLen: 1000, keepMs: 60_000 });
  const status = new StatusStore(redis, keys, 60_000);
  const devices = new Devices(redis, keys, 60_000);
  return { keys, delivery: createDelivery({ redis, keys, streams, status, devices, replicas }) };
}

describe('waitCommandFor', () => {
  it('uses WAITAOF from Redis 7.2 with AOF on, WAIT otherwise', () => {
    expect(waitCommandFor('redis_version:7.0.15\r\naof_enabled:1\r\n')).toBe('WAIT');
    expect(waitCommandFor('redis_version:7.2.4\r\naof_enabled:1\r\n')).toBe('WAITAOF');
    expect(waitCommandFor('redis_version:8.0.0\r\naof_enabled:1\r\n')).toBe('WAITAOF');
    expect(waitCommandFor('redis_version:7.2.4\r\naof_enabled:0\r\n')).toBe('WAIT');
    expect(waitCommandFor('')).toBe('WAIT');
  });

  it('refuses a bad setting', () => {
    expect(() => new ReplicaGate({ minReplicas: -1, timeoutMs: 100 })).toThrow(/minReplicas/);
    expect(() => new ReplicaGate({ minReplicas: 1, timeoutMs: 0 })).toThrow(/timeoutMs/);
  });
});

/** A master and a replica of it, once the replica's link is up. */
async function masterWithReplica(): Promise<{ master: RedisHandle; replica: RedisHandle }> {
  const master = await startRedis();
  const replica = await startRedis({ extraArgs: ['--replicaof', '127.0.0.1', String(master.port)] });
  await waitFor(
    async () => (await redisCli(replica.port, 'INFO', 'replication')).includes('master_link_status:up'),
    { timeoutMs: 20_000, what: 'replica linked' },
  );
  return { master, replica };
}

describe('ReplicaGate on a master with one replica', () => {
  let master: RedisHandle;
  let replica: RedisHandle;
  let redis: RedisClient;

  beforeAll(async () => {
    ({ master, replica } = await masterWithReplica());
    redis = createRedis(master.url, 'background');
  }, 60_000);
  afterAll(async () => {
    await Promise.all(gates.splice(0).map((g) => g.close()));
    redis?.disconnect();
    await replica?.stop();
    await master?.stop();
  });

  it('with 0 replicas, the delivery is the plain one', () => {
    const { delivery } = parts(redis, 'r0', new ReplicaGate({ minReplicas: 0, timeoutMs: 100 }));
    expect(delivery).not.toBeInstanceOf(ReplicatedDelivery);
  });

  it('resolves a delivery once the replica holds its stream entry and status', async () => {
    const gate = new ReplicaGate({ minReplicas: 1, timeoutMs: 2000 });
    const { keys, delivery } = parts(redis, 'r1', gate);
    expect(delivery).toBeInstanceOf(ReplicatedDelivery);
    for (let i = 0; i < 20; i++) {
      await delivery.deliver({ devices: ['d1'] }, entry(`n${i}`), 'sent');
      // Read on the replica right away: the wait is what makes it already there.
      expect(await redisCli(replica.port, 'HGET', keys.status(`n${i}`), 'state')).toBe('sent');
      expect(await redisCli(replica.port, 'XLEN', keys.inbox('d1').stream)).toBe(String(i + 1));
    }
    // Once its own connection is up, the gate WAITs there (after a write of its own), not on
    // the connection the deliveries use.
    expect(Number(await redis.get('herald:replica-barrier'))).toBeGreaterThan(0);
    // More replicas than there are: refused after the timeout, though the master has the write.
    const two = parts(redis, 'r1b', new ReplicaGate({ minReplicas: 2, timeoutMs: 100 }));
    const t0 = Date.now();
    const err = await two.delivery.deliver({ topic: 't' }, entry('x'), 'sent').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReplicasNotConfirmed);
    expect(err).toMatchObject({ code: 'HERALD_REDIS_UNAVAILABLE', confirmed: 1, wanted: 2 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    expect(await redis.hget(two.keys.status('x'), 'state')).toBe('sent');
  });

  it('refuses within its timeout while the replica is stalled, and confirms again after', async () => {
    const gate = new ReplicaGate({ minReplicas: 1, timeoutMs: 200 });
    const { delivery } = parts(redis, 'r2', gate);
    process.kill(replica.pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      await expect(delivery.deliver({ broadcast: true }, entry('s1'), 'sent')).rejects.toBeInstanceOf(
        ReplicasNotConfirmed,
      );
      expect(Date.now() - t0).toBeLessThan(1500);
      // 50 publishes at once: one WAIT in flight and one gathering the rest, so all are refused
      // within two timeouts (one blocked WAIT each would take 50 x 200 ms), and the writing
      // connection is never held up by them.
      const t1 = Date.now();
      const all = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) => delivery.deliver({ topic: `t${i}` }, entry(`m${i}`), 'sent')),
      );
      expect(all.every((r) => r.status === 'rejected' && r.reason instanceof ReplicasNotConfirmed)).toBe(
        true,
      );
      expect(await redis.ping()).toBe('PONG');
      expect(Date.now() - t1).toBeLessThan(2 * 200 + 500);
    } finally {
      process.kill(replica.pid, 'SIGCONT');
    }
    await delivery.deliver({ broadcast: true }, entry('s2'), 'sent');
  });
});

describe('ReplicaGate on a connection that reached a replica (an old master after a failover)', () => {
  let master: RedisHandle;
  let replica: RedisHandle;
  let onReplica: RedisClient;

  beforeAll(async () => {
    master = await startRedis();
    replica = await startRedis({ extraArgs: ['--replicaof', '127.0.0.1', String(master.port)] });
    onReplica = createRedis(replica.url, 'background');
  }, 60_000);
  afterAll(async () => {
    await Promise.all(gates.splice(0).map((g) => g.close()));
    onReplica?.disconnect();
    await replica?.stop();
    await master?.stop();
  });

  // The Cluster campaign (seed 1) got `ERR WAIT cannot be used with replica instances` as a 500.
  it('answers "not confirmed" (503), not the server error', async () => {
    const gate = new ReplicaGate({ minReplicas: 1, timeoutMs: 200 });
    gates.push(gate);
    await onReplica.ping();
    for (let i = 0; i < 2; i++)
      await expect(gate.confirm(onReplica)).rejects.toBeInstanceOf(ReplicasNotConfirmed);
  });
});

describe('ReplicaGate when the connection closes during its WAIT', () => {
  let master: RedisHandle;
  let replica: RedisHandle;
  let redis: RedisClient;

  beforeAll(async () => {
    ({ master, replica } = await masterWithReplica());
    redis = createRedis(master.url, 'background');
  }, 60_000);
  afterAll(async () => {
    await Promise.all(gates.splice(0).map((g) => g.close()));
    redis?.disconnect();
    await replica?.stop();
    await master?.stop();
  });

  // The Sentinel campaign (seed 11) got ioredis's AbortError as a 500.
  it('answers "not confirmed" (503), not the aborted command', async () => {
    const gate = new ReplicaGate({ minReplicas: 1, timeoutMs: 5000 });
    gates.push(gate);
    await redis.set('abort:k', '1');
    await gate.confirm(redis); // the barrier connection is made and connected
    await redis.set('abort:k', '2');
    process.kill(replica.pid, 'SIGSTOP');
    try {
      await redisCli(master.port, 'CLIENT', 'KILL', 'TYPE', 'replica');
      const pending = gate.confirm(redis).then(
        () => 'confirmed',
        (err: unknown) => err,
      );
      // The WAIT is blocked (no replica acks); cut every client connection meanwhile.
      await waitFor(async () => /cmd=wait\b/.test(await redisCli(master.port, 'CLIENT', 'LIST')), {
        timeoutMs: 4000,
        intervalMs: 20,
        what: 'the WAIT in flight',
      });
      await redisCli(master.port, 'CLIENT', 'KILL', 'TYPE', 'normal');
      expect(await pending).toBeInstanceOf(ReplicasNotConfirmed);
    } finally {
      process.kill(replica.pid, 'SIGCONT');
    }
  });
});

describe('ReplicaGate on a Redis Cluster', () => {
  let cluster: RedisClusterHandle;
  let redis: RedisClient;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
    redis = createRedis(cluster.url, 'background');
  }, 90_000);
  afterAll(async () => {
    await Promise.all(gates.splice(0).map((g) => g.close()));
    redis?.disconnect();
    await cluster?.stop();
  });

  it('waits on every master the steps wrote to (one replica each)', async () => {
    const { delivery } = parts(redis, 'c1', new ReplicaGate({ minReplicas: 1, timeoutMs: 2000 }));
    const devices = Array.from({ length: 30 }, (_, i) => `cd${i}`);
    await delivery.deliver({ devices }, entry('c-n1'), 'sent');
    await delivery.deliver({ topic: 'ct' }, entry('c-n2'), 'sent');
    const two = parts(redis, 'c2', new ReplicaGate({ minReplicas: 2, timeoutMs: 100 }));
    await expect(two.delivery.deliver({ devices }, entry('c-n3'), 'sent')).rejects.toMatchObject({
      confirmed: 1,
      wanted: 2,
    });
  });
});
