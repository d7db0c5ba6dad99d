/** Reads all of stdin as UTF-8. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Writes one line to stdout; a closed pipe (`herald subscribe | head -1`) ends the process quietly. */
export function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Informational line on stderr, unless quiet. */
export function info(quiet: boolean, line: string): void {
  if (!quiet) process.stderr.write(`${line}\n`);
}

let pipeWatch = false;
/** Exit 0 when stdout's reader goes away, instead of an EPIPE stack trace. */
export function exitOnClosedPipe(onClose: () => void = () => process.exit(0)): void {
  if (pipeWatch) return;
  pipeWatch = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') onClose();
    else throw err;
  });
}
