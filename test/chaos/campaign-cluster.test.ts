import { afterAll, it } from 'vitest';
import { Campaign, expectClean } from '../support/chaos/campaign.js';
import { minutesFromEnv } from '../support/chaos/minutes.js';
import { seedFromEnv } from '../support/chaos/rng.js';

/**
 * The fault campaign on Redis Cluster (3 masters with a replica each: CLUSTER FAILOVER on a replica, and kill -9
 * of a master, promoted after cluster-node-timeout 2 s), with HERALD_REDIS_MIN_REPLICAS=1: every 202 is on a replica, so no
 * failover may lose one. Faults: the cluster failovers and (long run) every kind that does not
 * need the single Redis's fault proxies (process kills, balancer link faults, nginx and HAProxy
 * reloads, device restarts). docs/guarantees.md lists them.
 */
const SEED = seedFromEnv();
const MINUTES = minutesFromEnv();
const LONG = MINUTES > 0;

const campaign = new Campaign({
  seed: SEED,
  mode: 'cluster',
  // Short run (about 1.5 minutes in all): the mode's own failovers (kill -9 of a master twice)
  // and the kill -9 of each process and an HAProxy reload during them; the other kinds run in the
  // standalone campaign, and all of this mode's in a long run.
  faultMs: LONG ? MINUTES * 60_000 : 20_000,
  kinds: LONG
    ? undefined
    : [
        'cluster-failover',
        'cluster-master-kill9',
        'node-kill9',
        'worker-kill9',
        'api-kill9',
        'haproxy-reload',
      ],
  again: LONG ? undefined : ['cluster-master-kill9'],
  maxFaults: LONG ? 100_000 : 12,
  maxPublishesEach: LONG ? 1_000_000 : 2000,
  env: { HERALD_REDIS_MIN_REPLICAS: '1' },
});
afterAll(() => campaign.stop(), 60_000);

it(
  `fault campaign on Redis Cluster (seed ${SEED}${LONG ? `, ${MINUTES} min` : ''}): no failover loses a 202`,
  async () => {
    expectClean(await campaign.run(), SEED, LONG ? 500 : 60);
  },
  (LONG ? MINUTES * 60 + 300 : 240) * 1000,
);
