import type { FastifyBaseLogger } from 'fastify';

type Bindings = Record<string, unknown>;
type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
interface LevelCheck {
  isLevelEnabled?(level: string): boolean;
}

/**
 * A request's logger that makes its pino child only when a line is written. Each request got
 * three children eagerly (Fastify's `reqId`, the client's `ip`, the key's `app` and `key`), and
 * pino serialises a child's bindings when it is made: `child` and `asChindings` were 8% of the
 * API's CPU in the single-device benchmark (BENCHMARKS.md, issue #14), at the default `info`
 * and more so at `warn`, where a successful request writes no line at all. The line written is
 * the same: one child of the app's logger with every binding of the chain, in order.
 */
export class LazyChildLogger {
  private real: FastifyBaseLogger | undefined;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
  ) {}

  /** The child itself, made on first use. */
  private get logger(): FastifyBaseLogger {
    this.real ??= this.parent.child(this.bindings);
    return this.real;
  }

  private enabled(level: Level): boolean {
    if (this.real) return true;
    const check = (this.parent as LevelCheck).isLevelEnabled;
    return typeof check === 'function' ? check.call(this.parent, level) : true;
  }

  get level(): string {
    return this.real ? this.real.level : this.parent.level;
  }

  set level(level: string) {
    this.logger.level = level;
  }

  child(bindings: Bindings, options?: object): FastifyBaseLogger {
    if (this.real || (options && Object.keys(options).length > 0))
      return this.logger.child(bindings, options);
    return lazy(this.parent, { ...this.bindings, ...bindings });
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  silent(): void {}

  private write(level: Level, args: unknown[]): void {
    if (!this.enabled(level)) return;
    (this.logger[level] as (...a: unknown[]) => void)(...args);
  }
}

function lazy(parent: FastifyBaseLogger, bindings: Bindings): FastifyBaseLogger {
  return new LazyChildLogger(parent, bindings) as unknown as FastifyBaseLogger;
}

/**
 * Fastify's `childLoggerFactory`: the request's logger, lazy unless the route sets options of
 * its own (a route `logLevel`), which go to a real child at once.
 */
export function lazyChildLoggerFactory(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: object,
): FastifyBaseLogger {
  if (Object.keys(options).length > 0) return logger.child(bindings, options);
  return lazy(logger, bindings);
}
