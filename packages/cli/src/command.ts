/** One `herald <name>` command. `run` returns the exit code or throws (UsageError: 2, CliError: 1). */
export interface Command {
  name: string;
  summary: string;
  help: string;
  run(args: string[]): Promise<number>;
}
