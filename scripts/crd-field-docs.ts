// The README's table of MailCluster fields, rendered from the one schema the CRD is made of,
// so `kubectl explain` and the README cannot disagree. `npm run docs` rewrites the README
// section between the markers; a unit test fails when it is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { specSchema, statusSchema } from '../operator/src/api/v1alpha1/schema.ts';

export const BEGIN = '<!-- BEGIN generated: MailCluster fields (npm run docs) -->';
export const END = '<!-- END generated: MailCluster fields -->';

interface SchemaNode {
  type?: string;
  description?: string;
  default?: unknown;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  minimum?: number;
  maximum?: number;
  enum?: readonly unknown[];
  'x-kubernetes-validations'?: readonly { rule: string; message?: string }[];
}

function typeOf(node: SchemaNode): string {
  if (node.type === 'array') return `[]${node.items ? typeOf(node.items) : 'any'}`;
  return node.type ?? 'any';
}

function constraints(node: SchemaNode): string {
  const parts: string[] = [];
  if (node.default !== undefined) parts.push(`default \`${JSON.stringify(node.default)}\``);
  if (node.minimum !== undefined || node.maximum !== undefined) parts.push(`${node.minimum ?? ''}..${node.maximum ?? ''}`);
  if (node.enum) parts.push(`one of ${node.enum.map((v) => `\`${String(v)}\``).join(', ')}`);
  return parts.join('; ');
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

/** One row per field, depth first, in schema order. */
export function fieldRows(root: SchemaNode, prefix: string): string[] {
  const rows: string[] = [];
  for (const [name, node] of Object.entries(root.properties ?? {})) {
    const path = `${prefix}.${name}`;
    rows.push(`| \`${path}\` | ${typeOf(node)} | ${cell(constraints(node))} | ${cell(node.description ?? '')} |`);
    const child = node.type === 'array' ? node.items : node;
    if (child?.properties) rows.push(...fieldRows(child, node.type === 'array' ? `${path}[]` : path));
  }
  return rows;
}

export function fieldTable(): string {
  const header = ['| field | type | default / bounds | description |', '| --- | --- | --- | --- |'];
  return [
    ...header,
    ...fieldRows(specSchema as unknown as SchemaNode, 'spec'),
    ...fieldRows(statusSchema as unknown as SchemaNode, 'status'),
  ].join('\n');
}

/** The README with its generated section replaced. */
export function withFieldTable(readme: string): string {
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md lacks the markers ${BEGIN} … ${END}`);
  return `${readme.slice(0, start + BEGIN.length)}\n${fieldTable()}\n${readme.slice(end)}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = new URL('../README.md', import.meta.url);
  writeFileSync(file, withFieldTable(readFileSync(file, 'utf8')));
}
