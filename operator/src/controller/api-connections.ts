// Keeps the operator's connections to the API server open across requests. client-node 2.x
// builds a new undici Agent for every request it sends over TLS (KubeConfig.createDispatcher,
// called from applySecurityAuthentication), so every list, write and watch opens its own TCP
// and TLS connection and leaves it idle until undici's keep-alive timeout closes it: with many
// clusters, a handshake per write and a crowd of idle sockets. Here one Agent is kept per set
// of connection settings (server, proxy, CA, client certificate, TLS options) and handed to
// every request; settings that change (a rotated client certificate read from its file) get a
// new Agent, and the old one is closed gracefully (requests in flight finish).
// client-node is pinned to an exact version in package.json for this; the handshake-count
// test (test/unit/operator/api-connections.test.ts) fails if the internal hook changes.
import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';

type Dispatcher = { close?: () => Promise<void> };
type Factory = (cluster: unknown, agentOptions: Record<string, unknown>) => Dispatcher | undefined;

/** A fingerprint of what a dispatcher is built from (TLS material hashed, never kept as text). */
function settingsKey(cluster: unknown, agentOptions: Record<string, unknown>): string {
  const h = createHash('sha256');
  const c = (cluster ?? {}) as Record<string, unknown>;
  h.update(JSON.stringify([c.name, c.server, c.proxyUrl, c.skipTLSVerify, c.tlsServerName]));
  for (const k of Object.keys(agentOptions).sort()) {
    const v = agentOptions[k];
    if (v === undefined) continue;
    h.update(`\0${k}\0`);
    h.update(Buffer.isBuffer(v) ? v : typeof v === 'string' ? v : JSON.stringify(v) ?? '');
  }
  return h.digest('hex');
}

/**
 * Makes `kubeConfig` reuse one dispatcher (connection pool) per connection settings for every
 * request. Returns a function that closes the pools it made. Relies on client-node's
 * `createDispatcher` (private in its types, stable in 2.x); when it is absent nothing changes.
 */
export function reuseApiConnections(kubeConfig: KubeConfig): () => Promise<void> {
  const kc = kubeConfig as unknown as { createDispatcher?: Factory };
  const original = kc.createDispatcher;
  if (typeof original !== 'function') return async () => {};
  let current: { key: string; dispatcher: Dispatcher | undefined } | undefined;
  kc.createDispatcher = (cluster, agentOptions) => {
    const key = settingsKey(cluster, agentOptions);
    if (current?.key === key) return current.dispatcher;
    const previous = current?.dispatcher;
    current = { key, dispatcher: original.call(kubeConfig, cluster, agentOptions) };
    void previous?.close?.().catch(() => undefined);
    return current.dispatcher;
  };
  return async () => {
    kc.createDispatcher = original;
    await current?.dispatcher?.close?.().catch(() => undefined);
    current = undefined;
  };
}
