// One informer as local mode uses it: client-node's informer stops on a watch error, so this
// one restarts itself a second later (it resumes, or relists after 410 Gone) until stopped.
import { makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ListPromise, type ObjectCache } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export type Cache<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

export function restartingInformer<T extends KubernetesObject>(
  kubeConfig: KubeConfig, path: string, list: () => Promise<unknown>, log: Logger, stopped: () => boolean,
): Cache<T> {
  const informer = makeInformer<T>(kubeConfig, path, list as ListPromise<T>);
  informer.on('error', (err: unknown) => {
    if (stopped()) return;
    log.warn({ path, err: (err as Error)?.message ?? String(err) }, 'watch failed, restarting');
    setTimeout(() => { if (!stopped()) informer.start().catch(() => undefined); }, 1000).unref();
  });
  return informer;
}
