/**
 * The error tables of docs/api.md and docs/protocol.md, rendered from the catalog so the docs
 * cannot drift from what the servers send. A test compares them; to rewrite the docs after
 * changing the catalog: `node packages/protocol/dist/catalog-docs.js --write` (from the repo root).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { CLOSE_CODES, FRAME_ERRORS, HTTP_ERRORS } from './catalog.js';

const cell = (s: string) => s.replace(/\|/g, '\\|');

export function httpErrorsTable(): string {
  const rows = HTTP_ERRORS.map((e) => `| ${e.status} | \`${e.code}\` | ${cell(e.meaning)} |`);
  return ['| status | code | when |', '| --- | --- | --- |', ...rows].join('\n');
}

export function closeCodesTable(): string {
  const rows = CLOSE_CODES.map((c) => `| ${c.code} | ${cell(c.meaning)} | ${cell(c.client)} |`);
  return ['| code | meaning | client should |', '| --- | --- | --- |', ...rows].join('\n');
}

export function frameErrorsTable(): string {
  const rows = FRAME_ERRORS.map((e) => `| \`${e.code}\` | ${cell(e.meaning)} |`);
  return ['| code | when |', '| --- | --- |', ...rows].join('\n');
}

/** Which generated table goes between which markers of which doc (paths from the repo root). */
export const DOC_TABLES = [
  { file: 'docs/api.md', marker: 'errors:http', render: httpErrorsTable },
  { file: 'docs/protocol.md', marker: 'errors:frame', render: frameErrorsTable },
  { file: 'docs/protocol.md', marker: 'errors:close', render: closeCodesTable },
] as const;

/** The text between `<!-- marker:start -->` and `<!-- marker:end -->`, trimmed; undefined if absent. */
export function markedBlock(doc: string, marker: string): string | undefined {
  const m = doc.match(new RegExp(`<!-- ${marker}:start -->([\\s\\S]*?)<!-- ${marker}:end -->`));
  return m?.[1]?.trim();
}

function writeDocs(root: string): void {
  for (const { file, marker, render } of DOC_TABLES) {
    const path = `${root}/${file}`;
    const doc = readFileSync(path, 'utf8');
    if (markedBlock(doc, marker) === undefined) throw new Error(`${file} has no ${marker} markers`);
    const next = doc.replace(
      new RegExp(`(<!-- ${marker}:start -->)[\\s\\S]*?(<!-- ${marker}:end -->)`),
      (_m, a: string, b: string) => `${a}\n${render()}\n${b}`,
    );
    writeFileSync(path, next);
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  if (process.argv.includes('--write')) writeDocs(process.cwd());
  else for (const t of DOC_TABLES) process.stdout.write(`${t.file} ${t.marker}\n${t.render()}\n\n`);
}
