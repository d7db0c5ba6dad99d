/** Exit codes: 0 done, 1 the operation failed (HTTP error, unreachable, timeout), 2 bad usage. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** Bad arguments or missing settings: exit 2, with a hint to `--help`. */
export class UsageError extends Error {
  readonly exitCode = EXIT_USAGE;
}

/** The operation failed: exit 1 with the message. */
export class CliError extends Error {
  readonly exitCode: number = EXIT_FAILED;
}

/** An error answer of the API: `{"code": "HERALD_...", "message": "..."}` and its status. */
export class HttpError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(`${code}: ${detail} (HTTP ${status})`);
  }
}
