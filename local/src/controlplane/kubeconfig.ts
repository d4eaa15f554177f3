// Kubeconfig files for the local control plane. Certificates are embedded (the *-data
// fields), so a kubeconfig keeps working when copied or read from another directory.
import { readFileSync, writeFileSync } from 'node:fs';
import { dump } from 'js-yaml';

export interface KubeconfigSpec {
  /** Cluster, user and context name. */
  name: string;
  server: string;
  caPem: string;
  clientCertPem: string;
  clientKeyPem: string;
}

export function renderKubeconfig(spec: KubeconfigSpec): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return dump({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: spec.name, cluster: { server: spec.server, 'certificate-authority-data': b64(spec.caPem) } }],
    users: [{ name: spec.name, user: { 'client-certificate-data': b64(spec.clientCertPem), 'client-key-data': b64(spec.clientKeyPem) } }],
    contexts: [{ name: spec.name, context: { cluster: spec.name, user: spec.name } }],
    'current-context': spec.name,
    preferences: {},
  });
}

/** Writes a kubeconfig (mode 0600: it holds a private key) from certificate files. */
export function writeKubeconfig(path: string, args: { name: string; server: string; caFile: string; certFile: string; keyFile: string }): string {
  const text = renderKubeconfig({
    name: args.name,
    server: args.server,
    caPem: readFileSync(args.caFile, 'utf8'),
    clientCertPem: readFileSync(args.certFile, 'utf8'),
    clientKeyPem: readFileSync(args.keyFile, 'utf8'),
  });
  writeFileSync(path, text, { mode: 0o600 });
  return path;
}
