import { describe, expect, it } from 'vitest';
import { isRedisOutage } from '../src/redis.js';

/** What the API and the node answer 503 (an outage) rather than 500 (a server fault). */
describe('isRedisOutage', () => {
  const named = (name: string, message: string) => Object.assign(new Error(message), { name });
  /** A Redis error reply, as ioredis (redis-errors) names it. */
  const reply = (message: string) => named('ReplyError', message);

  it('is true for what ioredis reports while Redis or a Cluster is down or failing over', () => {
    for (const err of [
      new Error('Connection is closed.'),
      new Error('Command timed out'),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      named('MaxRetriesPerRequestError', 'Reached the max retries per request limit'),
      named('AbortError', 'Command aborted due to connection close'),
      named('ClusterAllFailedError', 'Failed to refresh slots cache.'),
      new Error('Too many Cluster redirections. Last error: ReplyError: CLUSTERDOWN The cluster is down'),
      new Error('None of startup nodes is available'),
      reply("READONLY You can't write against a read only replica."),
      reply('CLUSTERDOWN The cluster is down'),
      reply('LOADING Redis is loading the dataset in memory'),
    ])
      expect(isRedisOutage(err), err.message).toBe(true);
  });

  it('is false for a server fault: a wrong command or a script error', () => {
    for (const err of [
      reply('WRONGTYPE Operation against a key holding the wrong kind of value'),
      reply('ERR Error running script: attempt to compare nil with number'),
      new Error('something else'),
      'not an error',
    ])
      expect(isRedisOutage(err)).toBe(false);
  });
});
