// Applies the schema's defaults the way the API server does (structural defaulting), so the
// planner sees the same spec whether or not the object went through the API server.
import { specSchema } from './schema.ts';
import type { MailClusterSpec } from './types.ts';

interface SchemaNode {
  readonly type?: string;
  readonly default?: unknown;
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly items?: SchemaNode;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function applySchemaDefaults(schema: SchemaNode, value: unknown): unknown {
  if (schema.type === 'object' && schema.properties && isPlainObject(value)) {
    const out: Record<string, unknown> = { ...value };
    for (const [key, child] of Object.entries(schema.properties)) {
      if (out[key] === undefined && child.default !== undefined) out[key] = structuredClone(child.default);
      if (out[key] !== undefined) out[key] = applySchemaDefaults(child, out[key]);
    }
    return out;
  }
  if (schema.type === 'array' && schema.items && Array.isArray(value)) {
    return value.map((item) => applySchemaDefaults(schema.items as SchemaNode, item));
  }
  return value;
}

/** The spec with every schema default filled in (service, storage and delivery always present). */
export type DefaultedSpec = MailClusterSpec & {
  replicas: number;
  image: string;
  service: NonNullable<MailClusterSpec['service']> & { type: string; port: number; proxyProtocol: boolean };
  storage: NonNullable<MailClusterSpec['storage']> & { size: string; retentionPolicy: { whenDeleted: 'Retain' | 'Delete' } };
  delivery: NonNullable<MailClusterSpec['delivery']>;
  maxMessageSize: number;
  drainTimeout: string;
};

export function withDefaults(spec: MailClusterSpec): DefaultedSpec {
  return applySchemaDefaults(specSchema as SchemaNode, spec ?? {}) as DefaultedSpec;
}
