// Names of a MailCluster's children, exactly as DESIGN.md ("Kubernetes contract") lists them.

export const podName = (cluster: string, index: number): string => `${cluster}-${index}`;
export const configMapName = (cluster: string, index: number): string => `${cluster}-${index}-config`;
/** ServiceAccount, Role and RoleBinding of node <i>: read its own ConfigMap (node-access.ts). */
export const nodeAccessName = (cluster: string, index: number): string => `${cluster}-${index}-node`;
export const spoolClaimName = (cluster: string, index: number): string => `${cluster}-${index}-spool`;
export const mailqSecretName = (cluster: string): string => `${cluster}-mailq`;
export const serviceName = (cluster: string): string => cluster;
export const peersServiceName = (cluster: string): string => `${cluster}-peers`;
export const pdbName = (cluster: string): string => cluster;
export const networkPolicyName = (cluster: string): string => cluster;
/** The admin token in plain text (key `token`): for people and the kubectl plugin, never mounted. */
export const adminSecretName = (cluster: string): string => `${cluster}-admin`;
/** The peers' CA, certificate and key (BRIEF contract 4), created once, never read back. */
export const peerTlsSecretName = (cluster: string): string => `${cluster}-peer-tls`;
/** The name peers verify each other by (peer-tls-name): the headless Service's. */
export const peerTlsName = (cluster: string, namespace: string): string => `${peersServiceName(cluster)}.${namespace}.svc`;

/** The DNS name a pod gets through the headless peers Service (hostname + subdomain). */
export const podDnsName = (cluster: string, namespace: string, index: number, clusterDomain = 'cluster.local'): string =>
  `${podName(cluster, index)}.${peersServiceName(cluster)}.${namespace}.svc.${clusterDomain}`;

// Ports the node listens on (non-root) and the in-pod paths, per DECISIONS.md.
export const SMTP_PORT = 2525;
export const MAILQ_PORT = 1174;
export const ADMIN_PORT = 8025;
export const CONFIG_DIR = '/etc/mailcluster';
export const TLS_DIR = '/etc/mailcluster-tls';
export const SPOOL_DIR = '/var/spool/mailcluster';
export const ETRN_USER = 'etrn';
/** Files inside the config dir that come from Secrets (one projected volume, no nested mounts). */
export const ADMIN_TOKEN_SHA256_FILE = `${CONFIG_DIR}/admin-token.sha256`;
export const PEER_TLS_DIR = `${CONFIG_DIR}/peer-tls`;
export const SMTP_AUTH_USERS_FILE = `${CONFIG_DIR}/smtp-auth/users`;
