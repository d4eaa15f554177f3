// Pod <name>-<i>: one mail node (layout per DECISIONS.md). The template hash annotation covers
// the pod spec only — never the ConfigMap's content — so a change of peers or addresses
// rewrites the config (the node reloads) without restarting anything.
import type { DefaultedSpec } from '../api/v1alpha1/defaults.ts';
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { shortHash } from './hash.ts';
import { ANNOTATION_TEMPLATE_HASH, podLabels, podSelector, type Role } from './labels.ts';
import {
  ADMIN_PORT, CONFIG_DIR, configMapName, MAILQ_PORT, mailqSecretName, nodeAccessName, peersServiceName, peerTlsSecretName, podName, SMTP_PORT, SPOOL_DIR, spoolClaimName, TLS_DIR,
} from './names.ts';
import { childMeta } from './owner.ts';

/** The uid/gid the node runs as: the image's USER (node-image/Dockerfile), outside the range
 * of the host's own users so that a container user never maps to one of them. */
export const NODE_UID = 10001;

function defaultAffinity(cluster: string) {
  // Preferred, not required: a one-host cluster (or local mode) must still schedule.
  return {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [{
        weight: 100,
        podAffinityTerm: { labelSelector: { matchLabels: podSelector(cluster) }, topologyKey: 'kubernetes.io/hostname' },
      }],
    },
  };
}

/** Seconds between a failed liveness probe's SIGTERM and SIGKILL (the probe-level grace period). */
export const LIVENESS_KILL_GRACE_SECONDS = 10;

export function buildPodSpec(cluster: MailCluster, spec: DefaultedSpec, index: number) {
  const name = cluster.metadata.name;
  const volumeMounts = [
    { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
    { name: 'spool', mountPath: SPOOL_DIR },
    { name: 'tmp', mountPath: '/tmp' },
    ...(spec.tls ? [{ name: 'tls', mountPath: TLS_DIR, readOnly: true }] : []),
  ];
  const volumes = [
    {
      name: 'config',
      projected: {
        sources: [
          { configMap: { name: configMapName(name, index), items: [{ key: 'smtpserver.conf', path: 'smtpserver.conf' }, { key: 'zmailer.conf', path: 'zmailer.conf' }] } },
          {
            secret: {
              name: mailqSecretName(name),
              items: [{ key: 'scheduler.auth', path: 'scheduler.auth' }, { key: 'etrn-password', path: 'etrn-password' }, { key: 'admin-token.sha256', path: 'admin-token.sha256' }],
            },
          },
          // Sub-paths of the one projected volume rather than nested mounts (a mount point
          // inside a read-only volume is not portable across runtimes).
          { secret: { name: peerTlsSecretName(name), items: [{ key: 'ca.crt', path: 'peer-tls/ca.crt' }, { key: 'tls.crt', path: 'peer-tls/tls.crt' }, { key: 'tls.key', path: 'peer-tls/tls.key' }] } },
          ...(spec.smtpAuth ? [{ secret: { name: spec.smtpAuth.secretName, items: [{ key: 'users', path: 'smtp-auth/users' }] } }] : []),
        ],
      },
    },
    { name: 'spool', persistentVolumeClaim: { claimName: spoolClaimName(name, index) } },
    { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
    ...(spec.tls ? [{ name: 'tls', secret: { secretName: spec.tls.secretName, items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }] } }] : []),
  ];
  return {
    hostname: podName(name, index),
    subdomain: peersServiceName(name),
    restartPolicy: 'Always',
    // Long enough for the node to finish in-flight SMTP transactions after SIGTERM.
    terminationGracePeriodSeconds: 60,
    enableServiceLinks: false,
    // The node watches its own ConfigMap through the API server (node-access.ts: that one
    // object, read-only), so a new peer list applies at once rather than at the kubelet's
    // next volume refresh.
    serviceAccountName: nodeAccessName(name, index),
    automountServiceAccountToken: true,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: NODE_UID,
      runAsGroup: NODE_UID,
      fsGroup: NODE_UID,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    containers: [{
      name: 'node',
      image: spec.image,
      args: ['--config-dir', CONFIG_DIR],
      env: [{ name: 'MAILCLUSTER_CONFIGMAP', value: configMapName(name, index) }],
      ports: [
        { name: 'smtp', containerPort: SMTP_PORT, protocol: 'TCP' },
        { name: 'mailq', containerPort: MAILQ_PORT, protocol: 'TCP' },
        { name: 'admin', containerPort: ADMIN_PORT, protocol: 'TCP' },
      ],
      // Tolerant of a slow answer (a busy node is still serving); a drain is made explicit by the role label.
      readinessProbe: { httpGet: { path: '/readyz', port: ADMIN_PORT }, periodSeconds: 2, timeoutSeconds: 5, failureThreshold: 3 },
      // A node that fails /healthz three times is wedged: it cannot use the pod's 60 s to drain,
      // and what it acknowledged is in its spool (kept across the restart). The probe's own
      // grace period ends it 50 s sooner than the pod's would (Kubernetes >= 1.25).
      livenessProbe: {
        httpGet: { path: '/healthz', port: ADMIN_PORT }, initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3,
        terminationGracePeriodSeconds: LIVENESS_KILL_GRACE_SECONDS,
      },
      ...(spec.resources ? { resources: spec.resources } : {}),
      securityContext: {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      },
      volumeMounts,
    }],
    volumes,
    ...(spec.nodeSelector ? { nodeSelector: spec.nodeSelector } : {}),
    ...(spec.tolerations ? { tolerations: spec.tolerations } : {}),
    affinity: spec.affinity ?? defaultAffinity(name),
  };
}

/** The template hash a pod at `index` should carry. */
export function podTemplateHash(cluster: MailCluster, spec: DefaultedSpec, index: number): string {
  return shortHash(buildPodSpec(cluster, spec, index));
}

export function buildPod(cluster: MailCluster, spec: DefaultedSpec, index: number, role: Role = 'serving') {
  const podSpec = buildPodSpec(cluster, spec, index);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: childMeta(cluster, podName(cluster.metadata.name, index), podLabels(cluster.metadata.name, index, role), {
      [ANNOTATION_TEMPLATE_HASH]: shortHash(podSpec),
    }),
    spec: podSpec,
  };
}
