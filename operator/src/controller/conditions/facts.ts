// The facts about a cluster that the conditions are computed from (gathered by the planner).
export interface ClusterFacts {
  desired: number;
  readyServing: number;
  /** Indices below `desired` without a pod (being created or waiting to be). */
  missing: number[];
  /** Pods with role=draining, with why. */
  draining: Array<{ pod: string; reason: string; stalled: boolean }>;
  /** Serving pods above the desired count, waiting for their turn to drain. */
  excess: string[];
  /** Serving pods with an outdated template, waiting to be rolled. */
  outdated: string[];
  /** Pods in a failing state, with the reason. */
  failing: Array<{ pod: string; reason: string }>;
  tlsProblem?: { reason: 'TLSSecretMissing' | 'TLSSecretInvalid'; secret: string };
  /** ConfigMaps rewritten by this reconcile. */
  reconfigured: number;
  lastError?: string;
  /** Deleted with whenDeleted: Delete: every node drains out before its claim goes. */
  deleting?: boolean;
  /**
   * A pod-template rollout: `rolling` from the first replaced pod until every pod runs the new
   * template and is Ready; `waiting` when outdated pods wait for a cluster-wide rollout slot.
   */
  rollout?: 'rolling' | 'waiting';
}
