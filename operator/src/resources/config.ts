// Renders a node's configuration files (DESIGN.md "Node configuration contract"):
// smtpserver.conf and zmailer.conf. Pure and deterministic: the same inputs give the same
// bytes, so an unchanged cluster never rewrites a ConfigMap.
import { isIP } from 'node:net';
import type { DefaultedSpec } from '../api/v1alpha1/defaults.ts';
import { parseDuration } from '../api/v1alpha1/duration.ts';
import { hostCidr, selfAddressForm, sortAddresses } from './addresses.ts';
import {
  ADMIN_PORT, ADMIN_TOKEN_SHA256_FILE, CONFIG_DIR, ETRN_USER, MAILQ_PORT, PEER_TLS_DIR, peerTlsName, podDnsName, SMTP_AUTH_USERS_FILE, SMTP_PORT, SPOOL_DIR, TLS_DIR,
} from './names.ts';

export interface Peer {
  index: number;
  ip: string;
}

/** What the whole cluster looks like right now: the same for every node. */
export interface ClusterView {
  name: string;
  namespace: string;
  spec: DefaultedSpec;
  /** Serving pods that have an IP: the `etrn-cluster` list. */
  peers: Peer[];
  /**
   * Draining pods that have an IP: out of the peer list at once (no ETRN is relayed to a node
   * that hands its mail away), but still trusted as relay clients (`relay-network <ip>/32`)
   * until they are gone, so that the peers take every message of their hand-off.
   */
  handingOff?: Peer[];
  /** Indices of every node that exists or is about to (for the pod DNS names). */
  indices: number[];
  serviceClusterIP?: string;
  /** The load balancer's ingress IPs/hostnames. */
  loadBalancerAddresses: string[];
}

export const ETRN_PASSWORD_FILE = `${CONFIG_DIR}/etrn-password`;

const seconds = (duration: string): number => Math.max(1, Math.round(parseDuration(duration) / 1000));

/** Peers in index order, as `etrn-cluster` and status.peers name them. */
export function peerList(view: ClusterView): string[] {
  return [...view.peers].sort((a, b) => a.index - b.index || (a.ip < b.ip ? -1 : 1)).map((p) => `${p.ip}/${MAILQ_PORT}`);
}

/** Every address and name of the cluster, as SELFADDRESSES and status.selfAddresses list them. */
export function clusterSelfAddresses(view: ClusterView): string[] {
  const all: string[] = [];
  for (const p of [...view.peers, ...(view.handingOff ?? [])]) all.push(p.ip);
  for (const i of view.indices) all.push(podDnsName(view.name, view.namespace, i));
  if (view.serviceClusterIP && isIP(view.serviceClusterIP)) all.push(view.serviceClusterIP);
  all.push(...view.loadBalancerAddresses);
  all.push(view.spec.hostname);
  all.push(...(view.spec.selfAddresses ?? []));
  return sortAddresses(all).map(selfAddressForm);
}

/** Networks whose connections start with a PROXY header (empty when the Service sends none). */
export function proxyProtocolNetworks(view: ClusterView): string[] {
  if (!view.spec.service.proxyProtocol) return [];
  const explicit = view.spec.service.proxyProtocolNetworks ?? [];
  const networks = explicit.length > 0 ? explicit : view.loadBalancerAddresses.filter((a) => isIP(a)).map(hostCidr);
  return sortAddresses(networks);
}

export function renderSmtpserverConf(view: ClusterView): string {
  const { spec } = view;
  const lines = [
    `# smtpserver.conf of MailCluster ${view.namespace}/${view.name}, written by mailcluster-operator: edits are overwritten.`,
    `PARAM hostname ${spec.hostname}`,
    `PARAM BindSmtp 0.0.0.0 ${SMTP_PORT}`,
    `PARAM BindMailq 0.0.0.0 ${MAILQ_PORT}`,
    `PARAM BindAdmin 0.0.0.0 ${ADMIN_PORT}`,
    `PARAM maxsize ${spec.maxMessageSize}`,
  ];
  if (spec.tls) {
    lines.push(`PARAM tls-cert-file ${TLS_DIR}/tls.crt`, `PARAM tls-key-file ${TLS_DIR}/tls.key`);
  }
  // The admin API's credential (only its SHA-256 is mounted) and the peers' own TLS.
  lines.push(`PARAM admin-token-sha256 @${ADMIN_TOKEN_SHA256_FILE}`);
  lines.push(
    `PARAM peer-tls-ca-file ${PEER_TLS_DIR}/ca.crt`,
    `PARAM peer-tls-cert-file ${PEER_TLS_DIR}/tls.crt`,
    `PARAM peer-tls-key-file ${PEER_TLS_DIR}/tls.key`,
    `PARAM peer-tls-name ${peerTlsName(view.name, view.namespace)}`,
  );
  if (spec.smtpAuth) lines.push(`PARAM smtp-auth-users ${SMTP_AUTH_USERS_FILE}`);
  const d = spec.delivery;
  if (d.dnsServer) lines.push(`PARAM dns-server ${d.dnsServer}`);
  if (d.port !== undefined) lines.push(`PARAM smtp-port ${d.port}`);
  if (d.retryInterval) lines.push(`PARAM retry-interval ${seconds(d.retryInterval)}`);
  if (d.maxRetryInterval) lines.push(`PARAM max-retry-interval ${seconds(d.maxRetryInterval)}`);
  if (d.queueLifetime) lines.push(`PARAM queue-lifetime ${seconds(d.queueLifetime)}`);
  for (const domain of [...new Set((spec.relayDomains ?? []).map((x) => x.toLowerCase()))].sort()) lines.push(`PARAM relay-domain ${domain}`);
  for (const net of sortAddresses(spec.relayNetworks ?? [])) lines.push(`PARAM relay-network ${net}`);
  const handingOff = sortAddresses((view.handingOff ?? []).map((p) => p.ip));
  if (handingOff.length > 0) {
    lines.push('# draining nodes: no longer peers, still trusted to hand their mail over until they are gone');
    for (const ip of handingOff) lines.push(`PARAM relay-network ${hostCidr(ip)}`);
  }
  for (const net of proxyProtocolNetworks(view)) lines.push(`PARAM proxy-protocol ${net}`);
  // Every node lists every node, itself included (ZMailer's sample config does; a node that
  // finds itself flushes locally instead of relaying).
  for (const peer of peerList(view)) lines.push(`PARAM etrn-cluster ${peer} ${ETRN_USER} @${ETRN_PASSWORD_FILE}`);
  return lines.join('\n') + '\n';
}

export function renderZmailerConf(view: ClusterView): string {
  return [
    `# zmailer.conf of MailCluster ${view.namespace}/${view.name}, written by mailcluster-operator: edits are overwritten.`,
    `POSTOFFICE=${SPOOL_DIR}`,
    `SELFADDRESSES=${clusterSelfAddresses(view).join(',')}`,
  ].join('\n') + '\n';
}
