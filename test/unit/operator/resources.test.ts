import assert from 'node:assert/strict';
import { withDefaults } from '../../../operator/src/api/v1alpha1/defaults.ts';
import type { ClusterView } from '../../../operator/src/resources/config.ts';
import {
  buildConfigMap, buildMailqSecret, buildPeersService, buildPod, buildPodDisruptionBudget, buildService, buildSpoolClaim,
  podTemplateHash, renderSmtpserverConf, renderZmailerConf,
} from '../../../operator/src/resources/index.ts';
import { mailCluster } from './fixtures.ts';

function view(spec = {}, extra: Partial<ClusterView> = {}): ClusterView {
  return {
    name: 'mc',
    namespace: 'mail',
    spec: withDefaults({ hostname: 'smtp.isp.net', ...spec }),
    peers: [{ index: 1, ip: '127.40.0.11' }, { index: 0, ip: '127.40.0.10' }, { index: 2, ip: '127.40.0.9' }],
    indices: [0, 1, 2],
    serviceClusterIP: '10.96.0.10',
    loadBalancerAddresses: ['127.41.0.1'],
    ...extra,
  };
}

describe('operator resources: node configuration', () => {
  it('renders smtpserver.conf per the contract, peers in index order, itself included', () => {
    const text = renderSmtpserverConf(view({
      relayDomains: ['b.example', 'A.example'],
      relayNetworks: ['192.0.2.0/24', '10.0.0.0/8'],
      maxMessageSize: 2048,
      delivery: { dnsServer: '127.0.0.53:5353', port: 2526, retryInterval: '2m' },
    }));
    assert.deepEqual(text.split('\n').filter((l) => !l.startsWith('#')), [
      'PARAM hostname smtp.isp.net',
      'PARAM BindSmtp 0.0.0.0 2525',
      'PARAM BindMailq 0.0.0.0 1174',
      'PARAM BindAdmin 0.0.0.0 8025',
      'PARAM maxsize 2048',
      'PARAM admin-token-sha256 @/etc/mailcluster/admin-token.sha256',
      'PARAM peer-tls-ca-file /etc/mailcluster/peer-tls/ca.crt',
      'PARAM peer-tls-cert-file /etc/mailcluster/peer-tls/tls.crt',
      'PARAM peer-tls-key-file /etc/mailcluster/peer-tls/tls.key',
      'PARAM peer-tls-name mc-peers.mail.svc',
      'PARAM dns-server 127.0.0.53:5353',
      'PARAM smtp-port 2526',
      'PARAM retry-interval 120',
      'PARAM relay-domain a.example',
      'PARAM relay-domain b.example',
      'PARAM relay-network 10.0.0.0/8',
      'PARAM relay-network 192.0.2.0/24',
      'PARAM etrn-cluster 127.40.0.10/1174 etrn @/etc/mailcluster/etrn-password',
      'PARAM etrn-cluster 127.40.0.11/1174 etrn @/etc/mailcluster/etrn-password',
      'PARAM etrn-cluster 127.40.0.9/1174 etrn @/etc/mailcluster/etrn-password',
      '',
    ]);
  });

  it('adds TLS files and proxy-protocol lines when the spec asks for them', () => {
    const text = renderSmtpserverConf(view({ tls: { secretName: 'x' }, service: { proxyProtocol: true } }));
    assert.match(text, /^PARAM tls-cert-file \/etc\/mailcluster-tls\/tls.crt$/m);
    assert.match(text, /^PARAM tls-key-file \/etc\/mailcluster-tls\/tls.key$/m);
    assert.match(text, /^PARAM proxy-protocol 127.41.0.1\/32$/m, 'defaults to the load balancer address');
    const explicit = renderSmtpserverConf(view({ service: { proxyProtocol: true, proxyProtocolNetworks: ['10.0.0.0/8'] } }));
    assert.match(explicit, /^PARAM proxy-protocol 10.0.0.0\/8$/m);
    assert.doesNotMatch(renderSmtpserverConf(view()), /proxy-protocol|PARAM tls-/);
  });

  it('renders zmailer.conf with every address and name of the cluster, sorted', () => {
    const text = renderZmailerConf(view({ selfAddresses: ['mx.isp.net', '2001:db8::1'] }));
    assert.deepEqual(text.split('\n').filter((l) => !l.startsWith('#')), [
      'POSTOFFICE=/var/spool/mailcluster',
      'SELFADDRESSES=10.96.0.10,127.40.0.9,127.40.0.10,127.40.0.11,127.41.0.1,[IPv6:2001:db8::1],' +
        'mc-0.mc-peers.mail.svc.cluster.local,mc-1.mc-peers.mail.svc.cluster.local,mc-2.mc-peers.mail.svc.cluster.local,mx.isp.net,smtp.isp.net',
      '',
    ]);
  });

  it('is byte-identical for the same cluster listed in another order', () => {
    const a = view();
    const b = view({}, { peers: [...a.peers].reverse(), indices: [2, 1, 0] });
    assert.equal(renderSmtpserverConf(a), renderSmtpserverConf(b));
    assert.equal(renderZmailerConf(a), renderZmailerConf(b));
  });

  it('puts both files in ConfigMap <name>-<i>-config', () => {
    const cm = buildConfigMap(mailCluster(), 1, view());
    assert.equal(cm.metadata.name, 'mc-1-config');
    assert.deepEqual(Object.keys(cm.data).sort(), ['smtpserver.conf', 'zmailer.conf']);
    assert.equal(cm.metadata.labels['mailcluster.io/index'], '1');
  });
});

describe('operator resources: children', () => {
  const cluster = mailCluster({ replicas: 3, resources: { limits: { memory: '256Mi' } }, nodeSelector: { disk: 'ssd' }, tolerations: [{ key: 'mail', operator: 'Exists' }] });
  const spec = withDefaults(cluster.spec);

  it('builds pod <name>-<i>: non-root, read-only root, probes, projected config, spool, anti-affinity', () => {
    const pod = buildPod(cluster, spec, 2) as any;
    assert.equal(pod.metadata.name, 'mc-2');
    assert.deepEqual(pod.metadata.labels, {
      'app.kubernetes.io/name': 'mailcluster-node', 'app.kubernetes.io/instance': 'mc', 'app.kubernetes.io/managed-by': 'mailcluster-operator',
      'mailcluster.io/cluster': 'mc', 'mailcluster.io/index': '2', 'mailcluster.io/role': 'serving',
    });
    const c = pod.spec.containers[0];
    assert.equal(c.name, 'node');
    assert.equal(c.image, 'mailcluster/node:0.1.0');
    assert.deepEqual(c.args, ['--config-dir', '/etc/mailcluster']);
    assert.deepEqual(c.ports.map((p: any) => [p.name, p.containerPort]), [['smtp', 2525], ['mailq', 1174], ['admin', 8025]]);
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 8025 });
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 8025 });
    // a wedged node is killed on the probe's short grace, not the pod's drain-length one
    assert.equal(c.livenessProbe.terminationGracePeriodSeconds, 10);
    assert.ok(c.livenessProbe.terminationGracePeriodSeconds < pod.spec.terminationGracePeriodSeconds);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(pod.spec.securityContext.runAsNonRoot, true);
    assert.deepEqual(c.resources, { limits: { memory: '256Mi' } });
    assert.deepEqual(pod.spec.nodeSelector, { disk: 'ssd' });
    assert.deepEqual(pod.spec.tolerations, [{ key: 'mail', operator: 'Exists' }]);
    assert.ok(pod.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution);
    assert.equal(pod.spec.hostname, 'mc-2');
    assert.equal(pod.spec.subdomain, 'mc-peers');
    const config = pod.spec.volumes.find((v: any) => v.name === 'config').projected.sources;
    assert.equal(config[0].configMap.name, 'mc-2-config');
    assert.equal(config[1].secret.name, 'mc-mailq');
    assert.deepEqual(config[1].secret.items.map((i: any) => i.key), ['scheduler.auth', 'etrn-password', 'admin-token.sha256']);
    assert.equal(pod.spec.volumes.find((v: any) => v.name === 'spool').persistentVolumeClaim.claimName, 'mc-2-spool');
    assert.ok(c.volumeMounts.some((m: any) => m.mountPath === '/var/spool/mailcluster'));
    assert.ok(!pod.spec.volumes.some((v: any) => v.name === 'tls'));
  });

  it('hashes the pod template: an image change is detected, a peer change is not part of it', () => {
    const h = podTemplateHash(cluster, spec, 0);
    assert.equal(buildPod(cluster, spec, 0).metadata.annotations?.['mailcluster.io/pod-template-hash'], h);
    assert.notEqual(podTemplateHash(cluster, withDefaults({ ...cluster.spec, image: 'mailcluster/node:0.2.0' }), 0), h);
    assert.equal(podTemplateHash(cluster, withDefaults({ ...cluster.spec, relayDomains: ['other.example'] }), 0), h);
    assert.equal(podTemplateHash(cluster, withDefaults({ ...cluster.spec, replicas: 7 }), 0), h);
  });

  it('builds Service <name> selecting serving pods only, 25 -> 2525, with the PROXY annotation when asked', () => {
    const svc = buildService(cluster, withDefaults({ ...cluster.spec, service: { proxyProtocol: true, annotations: { a: 'b' } } })) as any;
    assert.equal(svc.metadata.name, 'mc');
    assert.equal(svc.spec.type, 'LoadBalancer');
    assert.deepEqual(svc.spec.selector, { 'app.kubernetes.io/name': 'mailcluster-node', 'app.kubernetes.io/instance': 'mc', 'mailcluster.io/role': 'serving' });
    assert.deepEqual(svc.spec.ports, [{ name: 'smtp', protocol: 'TCP', port: 25, targetPort: 2525 }]);
    assert.deepEqual(svc.metadata.annotations, { a: 'b', 'mailcluster.io/proxy-protocol': 'v2' });
    assert.equal((buildService(cluster, spec) as any).metadata.annotations, undefined);
  });

  it('builds the headless peers Service, the PDB, the spool claim and the MAILQv2 Secret', () => {
    const peers = buildPeersService(cluster) as any;
    assert.equal(peers.metadata.name, 'mc-peers');
    assert.equal(peers.spec.clusterIP, 'None');
    assert.equal(peers.spec.publishNotReadyAddresses, true);
    assert.equal(peers.spec.selector['mailcluster.io/role'], undefined);
    const pdb = buildPodDisruptionBudget(cluster) as any;
    assert.equal(pdb.metadata.name, 'mc');
    assert.equal(pdb.spec.maxUnavailable, 1);
    const pvc = buildSpoolClaim(cluster, withDefaults({ ...cluster.spec, storage: { size: '5Gi', storageClassName: 'fast' } }), 1) as any;
    assert.equal(pvc.metadata.name, 'mc-1-spool');
    assert.deepEqual(pvc.spec.resources.requests, { storage: '5Gi' });
    assert.equal(pvc.spec.storageClassName, 'fast');
    assert.equal(pvc.metadata.ownerReferences, undefined, 'a spool claim has no owner: garbage collection never takes mail');
    const secret = buildMailqSecret(cluster, 'p4ssw0rd-p4ssw0rd-p4ssw0rd', 'token', ['127.40.0.11', '127.40.0.2']);
    assert.equal(secret.metadata.name, 'mc-mailq');
    assert.equal(Buffer.from(secret.data['scheduler.auth'], 'base64').toString(), 'etrn:p4ssw0rd-p4ssw0rd-p4ssw0rd:ETRN:[127.40.0.2]/32 [127.40.0.11]/32\n');
    assert.equal(Buffer.from(secret.data['etrn-password'], 'base64').toString(), 'p4ssw0rd-p4ssw0rd-p4ssw0rd');
    assert.throws(() => buildMailqSecret(cluster, 'short', 'token', []), /at least 16/);
  });
});
