// ConfigMap <name>-<i>-config: the node's smtpserver.conf and zmailer.conf.
import type { MailCluster } from '../api/v1alpha1/types.ts';
import { type ClusterView, renderSmtpserverConf, renderZmailerConf } from './config.ts';
import { nodeLabels } from './labels.ts';
import { configMapName } from './names.ts';
import { childMeta } from './owner.ts';

export function buildConfigMap(cluster: MailCluster, index: number, view: ClusterView) {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: childMeta(cluster, configMapName(cluster.metadata.name, index), nodeLabels(cluster.metadata.name, index)),
    data: {
      'smtpserver.conf': renderSmtpserverConf(view),
      'zmailer.conf': renderZmailerConf(view),
    },
  };
}
