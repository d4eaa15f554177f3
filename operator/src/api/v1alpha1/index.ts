export * from './types.ts';
export { withDefaults, type DefaultedSpec } from './defaults.ts';
export { parseDuration } from './duration.ts';
export { mailClusterSchema, specSchema, statusSchema } from './schema.ts';
