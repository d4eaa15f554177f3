// The pinned upstream releases of the embedded control plane. They must agree with
// local/go/go.mod (k8s.io/kubernetes) and local/go/etcd/go.mod (go.etcd.io/etcd/server/v3);
// a unit test checks that they do.
export const KUBERNETES_VERSION = 'v1.36.3';
export const ETCD_VERSION = 'v3.6.16';

/** The four programs the control plane needs, by their file names. */
export const CONTROL_PLANE_BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubectl'] as const;
export type ControlPlaneBinaryName = (typeof CONTROL_PLANE_BINARIES)[number];

/** Go packages built from local/go (the Kubernetes module), one binary each. */
export const KUBERNETES_PACKAGES: Record<Exclude<ControlPlaneBinaryName, 'etcd'>, string> = {
  'kube-apiserver': 'k8s.io/kubernetes/cmd/kube-apiserver',
  'kube-controller-manager': 'k8s.io/kubernetes/cmd/kube-controller-manager',
  kubectl: 'k8s.io/kubernetes/cmd/kubectl',
};

/**
 * The linker flags of the Kubernetes binaries: stripped, and stamped with the release the
 * way Kubernetes' own build does (hack/lib/version.sh), so `kubectl version` and the API
 * server's /version report v1.36.3 instead of v0.0.0-master.
 */
export function kubernetesLdflags(version: string = KUBERNETES_VERSION): string {
  const match = /^v(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!match) throw new Error(`not a Kubernetes release version: ${version}`);
  const [, major, minor] = match;
  const flags = ['-s', '-w'];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    flags.push(
      `-X ${pkg}.gitVersion=${version}`,
      `-X ${pkg}.gitMajor=${major}`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitTreeState=clean`,
      // A fixed date keeps the build reproducible (and the cache key meaningful).
      `-X ${pkg}.buildDate=1970-01-01T00:00:00Z`,
    );
  }
  return flags.join(' ');
}

export const ETCD_LDFLAGS = '-s -w';
