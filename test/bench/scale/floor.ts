// bench:scale --floor: what Kubernetes alone takes to run the same pods, with no operator.
// For each MailCluster the bench itself creates what its pods need to start (per pod the
// ConfigMap, the ServiceAccount and the spool claim; per cluster the two Secrets the config
// volume projects) and then the pods, built by the operator's own buildPod/buildSpoolClaim.
// No Services, Roles, PDBs or status: nothing a pod waits for. The time from the first create
// to every pod Ready is the floor under any operator's cold start on the same machine and
// control plane. Pure: the objects only.
import { withDefaults } from '../../../operator/src/api/v1alpha1/defaults.ts';
import type { MailCluster } from '../../../operator/src/api/v1alpha1/types.ts';
import { nodeLabels } from '../../../operator/src/resources/labels.ts';
import { configMapName, mailqSecretName, peerTlsSecretName } from '../../../operator/src/resources/names.ts';
import { buildNodeServiceAccount } from '../../../operator/src/resources/node-access.ts';
import { buildPod } from '../../../operator/src/resources/pod.ts';
import { buildSpoolClaim } from '../../../operator/src/resources/pvc.ts';

export interface FloorObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; labels?: Record<string, string>; ownerReferences?: unknown[] };
  [field: string]: unknown;
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

/** The operator's own object with no owner: there is no MailCluster object, and the garbage
 * collector would delete a child whose owner does not exist. */
function ownerless(obj: object): FloorObject {
  const o = obj as FloorObject;
  delete o.metadata.ownerReferences;
  return o;
}

/** What one MailCluster's pods need, then the pods: create `needs` first, `pods` after. */
export function floorObjects(namespace: string, name: string, spec: Record<string, unknown>): { needs: FloorObject[]; pods: FloorObject[] } {
  const cluster = { apiVersion: 'mailcluster.io/v1alpha1', kind: 'MailCluster', metadata: { name, namespace, uid: 'bench-floor' }, spec } as unknown as MailCluster;
  const defaulted = withDefaults(cluster.spec);
  const needs: FloorObject[] = [
    {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: mailqSecretName(name), namespace }, type: 'Opaque',
      data: { 'scheduler.auth': b64('etrn floor\n'), 'etrn-password': b64('floor'), 'admin-token.sha256': b64('0'.repeat(64)) },
    },
    {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: peerTlsSecretName(name), namespace }, type: 'Opaque',
      data: { 'ca.crt': b64('floor'), 'tls.crt': b64('floor'), 'tls.key': b64('floor') },
    },
  ];
  const pods: FloorObject[] = [];
  for (let i = 0; i < defaulted.replicas; i++) {
    needs.push(
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: configMapName(name, i), namespace, labels: nodeLabels(name, i) }, data: { 'smtpserver.conf': '# floor\n', 'zmailer.conf': '# floor\n' } },
      ownerless(buildNodeServiceAccount(cluster, i)),
      buildSpoolClaim(cluster, defaulted, i) as FloorObject,
    );
    pods.push(ownerless(buildPod(cluster, defaulted, i)));
  }
  return { needs, pods };
}
