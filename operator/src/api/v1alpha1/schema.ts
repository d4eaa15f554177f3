// The MailCluster v1alpha1 OpenAPI v3 schema, written once as data. The CRD (crd.ts) embeds
// it, the TypeScript types (types.ts) are derived from it and the operator's own defaulting
// (defaults.ts) walks it, so schema, types and defaults cannot drift apart.

/** A DNS name (RFC 1123 labels, dot separated); the 253-character limit is a maxLength. */
export const DNS_NAME_PATTERN = '^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$';
/** A Go-style duration such as `90s`, `5m` or `1h30m`. */
/** An object name (DNS-1123 subdomain), as a Secret's name must be. */
const SECRET_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';
/** A Kubernetes resource quantity such as `1Gi` or `500M`. */
export const QUANTITY_PATTERN = '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';

const quantityMap = {
  type: 'object',
  additionalProperties: {
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    pattern: QUANTITY_PATTERN,
    'x-kubernetes-int-or-string': true,
  },
} as const;

export const specSchema = {
  type: 'object',
  description: 'MailClusterSpec is the desired state of a cluster of SMTP relay nodes behind one address (Addr[0]).',
  required: ['hostname'],
  properties: {
    replicas: {
      type: 'integer',
      format: 'int32',
      minimum: 1,
      maximum: 100,
      default: 3,
      description: 'Number of mail nodes (pods). Scaling down drains the nodes above the new count, together: each leaves the load balancer and the peer lists, hands its queue to the nodes that stay, and only then is deleted with its spool.',
    },
    hostname: {
      type: 'string',
      maxLength: 253,
      pattern: DNS_NAME_PATTERN,
      description: "The cluster's public name (the DNS name of Addr[0] that customers' MX records point at). Used as every node's SMTP banner, HELO and Received name, and listed in SELFADDRESSES.",
    },
    relayDomains: {
      type: 'array',
      maxItems: 10000,
      'x-kubernetes-list-type': 'set',
      description: 'Domains this cluster is MX for: inbound mail to them is accepted from anyone, and ETRN is allowed for them.',
      items: { type: 'string', maxLength: 253, pattern: DNS_NAME_PATTERN, description: 'A domain name, e.g. customer.example.' },
    },
    relayNetworks: {
      type: 'array',
      maxItems: 1000,
      'x-kubernetes-list-type': 'set',
      description: 'Client networks (CIDRs) allowed to relay mail to any destination, e.g. the ISP\'s own customer ranges.',
      items: {
        type: 'string',
        maxLength: 64,
        description: 'A CIDR such as 192.0.2.0/24 or 2001:db8::/32.',
        'x-kubernetes-validations': [{ rule: 'isCIDR(self)', message: 'must be a CIDR such as 192.0.2.0/24 or 2001:db8::/32' }],
      },
    },
    selfAddresses: {
      type: 'array',
      maxItems: 256,
      'x-kubernetes-list-type': 'set',
      description: 'Extra addresses and names that are this cluster (added to SELFADDRESSES next to the pod IPs, pod DNS names, Service and load balancer addresses and hostname): an MX host matching one of them is never used for outbound delivery.',
      items: {
        type: 'string',
        maxLength: 253,
        description: 'An IP address or a DNS name.',
        'x-kubernetes-validations': [{ rule: `isIP(self) || self.matches('${DNS_NAME_PATTERN.replaceAll('\\', '\\\\')}')`, message: 'must be an IP address or a DNS name' }],
      },
    },
    image: {
      type: 'string',
      minLength: 1,
      maxLength: 512,
      default: 'mailcluster/node:0.1.0',
      description: 'The mail node container image. Changing it rolls the nodes one at a time, draining each first.',
    },
    service: {
      type: 'object',
      default: {},
      description: 'The Service that is Addr[0], the one address customers and their MX records use.',
      'x-kubernetes-validations': [
        { rule: "self.type == 'LoadBalancer' || (!has(self.loadBalancerIP) && !has(self.loadBalancerClass))", message: 'loadBalancerIP and loadBalancerClass need type LoadBalancer' },
        { rule: "self.type != 'ClusterIP' || !has(self.externalTrafficPolicy)", message: 'externalTrafficPolicy needs type NodePort or LoadBalancer' },
        { rule: 'self.proxyProtocol || !has(self.proxyProtocolNetworks)', message: 'proxyProtocolNetworks needs proxyProtocol: true' },
      ],
      properties: {
        type: {
          type: 'string',
          enum: ['ClusterIP', 'NodePort', 'LoadBalancer'],
          default: 'LoadBalancer',
          description: 'Service type of Addr[0].',
        },
        port: {
          type: 'integer',
          format: 'int32',
          minimum: 1,
          maximum: 65535,
          default: 25,
          description: 'Port of Addr[0]; it forwards to the nodes\' SMTP port 2525.',
        },
        annotations: {
          type: 'object',
          additionalProperties: { type: 'string' },
          description: 'Annotations for the Service, e.g. for a cloud load balancer. To send PROXY v2 headers (with proxyProtocol: true): AWS NLB service.beta.kubernetes.io/aws-load-balancer-proxy-protocol: "*", DigitalOcean service.beta.kubernetes.io/do-loadbalancer-enable-proxy-protocol: "true", Hetzner load-balancer.hetzner.cloud/uses-proxyprotocol: "true". GKE and AKS load balancers send none: use externalTrafficPolicy: Local.',
        },
        loadBalancerIP: {
          type: 'string',
          maxLength: 64,
          description: 'Requested load balancer address (where the provider supports it).',
          'x-kubernetes-validations': [{ rule: 'isIP(self)', message: 'must be an IP address' }],
        },
        loadBalancerClass: {
          type: 'string',
          maxLength: 253,
          description: 'Load balancer implementation to use (Service spec.loadBalancerClass).',
        },
        externalTrafficPolicy: {
          type: 'string',
          enum: ['Cluster', 'Local'],
          description: 'Service externalTrafficPolicy; Local keeps client addresses without the PROXY protocol.',
        },
        proxyProtocol: {
          type: 'boolean',
          default: false,
          description: 'The load balancer sends a PROXY v2 header so nodes see the real client address (relay control depends on it). Sets the annotation mailcluster.io/proxy-protocol: "v2" and the nodes\' proxy-protocol lines.',
        },
        proxyProtocolNetworks: {
          type: 'array',
          maxItems: 64,
          'x-kubernetes-list-type': 'set',
          description: 'Source networks of the load balancer\'s connections to the nodes, which must start with a PROXY header. Default: the load balancer\'s own address.',
          items: {
            type: 'string',
            maxLength: 64,
            description: 'A CIDR.',
            'x-kubernetes-validations': [{ rule: 'isCIDR(self)', message: 'must be a CIDR such as 10.0.0.0/8' }],
          },
        },
      },
    },
    tls: {
      type: 'object',
      description: 'STARTTLS for inbound SMTP. The certificate is reloaded when the Secret changes.',
      required: ['secretName'],
      properties: {
        secretName: {
          type: 'string',
          minLength: 1,
          maxLength: 253,
          pattern: SECRET_NAME_PATTERN,
          description: 'A kubernetes.io/tls Secret in the same namespace, with keys tls.crt and tls.key. It is mounted into every node; the operator does not read it (it has no right to read Secrets cluster-wide), so a missing Secret shows as nodes that do not start (FailedMount events on the pods), or as Degraded (TLSSecretMissing) where the operator may read Secrets in that namespace.',
        },
      },
    },
    peerTls: {
      type: 'object',
      description: 'Where the certificate peers present to each other comes from (Secret <name>-peer-tls: ca.crt, tls.crt, tls.key for <name>-peers.<namespace>.svc). Unset: the operator creates a per-cluster CA and certificate once. With issuerRef: a cert-manager Certificate <name>-peer-tls issues and renews it (cert-manager must be installed; the issuer must put ca.crt in the Secret, as a CA issuer does).',
      properties: {
        issuerRef: {
          type: 'object',
          required: ['name'],
          description: 'The cert-manager issuer of the peer certificate.',
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 253, description: 'Name of the Issuer or ClusterIssuer.' },
            kind: { type: 'string', enum: ['Issuer', 'ClusterIssuer'], default: 'Issuer', description: 'Issuer (in the MailCluster\'s namespace) or ClusterIssuer.' },
            group: { type: 'string', maxLength: 253, default: 'cert-manager.io', description: 'API group of the issuer.' },
          },
        },
      },
    },
    smtpAuth: {
      type: 'object',
      description: 'SMTP AUTH for users with a relay right (off when unset). Offered only after STARTTLS; the MAILQv2 credentials never log in over SMTP.',
      required: ['secretName'],
      properties: {
        secretName: {
          type: 'string',
          minLength: 1,
          maxLength: 253,
          pattern: SECRET_NAME_PATTERN,
          description: 'A Secret in the same namespace with key `users`: lines `user:<PHC scrypt hash>:RELAY` (make a hash with `mailcluster auth-hash`). Mounted read-only at /etc/mailcluster/smtp-auth/users; the node reloads it when it changes.',
        },
      },
    },
    storage: {
      type: 'object',
      default: {},
      description: 'Each node\'s spool volume (a PersistentVolumeClaim <name>-<i>-spool).',
      'x-kubernetes-validations': [
        { rule: 'has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)', message: 'storageClassName is immutable' },
      ],
      properties: {
        size: {
          type: 'string',
          pattern: QUANTITY_PATTERN,
          default: '1Gi',
          description: 'Requested size of each spool volume (a quantity such as 1Gi). Applies to volumes created from then on.',
        },
        storageClassName: {
          type: 'string',
          maxLength: 253,
          description: 'StorageClass of the spool volumes (the cluster default when unset). Immutable.',
        },
        retentionPolicy: {
          type: 'object',
          default: {},
          description: 'What happens to the spool claims when the MailCluster is deleted (as a StatefulSet\'s persistentVolumeClaimRetentionPolicy). Spool claims never carry an owner reference, so garbage collection never takes mail.',
          properties: {
            whenDeleted: {
              type: 'string',
              enum: ['Retain', 'Delete'],
              default: 'Retain',
              description: 'Retain: deleting the MailCluster keeps every spool claim; a MailCluster created again with the same name in the same namespace adopts them and delivers their mail. Delete: deleting the MailCluster first drains its nodes one at a time (a finalizer holds it), and each claim is deleted only once the node on it reported itself drained (queue empty); the last node delivers or bounces what it holds, so this can take up to the queue lifetime.',
            },
          },
        },
      },
    },
    maxMessageSize: {
      type: 'integer',
      format: 'int64',
      minimum: 1024,
      maximum: 1073741824,
      default: 10485760,
      description: 'Largest message accepted, in bytes (advertised with SIZE; larger ones get 552).',
    },
    drainTimeout: {
      type: 'string',
      pattern: DURATION_PATTERN,
      maxLength: 32,
      default: '5m',
      description: 'How long a draining node may take to empty its queue (a duration such as 90s or 5m). A node is deleted only once its queue is empty; past this time the cluster reports Degraded (DrainStalled) and keeps the node, so no message is dropped.',
    },
    delivery: {
      type: 'object',
      default: {},
      description: 'Outbound delivery settings of every node.',
      properties: {
        dnsServer: {
          type: 'string',
          maxLength: 64,
          pattern: '^[0-9A-Fa-f:.\\[\\]]+(:[0-9]{1,5})?$',
          description: 'Resolver for MX/A/AAAA lookups, ip[:port] (default: the system resolver).',
        },
        port: {
          type: 'integer',
          format: 'int32',
          minimum: 1,
          maximum: 65535,
          description: 'Port used for outbound delivery (default 25).',
        },
        retryInterval: {
          type: 'string',
          pattern: DURATION_PATTERN,
          maxLength: 32,
          description: 'First retry delay after a temporary failure (default 60s); doubles up to maxRetryInterval.',
        },
        maxRetryInterval: {
          type: 'string',
          pattern: DURATION_PATTERN,
          maxLength: 32,
          description: 'Longest retry delay (default 1h).',
        },
        queueLifetime: {
          type: 'string',
          pattern: DURATION_PATTERN,
          maxLength: 32,
          description: 'How long a message may stay queued before it bounces (default 120h).',
        },
      },
    },
    resources: {
      type: 'object',
      description: 'Compute resources of the node container (core/v1 ResourceRequirements: limits and requests).',
      properties: {
        limits: { ...quantityMap, description: 'Maximum resources, e.g. cpu: "1", memory: 512Mi.' },
        requests: { ...quantityMap, description: 'Requested resources, e.g. cpu: 100m, memory: 128Mi.' },
      },
    },
    nodeSelector: {
      type: 'object',
      additionalProperties: { type: 'string' },
      description: 'Node labels the mail node pods must be scheduled on.',
    },
    tolerations: {
      type: 'array',
      maxItems: 64,
      description: 'Tolerations of the mail node pods (core/v1 Toleration).',
      items: {
        type: 'object',
        description: 'A core/v1 Toleration.',
        properties: {
          key: { type: 'string', description: 'Taint key the toleration applies to; empty with operator Exists matches all.' },
          operator: { type: 'string', enum: ['Exists', 'Equal'], description: 'Exists or Equal (default Equal).' },
          value: { type: 'string', description: 'Taint value to match with operator Equal.' },
          effect: { type: 'string', enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'], description: 'Taint effect to match; empty matches all.' },
          tolerationSeconds: { type: 'integer', format: 'int64', description: 'How long a NoExecute taint is tolerated.' },
        },
      },
    },
    affinity: {
      type: 'object',
      'x-kubernetes-preserve-unknown-fields': true,
      description: 'Scheduling affinity of the mail node pods (a core/v1 Affinity, not validated here). Default: a preferred pod anti-affinity that spreads the nodes over hosts.',
    },
  },
} as const;

const conditionSchema = {
  type: 'object',
  description: 'A metav1.Condition.',
  required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
  properties: {
    type: { type: 'string', maxLength: 316, description: 'Condition type: Ready, Progressing or Degraded.' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'], description: 'True, False or Unknown.' },
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0, description: 'The .metadata.generation the condition was set for.' },
    lastTransitionTime: { type: 'string', format: 'date-time', description: 'When the status last changed.' },
    reason: { type: 'string', maxLength: 1024, minLength: 1, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$', description: 'A CamelCase machine-readable reason.' },
    message: { type: 'string', maxLength: 32768, description: 'A human-readable explanation.' },
  },
} as const;

export const statusSchema = {
  type: 'object',
  description: 'MailClusterStatus is the observed state of the cluster, written by the operator.',
  properties: {
    observedGeneration: { type: 'integer', format: 'int64', description: 'The .metadata.generation this status describes.' },
    replicas: { type: 'integer', format: 'int32', description: 'Number of node pods that exist (serving and draining).' },
    readyReplicas: { type: 'integer', format: 'int32', description: 'Number of serving node pods that are ready.' },
    selector: { type: 'string', description: 'Label selector of the node pods (for the scale subresource and HPA).' },
    address: { type: 'string', description: 'Addr[0] as the load balancer reports it (its IP or hostname; the ClusterIP for other Service types).' },
    peers: {
      type: 'array',
      description: 'The etrn-cluster peers every node is configured with, as <pod IP>/1174.',
      items: { type: 'string', description: 'A peer, <pod IP>/1174.' },
    },
    selfAddresses: {
      type: 'array',
      description: 'The SELFADDRESSES every node is configured with.',
      items: { type: 'string', description: 'An address or name of this cluster.' },
    },
    conditions: {
      type: 'array',
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
      description: 'Ready (all replicas serving and ready), Progressing (scaling, rolling, draining or rewriting configuration) and Degraded (a problem that needs attention, with its reason).',
      items: conditionSchema,
    },
  },
} as const;

export const mailClusterSchema = {
  type: 'object',
  description: 'MailCluster runs a load-balanced, fail-over cluster of SMTP relay nodes (after ZMailer\'s ETRN cluster) behind one address.',
  required: ['spec'],
  // Pod names (<name>-<i>) are DNS labels and <name>-peers a Service name: both must fit in 63.
  'x-kubernetes-validations': [
    { rule: "self.metadata.name.size() <= 50 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')", message: 'metadata.name must be a DNS label of at most 50 characters starting with a letter (pods are named <name>-<i>)' },
  ],
  properties: {
    apiVersion: { type: 'string', description: 'APIVersion defines the versioned schema of this representation of an object.' },
    kind: { type: 'string', description: 'Kind is a string value representing the REST resource this object represents.' },
    metadata: { type: 'object' },
    spec: specSchema,
    status: statusSchema,
  },
} as const;
