import { expect } from 'vitest';
import { ConfigError } from '../src/index.js';

/** The problems of the ConfigError `fn` throws (fails the test when it throws something else or nothing). */
export function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}
