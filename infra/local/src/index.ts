export {
  type ApiOptions,
  type AppHandle,
  type AppKind,
  appScript,
  type NodeOptions,
  type StartAppOptions,
  startApi,
  startApp,
  startNode,
  startWorker,
  type WorkerOptions,
} from './apps.js';
export type { Balancer, BalancerKind, Upstream } from './balancer.js';
export { findExecutable, INSTALL_HINT, installCommand } from './bins.js';
export { ENSURE_DEPS, ensureSystemDeps, type SystemDep } from './deps.js';
export {
  HAPROXY_MISSING,
  HAPROXY_TEMPLATE,
  type HaproxyConfOptions,
  type HaproxyHandle,
  type HaproxyInfo,
  type HaproxyProcs,
  type HaproxyServerState,
  haproxyCommand,
  haproxyInfo,
  haproxyServerIds,
  renderHaproxyConf,
  type StartHaproxyOptions,
  startHaproxy,
} from './haproxy.js';
export {
  type AcquireResult,
  acquireLaunchLock,
  LaunchLock,
  type LockInfo,
  lockFile,
  refusalMessage,
} from './lock.js';
export {
  NGINX_MISSING,
  NGINX_TEMPLATE,
  type NginxConfOptions,
  type NginxHandle,
  type NginxInfo,
  nginxInfo,
  renderNginxConf,
  renderTemplate,
  type StartNginxOptions,
  startNginx,
} from './nginx.js';
export { heraldHome, repoRoot } from './paths.js';
export { freePort, isPortFree, preferredPort } from './ports.js';
export * from './probe.js';
export {
  killAllManagedProcesses,
  liveProcesses,
  ManagedProcess,
  type ManagedProcessOptions,
  tailFile,
} from './proc.js';
export { metric, parseMetrics, type Sample } from './prom.js';
export {
  REDIS_MISSING,
  type RedisHandle,
  redisPing,
  redisServerBin,
  type StartRedisOptions,
  startRedis,
} from './redis.js';
export {
  type ClusterNodeRole,
  nodeRoles,
  REDIS_MODES,
  type RedisClusterHandle,
  type RedisSentinelHandle,
  redisCli,
  startRedisCluster,
  startRedisSentinel,
  type TestRedis,
} from './redis-modes.js';
export { http, type SseEvent, SseReader } from './sse.js';
export { type Stack, type StackOptions, startStack } from './stack.js';
export {
  canConnect,
  httpOk,
  PROXY_V2_LOCAL,
  type RawHttpOptions,
  rawHttpGet,
  type WaitOptions,
  waitFor,
  waitForHttp,
  waitForTcp,
} from './wait.js';
