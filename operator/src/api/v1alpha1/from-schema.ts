// Derives TypeScript types from the OpenAPI schema data in schema.ts, so the CRD and
// the types the operator compiles against have one source of truth.

type Simplify<T> = { [K in keyof T]: T[K] } & {};

type RequiredKeys<S> = S extends { readonly required: readonly (infer R)[] } ? R : never;

type ObjectFrom<P, R> = Simplify<
  { -readonly [K in keyof P as K extends R ? K : never]: FromSchema<P[K]> } &
  { -readonly [K in keyof P as K extends R ? never : K]?: FromSchema<P[K]> }
>;

/** The value type a (structural, Kubernetes-flavoured) OpenAPI v3 schema admits. */
export type FromSchema<S> =
  S extends { readonly 'x-kubernetes-int-or-string': true } ? number | string :
  S extends { readonly enum: readonly (infer E)[] } ? E :
  S extends { readonly type: 'string' } ? string :
  S extends { readonly type: 'integer' | 'number' } ? number :
  S extends { readonly type: 'boolean' } ? boolean :
  S extends { readonly type: 'array'; readonly items: infer I } ? FromSchema<I>[] :
  S extends { readonly type: 'object'; readonly properties: infer P } ? ObjectFrom<P, RequiredKeys<S>> :
  S extends { readonly type: 'object'; readonly additionalProperties: infer A } ? Record<string, FromSchema<A>> :
  S extends { readonly type: 'object' } ? Record<string, unknown> :
  unknown;
