import type { TObject } from 'typebox';
import { apiSchema, nodeSchema, workerSchema } from './settings.js';

interface Prop {
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  anyOf?: { const?: unknown }[];
}

/** The README's settings table, generated from the schemas so the two cannot drift. */
export function settingsTable(): string {
  const apps: [string, TObject][] = [
    ['api', apiSchema],
    ['worker', workerSchema],
    ['node', nodeSchema],
  ];
  const rows = new Map<string, { apps: string[]; prop: Prop; required: boolean }>();
  for (const [app, schema] of apps) {
    for (const [name, prop] of Object.entries(schema.properties)) {
      const row = rows.get(name);
      // HERALD_PORT differs per app: list each default.
      if (row) {
        row.apps.push(app);
        if (name === 'HERALD_PORT')
          row.prop = { ...row.prop, default: `${row.prop.default}, ${app} ${(prop as Prop).default}` };
      } else {
        const p = prop as Prop;
        rows.set(name, {
          apps: [app],
          prop: name === 'HERALD_PORT' ? { ...p, default: `${app} ${p.default}` } : p,
          required: p.default === undefined,
        });
      }
    }
  }
  const lines = ['| variable | apps | default | allowed | what |', '| --- | --- | --- | --- | --- |'];
  for (const [name, { apps: a, prop, required }] of rows) {
    const def = required ? '(required)' : prop.default === '' ? '(empty)' : `\`${String(prop.default)}\``;
    const allowed = prop.anyOf
      ? prop.anyOf.map((x) => String(x.const)).join(', ')
      : prop.minimum !== undefined
        ? `${prop.minimum}..${prop.maximum}`
        : '';
    lines.push(`| \`${name}\` | ${a.join(', ')} | ${def} | ${allowed} | ${prop.description ?? ''} |`);
  }
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href)
  process.stdout.write(settingsTable());
