// The embedded Kubernetes control plane of local mode: its public API.
export { ensureControlPlaneBinaries, defaultCacheRoot, controlPlaneCacheKey, ASSETS_ENV, KUBEBUILDER_ASSETS_ENV } from './build.ts';
export type { ControlPlaneBinaries, EnsureControlPlaneBinariesOptions } from './build.ts';
export { startControlPlane, stopControlPlaneInDir } from './controlplane.ts';
export type { ControlPlane, StartControlPlaneOptions, KubeconfigRequest } from './controlplane.ts';
export { KUBERNETES_VERSION, ETCD_VERSION } from './versions.ts';
