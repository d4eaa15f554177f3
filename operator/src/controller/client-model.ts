// @kubernetes/client-node renames JSON fields that are JavaScript keywords in its models (a
// NetworkPolicy rule's `from` is `_from`): KubernetesObjectApi serializes a request body by
// the model and silently drops `from` from plain JSON, which would turn "only from these pods"
// into "from anywhere". Lists come back in the model's names, watch events in JSON's. The
// planner speaks JSON; these two functions translate at the edge.
import type { KObject } from './observed.ts';

type Rule = Record<string, unknown>;

function renameInRules(obj: KObject, from: string, to: string): KObject {
  if (obj.kind !== undefined && obj.kind !== 'NetworkPolicy') return obj;
  const spec = obj.spec as { ingress?: Rule[] } | undefined;
  if (!spec?.ingress?.some((r) => from in r)) return obj;
  return {
    ...obj,
    spec: {
      ...spec,
      ingress: spec.ingress.map((r) => {
        if (!(from in r)) return r;
        const { [from]: peers, ...rest } = r;
        return { ...rest, [to]: peers };
      }),
    },
  };
}

/** A desired NetworkPolicy in the client's model names, for KubernetesObjectApi.patch. */
export const toClientModel = (obj: KObject): KObject => (obj.kind === 'NetworkPolicy' ? renameInRules(obj, 'from', '_from') : obj);

/** An observed NetworkPolicy (from a list or a watch) in JSON's names, for the planner. */
export const fromClientModel = (obj: KObject): KObject => renameInRules({ ...obj, kind: 'NetworkPolicy' }, '_from', 'from');
