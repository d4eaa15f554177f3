// Command lines of the three control-plane programs: pure functions of the layout and ports.
// The API server flags follow what controller-runtime's envtest gives a test API server
// (secure port on loopback, service-account issuer and keys, etcd, RBAC), plus Node
// authorization, the front-proxy (aggregation) settings and the ServiceAccount admission
// that envtest turns off because it runs no controller-manager.
import type { ControlPlanePki } from './pki.ts';

/** The in-cluster issuer: fixed, so tokens stay valid when the API server's port changes. */
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export interface EtcdFlagsInput {
  dataDir: string;
  clientPort: number;
  peerPort: number;
  unsafeNoFsync: boolean;
}

export function etcdArgs(i: EtcdFlagsInput): string[] {
  const client = `http://127.0.0.1:${i.clientPort}`;
  const peer = `http://127.0.0.1:${i.peerPort}`;
  const args = [
    '--name=local',
    `--data-dir=${i.dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=local=${peer}`,
    '--initial-cluster-state=new',
    '--log-level=warn',
  ];
  if (i.unsafeNoFsync) args.push('--unsafe-no-fsync');
  return args;
}

export interface ApiServerFlagsInput {
  pki: ControlPlanePki;
  port: number;
  etcdUrl: string;
  serviceClusterIPRange: string;
  certDir: string;
}

export function apiServerArgs(i: ApiServerFlagsInput): string[] {
  const { pki } = i;
  return [
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${i.port}`,
    `--cert-dir=${i.certDir}`,
    `--tls-cert-file=${pki.apiserverCert}`,
    `--tls-private-key-file=${pki.apiserverKey}`,
    `--client-ca-file=${pki.caCert}`,
    `--etcd-servers=${i.etcdUrl}`,
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    '--allow-privileged=true',
    `--service-cluster-ip-range=${i.serviceClusterIPRange}`,
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    `--service-account-key-file=${pki.serviceAccountPub}`,
    `--service-account-signing-key-file=${pki.serviceAccountKey}`,
    `--requestheader-client-ca-file=${pki.frontProxyCaCert}`,
    '--requestheader-allowed-names=front-proxy-client',
    '--requestheader-username-headers=X-Remote-User',
    '--requestheader-group-headers=X-Remote-Group',
    '--requestheader-extra-headers-prefix=X-Remote-Extra-',
    `--proxy-client-cert-file=${pki.frontProxyClientCert}`,
    `--proxy-client-key-file=${pki.frontProxyClientKey}`,
    // The `kubernetes` Service cannot have 127.0.0.1 as an endpoint (loopback is invalid
    // there): local mode's node writes its EndpointSlice itself, with the gateway's address
    // inside the node's namespace (local/src/node/config.ts, kubernetesEndpointSlice).
    '--endpoint-reconciler-type=none',
    '--profiling=false',
  ];
}

export interface ControllerManagerFlagsInput {
  pki: ControlPlanePki;
  kubeconfig: string;
  port: number;
  certDir: string;
  serviceClusterIPRange: string;
}

export function controllerManagerArgs(i: ControllerManagerFlagsInput): string[] {
  const { pki } = i;
  return [
    `--kubeconfig=${i.kubeconfig}`,
    `--authentication-kubeconfig=${i.kubeconfig}`,
    `--authorization-kubeconfig=${i.kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${i.port}`,
    `--cert-dir=${i.certDir}`,
    // One controller-manager per control plane: nothing to elect, and no Lease to wait for.
    '--leader-elect=false',
    // The default controllers: garbage collector, EndpointSlices, namespace deletion,
    // service accounts and tokens, PV binder, Deployments/ReplicaSets, ...
    '--controllers=*',
    '--use-service-account-credentials=true',
    `--service-account-private-key-file=${pki.serviceAccountKey}`,
    `--root-ca-file=${pki.caCert}`,
    `--cluster-signing-cert-file=${pki.caCert}`,
    `--cluster-signing-key-file=${pki.caKey}`,
    `--service-cluster-ip-range=${i.serviceClusterIPRange}`,
    '--profiling=false',
  ];
}

/** The first address of the service range: the `kubernetes` Service's ClusterIP. */
export function firstServiceIP(cidr: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) throw new Error(`serviceClusterIPRange must be an IPv4 CIDR such as 10.0.0.0/16, got ${JSON.stringify(cidr)}`);
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits < 8 || bits > 30) throw new Error(`bad serviceClusterIPRange ${cidr} (prefix /8 to /30)`);
  const value = ((octets[0] << 24) >>> 0) + (octets[1] << 16) + (octets[2] << 8) + octets[3];
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const first = ((value & mask) >>> 0) + 1;
  return [first >>> 24, (first >>> 16) & 255, (first >>> 8) & 255, first & 255].join('.');
}
