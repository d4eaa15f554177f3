{{/*
The operator's permissions: exactly the calls operator/src makes (see the comments), nothing
more. Writes are server-side apply (PATCH); applying an object that does not exist yet creates
it, hence `create` next to `patch`.
*/}}
{{- define "mailcluster-operator.managedRules" -}}
# MailClusters: the informer (list+watch) and the status subresource (server-side apply).
- apiGroups: ["mailcluster.io"]
  resources: ["mailclusters"]
  verbs: ["list", "watch"]
# The finalizer of storage.retentionPolicy.whenDeleted: Delete (a merge patch of metadata.finalizers).
- apiGroups: ["mailcluster.io"]
  resources: ["mailclusters"]
  verbs: ["patch"]
- apiGroups: ["mailcluster.io"]
  resources: ["mailclusters/status"]
  verbs: ["patch"]
# Children carry ownerReferences with blockOwnerDeletion: true, which clusters with the
# OwnerReferencesPermissionEnforcement admission plugin allow only with this right.
- apiGroups: ["mailcluster.io"]
  resources: ["mailclusters/finalizers"]
  verbs: ["update"]
# Pods, per-pod ConfigMaps and spool claims: informers, apply, and deletion on scale-down.
- apiGroups: [""]
  resources: ["pods", "configmaps", "persistentvolumeclaims"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# get on ConfigMaps too: the operator grants each node get/list/watch on its own ConfigMap
# (below), and RBAC lets it grant only rights it holds itself (no escalate/bind verbs).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
# Each node's ServiceAccount, Role and RoleBinding <name>-<i>-node (read its own ConfigMap by
# name, nothing else; operator/src/resources/node-access.ts): informers on its own labels, and
# apply when one is missing or changed.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["list", "watch", "create", "patch"]
# Its own Secrets (<name>-mailq, -admin, -peer-tls), written whole: create, and update (PUT)
# of content it derives. Never get/list/watch, and never patch: a PATCH answers with the whole
# stored object, which would be a read of any Secret by name.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "update"]
# cert-manager Certificate <name>-peer-tls when spec.peerTls.issuerRef is set: applied, never
# watched (the CRD may not be installed).
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["create", "patch"]
# The NetworkPolicy <name> (informer, apply; removed by garbage collection).
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "watch", "create", "patch"]
# Service Addr[0], the headless peers Service, the PDB: informers and apply (removed by GC).
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch"]
# Events for scaling, draining, rolling and errors (core/v1 Events, created once each).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* Leader election: read and renew one named Lease; create it the first time. */}}
{{- define "mailcluster-operator.leaderElectionRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ .Values.leaderElection.leaseName | quote }}]
  verbs: ["get", "update"]
{{- end -}}


{{/* Watched namespaces only: a namespaced read of the TLS Secret a MailCluster names, so that a
missing one is reported (Degraded, TLSSecretMissing) instead of showing only as pods that cannot
mount it. Never granted cluster-wide. */}}
{{- define "mailcluster-operator.namespacedSecretRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end -}}

{{/* The master key: read by name, created by the operator when absent (create cannot be limited by name). */}}
{{- define "mailcluster-operator.masterKeyRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: [{{ include "mailcluster-operator.masterKeySecretName" . | quote }}]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
{{- end -}}
