/**
 * Floors (issue #14): bare Node servers that do only what any server of Herald's shape must, driven
 * by the same load generator as Herald, so that a target can be held against what Node and this
 * machine allow. `ws-floor`: a connect (upgrade, hello, welcome). `herald-floor`: a single-device
 * notification along the hops of Herald's design (publisher -> API -> Redis -> push node ->
 * device, and the device's ack).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ManagedProcess, type RedisHandle, startRedis } from '@herald/stack';
import { socketsPerProcess } from './limits.js';
import { startPeerProcesses } from './peer-processes.js';
import { type RunningSystem, type StartOptions, TOKEN_SECRET } from './system-types.js';

const WS_FLOOR_SERVER = fileURLToPath(new URL('./peers/ws-floor-server.js', import.meta.url));

/**
 * The floor of a connect on Node (issue #14): bare `ws` processes (as many as Herald's nodes
 * would be) answering Herald's `hello` with a `welcome`; no token, Redis or framework.
 */
export async function startWsFloor(o: StartOptions): Promise<RunningSystem> {
  const per = socketsPerProcess();
  const count = Math.max(o.nodes, Math.ceil((o.peak * 1.1) / per));
  fs.mkdirSync(o.logDir, { recursive: true });
  const procs: ManagedProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(procs.map((p) => p.stop('SIGTERM', 5000)));
  };
  try {
    await startPeerProcesses(o, WS_FLOOR_SERVER, 'ws-floor', count, {}, procs, ports);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    name: 'ws-floor',
    clientKind: 'herald',
    urls: ports.map((p) => `ws://127.0.0.1:${p}/v1/ws`),
    groups: [{ name: 'ws', counted: true, pids: () => procs.map((p) => p.pid) }],
    tokenSecret: TOKEN_SECRET,
    publish: async () => 0,
    info: { processes: count, server: 'bench/src/peers/ws-floor-server.ts: ws, no framework, no Redis' },
    logs: [],
    stop,
  };
}
const FLOOR_API = fileURLToPath(new URL('./peers/floor-api.js', import.meta.url));
const FLOOR_NODE = fileURLToPath(new URL('./peers/floor-node.js', import.meta.url));

/**
 * The floor of a single-device notification in Herald's architecture: one bare API process
 * (peers/floor-api.ts: JSON parse, one `PUBLISH`, 202), a Redis without AOF, and as many bare push
 * nodes as Herald's (peers/floor-node.ts: a pub/sub channel per device, one frame out, acks read).
 */
export async function startHeraldFloor(o: StartOptions, append = false): Promise<RunningSystem> {
  const per = socketsPerProcess();
  const count = Math.max(o.nodes, Math.ceil((o.peak * 1.1) / per));
  fs.mkdirSync(o.logDir, { recursive: true });
  const nodes: ManagedProcess[] = [];
  const nodePorts: number[] = [];
  const api: ManagedProcess[] = [];
  const apiPorts: number[] = [];
  let redis: RedisHandle | undefined;
  const stop = async () => {
    await Promise.all([...api, ...nodes].map((p) => p.stop('SIGTERM', 5000)));
    await redis?.stop().catch(() => undefined);
  };
  try {
    redis = await startRedis({
      dir: path.join(o.dir, 'floor-redis'),
      logFile: path.join(o.logDir, 'floor-redis.log'),
      appendonly: append,
    });
    const env = { REDIS_URL: redis.url, FLOOR_APPEND: append ? '1' : '0' };
    await startPeerProcesses(o, FLOOR_NODE, 'floor-node', count, env, nodes, nodePorts);
    await startPeerProcesses(o, FLOOR_API, 'floor-api', 1, env, api, apiPorts);
  } catch (err) {
    await stop();
    throw err;
  }
  const r = redis;
  const base = `http://127.0.0.1:${apiPorts[0]}`;
  return {
    name: append ? 'herald-floor-durable' : 'herald-floor',
    clientKind: 'herald',
    urls: nodePorts.map((p) => `ws://127.0.0.1:${p}/v1/ws`),
    groups: [
      { name: 'nodes', counted: true, pids: () => nodes.map((p) => p.pid) },
      { name: 'api', counted: true, pids: () => api.map((p) => p.pid) },
      { name: 'redis', counted: true, pids: () => [r.pid] },
    ],
    tokenSecret: TOKEN_SECRET,
    publish(pub, target, body) {
      if (target.kind !== 'device') return Promise.resolve(0);
      return pub.post(`${base}/p?d=${encodeURIComponent(target.device)}`, body);
    },
    publishBatch(pub, items) {
      const list = items.map(
        (it) => `{"d":"${it.target.kind === 'device' ? it.target.device : ''}","b":${it.body}}`,
      );
      return pub.post(`${base}/pb`, `{"items":[${list.join(',')}]}`);
    },
    info: {
      processes: `${count} push nodes, 1 API, 1 redis-server (${append ? 'AOF everysec' : 'no AOF'})`,
      append: append ? 'INCR + XADD + PUBLISH in one script per notification' : 'none: one PUBLISH',
      server:
        'bench/src/peers/floor-api.ts + floor-node.ts: node:http and ws, no framework, one PUBLISH per notification',
    },
    logs: [],
    redisUrl: r.url,
    stop,
  };
}
