import { describe, expect, it } from 'vitest';
import { apiSchema, ConfigError, list, loadConfig, nodeSchema } from '../src/index.js';

describe('loadConfig', () => {
  it('applies defaults and coerces numbers', () => {
    const c = loadConfig(nodeSchema, {
      REDIS_URL: 'redis://127.0.0.1:1',
      HERALD_TOKEN_SECRET: 's'.repeat(16),
      HERALD_PORT: '9001',
    });
    expect(c.HERALD_PORT).toBe(9001);
    expect(c.HERALD_HEARTBEAT_MS).toBe(25_000);
  });

  it('names every bad variable and what is wrong', () => {
    try {
      loadConfig(apiSchema, { REDIS_URL: 'http://x', HERALD_PORT: 'abc' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const msg = (err as Error).message;
      expect(msg).toContain('REDIS_URL must match pattern');
      expect(msg).toContain('HERALD_PORT must be integer (got "abc")');
    }
  });

  it('splits lists', () => {
    expect(list(' a, b,,c ')).toEqual(['a', 'b', 'c']);
  });
});

describe('settings table', () => {
  it('is in the README as generated from the schemas', async () => {
    const { readFileSync } = await import('node:fs');
    const { settingsTable } = await import('../src/table.js');
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const block = readme.split('<!-- settings:start -->\n')[1]?.split('<!-- settings:end -->')[0];
    // Cells are compared trimmed: the formatter pads the columns.
    const cells = (t: string | undefined) =>
      (t ?? '')
        .trim()
        .split('\n')
        .map((row) => row.split('|').map((c) => c.trim().replace(/^-+$/, '-')));
    expect(cells(block), 'README settings block differs; run: node packages/config/dist/table.js').toEqual(
      cells(settingsTable()),
    );
  });
});
