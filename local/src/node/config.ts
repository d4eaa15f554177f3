// What the real node's programs are told: pure functions from the node's layout to config
// file texts and command lines (containerd, CNI, kubelet, kube-proxy, kube-scheduler, the
// API server's extra flags). The machine facts behind the choices are in DESIGN.md, "Local
// mode": cgroups v1 with cgroupfs, no CAP_SYS_RESOURCE (oomScoreAdj 0, containerd's
// restrict_oom_score_adj), no registry (a local pause image pinned as the sandbox image).
import { createHash } from 'node:crypto';
import { join } from 'node:path';

/** The node's network: everything here exists only inside the namespace local mode creates. */
export interface NodeNetwork {
  /** `ip netns` name. */
  netns: string;
  /** The bridge pods attach to; it carries the node's address. */
  bridge: string;
  /** The node's InternalIP (on the bridge) and the pods' gateway. */
  nodeIP: string;
  /** Pods' subnet (the bridge's prefix). */
  podCIDR: string;
  /** First and last pod address host-local hands out (below the first are the node's own). */
  podRangeStart: string;
  podRangeEnd: string;
  /** ClusterIPs: kube-proxy's iptables rules inside the namespace give them meaning. */
  serviceCIDR: string;
  /** Extra addresses on the bridge for test peers inside the namespace (a sink, a DNS server). */
  spareAddresses: string[];
  /**
   * A small network beside the node, for a client that is not on the node: its own namespace
   * joined to the node's by a veth pair (KubeletNode.outsideClient). The node's side is the
   * first address, the client the second; pods have a route to it through the node.
   */
  outsideCIDR: string;
}

export const DEFAULT_NETWORK: Omit<NodeNetwork, 'netns'> = {
  bridge: 'mc0',
  nodeIP: '10.244.0.1',
  podCIDR: '10.244.0.0/16',
  podRangeStart: '10.244.1.1',
  podRangeEnd: '10.244.255.254',
  serviceCIDR: '10.0.0.0/16',
  spareAddresses: ['10.244.0.2', '10.244.0.3', '10.244.0.4'],
  outsideCIDR: '10.245.0.0/24',
};

/**
 * The bridge's own MAC address, fixed (locally administered, from the node's IPv4 address).
 * A Linux bridge without one takes the lowest MAC of its ports and changes it as pods come
 * and go; the pods' ARP entries for the node's addresses (their gateway, the peers on the
 * bridge) then point at a MAC nobody answers, and their packets are dropped until the entry
 * goes stale: intermittent DNS timeouts after a scale event.
 */
export function bridgeMac(nodeIP: string): string {
  return ['02', '00', ...nodeIP.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}

/** A short, stable id for a state directory: names of the namespace, cgroup and run dir. */
export function nodeId(dir: string): string {
  return createHash('sha256').update(dir).digest('hex').slice(0, 8);
}

/** Where the node keeps things. Sockets live under /run (short paths: sun_path is 108 bytes). */
export interface NodeLayout {
  /** <local dir>/node */
  dir: string;
  /** /run/mailcluster-node/<id> */
  runDir: string;
  containerdRoot: string;
  containerdState: string;
  containerdSocket: string;
  containerdConfig: string;
  cniConfDir: string;
  cniDataDir: string;
  kubeletRoot: string;
  kubeletConfig: string;
  kubeProxyConfig: string;
  resolvConf: string;
  /** Host-side Unix sockets of the gateway. */
  connectSocket: string;
  apiSocket: string;
  egressSelectorConfig: string;
  logs: string;
  volumes: string;
  /** kubelet's cgroup root: one directory per hierarchy, removed on stop. */
  cgroupRoot: string;
}

export function nodeLayout(localDir: string): NodeLayout {
  const dir = join(localDir, 'node');
  const id = nodeId(localDir);
  const runDir = `/run/mailcluster-node/${id}`;
  return {
    dir,
    runDir,
    containerdRoot: join(dir, 'containerd', 'root'),
    containerdState: join(runDir, 'containerd'),
    containerdSocket: join(runDir, 'containerd.sock'),
    containerdConfig: join(dir, 'containerd', 'config.toml'),
    cniConfDir: join(dir, 'cni', 'net.d'),
    cniDataDir: join(dir, 'cni', 'ipam'),
    kubeletRoot: join(dir, 'kubelet'),
    kubeletConfig: join(dir, 'kubelet-config.yaml'),
    kubeProxyConfig: join(dir, 'kube-proxy-config.yaml'),
    resolvConf: join(dir, 'resolv.conf'),
    connectSocket: join(runDir, 'connect.sock'),
    apiSocket: join(runDir, 'api.sock'),
    egressSelectorConfig: join(dir, 'egress-selector.yaml'),
    logs: join(dir, 'logs'),
    volumes: join(dir, 'volumes'),
    cgroupRoot: `/mailcluster-${id}`,
  };
}

const toml = (s: string) => JSON.stringify(s);

export function containerdConfig(l: NodeLayout, o: { shimDir: string; sandboxImage: string; runc: string }): string {
  return `# written by local mode (local/src/node/config.ts); containerd ${'2.x'} config format v3
version = 3
root = ${toml(l.containerdRoot)}
state = ${toml(l.containerdState)}
# no CAP_SYS_RESOURCE here: never try to lower our own OOM score
oom_score = 0
disabled_plugins = ["io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs"]

[grpc]
  address = ${toml(l.containerdSocket)}

[ttrpc]
  address = ${toml(`${l.containerdSocket}.ttrpc`)}

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  # no registry is reachable: images are imported (ctr images import), never pulled
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = ${toml(o.sandboxImage)}

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # pods may not ask for an OOM score below ours (we cannot raise privileges to set it)
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = ${toml(join(o.shimDir, 'containerd-shim-runc-v2'))}
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = ${toml(o.runc)}
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = ${toml(l.cniConfDir)}
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`;
}

/** Debian's CNI plugins: a bridge (the node's own, made beforehand), host-local addresses, portmap. */
export function cniConfList(n: NodeNetwork, l: NodeLayout): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'mailcluster',
    plugins: [
      {
        type: 'bridge',
        bridge: n.bridge,
        isGateway: true,
        // no default route: pods reach the pod subnet and the ClusterIPs, nothing off the machine
        isDefaultGateway: false,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          dataDir: l.cniDataDir,
          ranges: [[{ subnet: n.podCIDR, rangeStart: n.podRangeStart, rangeEnd: n.podRangeEnd, gateway: n.nodeIP }]],
          routes: [{ dst: n.serviceCIDR }, { dst: n.outsideCIDR }],
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }, null, 2) + '\n';
}

export interface KubeletFiles {
  caFile: string;
  servingCert: string;
  servingKey: string;
}

export function kubeletConfig(n: NodeNetwork, l: NodeLayout, f: KubeletFiles): string {
  const config = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: n.nodeIP,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    // no anonymous kubelet API: the API server presents a client certificate from the PKI
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: f.caFile } },
    authorization: { mode: 'Webhook' },
    tlsCertFile: f.servingCert,
    tlsPrivateKeyFile: f.servingKey,
    containerRuntimeEndpoint: `unix://${l.containerdSocket}`,
    // cgroups v1 on this machine, no systemd
    cgroupDriver: 'cgroupfs',
    failCgroupV1: false,
    cgroupRoot: l.cgroupRoot,
    // no CAP_SYS_RESOURCE: the kubelet must not try to lower its own OOM score
    oomScoreAdj: 0,
    failSwapOn: false,
    // ConfigMap volumes follow a change within seconds rather than a minute (DESIGN: 1.4-15 s)
    syncFrequency: '10s',
    resolvConf: l.resolvConf,
    clusterDomain: 'cluster.local',
    // A busy shared disk must not evict mail nodes or collect the imported images. Absolute
    // floors, not percentages: this machine's disk reports 252 GB and a free space shared with
    // others that has been seen as low as 287 MB, so even 1 % (2.5 GB) could taint the node.
    evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '64Mi', 'imagefs.available': '64Mi', 'nodefs.inodesFree': '1000' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    serializeImagePulls: false,
    registerNode: true,
    rotateCertificates: false,
    serverTLSBootstrap: false,
    enableControllerAttachDetach: true,
    maxPods: 110,
    podPidsLimit: -1,
    shutdownGracePeriod: '0s',
    logging: { format: 'text' },
  };
  return JSON.stringify(config, null, 2) + '\n';
}

export function kubeletArgs(n: NodeNetwork, l: NodeLayout, o: { kubeconfig: string; nodeName: string }): string[] {
  return [
    `--config=${l.kubeletConfig}`,
    `--kubeconfig=${o.kubeconfig}`,
    `--root-dir=${l.kubeletRoot}`,
    `--cert-dir=${join(l.kubeletRoot, 'pki')}`,
    `--node-ip=${n.nodeIP}`,
    `--hostname-override=${o.nodeName}`,
    '--node-labels=mailcluster.io/local=true',
    '--v=1',
  ];
}

export function kubeProxyConfig(n: NodeNetwork, o: { kubeconfig: string; nodeName: string }): string {
  return JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    mode: 'iptables',
    clientConnection: { kubeconfig: o.kubeconfig },
    hostnameOverride: o.nodeName,
    bindAddress: n.nodeIP,
    healthzBindAddress: '127.0.0.1:10256',
    metricsBindAddress: '127.0.0.1:10249',
    clusterCIDR: n.podCIDR,
    nodePortAddresses: [`${n.nodeIP}/32`],
    // conntrack limits are machine-wide sysctls: leave them as they are
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    iptables: { syncPeriod: '10s', minSyncPeriod: '1s', masqueradeAll: false },
  }, null, 2) + '\n';
}

export function kubeSchedulerArgs(o: { kubeconfig: string; port: number; certDir: string }): string[] {
  return [
    `--kubeconfig=${o.kubeconfig}`,
    `--authentication-kubeconfig=${o.kubeconfig}`,
    `--authorization-kubeconfig=${o.kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${o.port}`,
    `--cert-dir=${o.certDir}`,
    '--leader-elect=false',
    '--profiling=false',
  ];
}

/**
 * kube-apiserver's egress to the cluster (kubelets, pods, services) goes through the
 * gateway's CONNECT socket: the node's addresses exist only inside its namespace.
 */
export function egressSelectorConfig(connectSocket: string): string {
  return JSON.stringify({
    apiVersion: 'apiserver.k8s.io/v1beta1',
    kind: 'EgressSelectorConfiguration',
    egressSelections: [{ name: 'cluster', connection: { proxyProtocol: 'HTTPConnect', transport: { uds: { udsName: connectSocket } } } }],
  }, null, 2) + '\n';
}

export function apiServerExtraArgs(o: { egressSelectorConfig: string; kubeletClientCert: string; kubeletClientKey: string; caFile: string }): string[] {
  return [
    `--egress-selector-config-file=${o.egressSelectorConfig}`,
    '--kubelet-preferred-address-types=InternalIP',
    `--kubelet-client-certificate=${o.kubeletClientCert}`,
    `--kubelet-client-key=${o.kubeletClientKey}`,
    `--kubelet-certificate-authority=${o.caFile}`,
  ];
}

/** The `kubernetes` Service's endpoint: the gateway's API listener on the node's address. */
export function kubernetesEndpointSlice(n: NodeNetwork, port: number): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: 'kubernetes',
      namespace: 'default',
      labels: { 'kubernetes.io/service-name': 'kubernetes', 'endpointslice.kubernetes.io/managed-by': 'mailcluster-local-node' },
    },
    addressType: 'IPv4',
    endpoints: [{ addresses: [n.nodeIP], conditions: { ready: true } }],
    ports: [{ name: 'https', port, protocol: 'TCP' }],
  };
}
