// What the operator's end-to-end tests share: the operator as a real child process
// (`mailcluster operator`, inside the kubelet node's network namespace like an in-cluster
// operator), the CRD installed from crds/, API clients, the pods' admin endpoints through the
// node's gateway, and small waits. On the host every address is in 127.0.0.0/8: the shared
// test cluster's load balancers are 127.51/16 and the suites' own servers 127.44/16; the pods
// (10.244.1.x) and the peers put inside (10.244.0.x) exist only in the node's namespace.
import { createWriteStream, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, PolicyV1Api, type KubeConfig } from '@kubernetes/client-node';
import { addressIn, freePort } from '../../support/addresses.ts';
import { spawnTracked, stopChild, tailOf, waitUntil } from '../../support/processes.ts';
import type { ChildProcess } from 'node:child_process';
import type { LocalCluster } from '../../../local/src/index.ts';
import { sharedLocalCluster } from '../../support/local-cluster.ts';
import { httpInside, inNode, type Dial, type InNamespace } from '../../support/inside.ts';

export const OPERATOR_TEST_RANGE = '127.44.0.0/16';
export const suiteAddress = (i: number): string => addressIn(OPERATOR_TEST_RANGE, i);

export interface Clients {
  core: CoreV1Api;
  custom: CustomObjectsApi;
  policy: PolicyV1Api;
  coordination: CoordinationV1Api;
}

export function clients(kc: KubeConfig): Clients {
  return {
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    policy: kc.makeApiClient(PolicyV1Api),
    coordination: kc.makeApiClient(CoordinationV1Api),
  };
}

export interface OperatorProcess {
  child: ChildProcess;
  metricsUrl: string;
  /** Its /metrics text. */
  scrape(): Promise<string>;
  logs(): string;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Sum of a metric over all its label sets. */
  metricSum(name: string): Promise<number>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Where the operator process runs: on the host by default (then it reaches no pod: enough
 * for suites without pods), or inside the kubelet node's network namespace (`inNode(node)`),
 * where it reaches the pods as an in-cluster operator does and the API server through the
 * node's gateway on the same 127.0.0.1 URL; its metrics are then read through the gateway.
 */
export async function startOperator(kubeconfigPath: string, args: string[], inside?: InNamespace): Promise<OperatorProcess> {
  const port = await freePort('127.0.0.1');
  const argv = ['bin/mailcluster.js', 'operator', '--kubeconfig', kubeconfigPath, '--metrics-address', `127.0.0.1:${port}`, ...args];
  const [cmd, cmdArgs] = inside ? inside.command('node_modules/.bin/node', argv) : ['node_modules/.bin/node', argv];
  const child = spawnTracked(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = tailOf(child.stdout, 200_000);
  const err = tailOf(child.stderr, 20_000);
  // MAILCLUSTER_E2E_OPERATOR_LOG_DIR=<dir> keeps every operator's whole log (one file per PID), to
  // read after a failure what the 200 KB tail no longer holds
  const logDir = process.env.MAILCLUSTER_E2E_OPERATOR_LOG_DIR;
  if (logDir) {
    const file = createWriteStream(`${logDir}/operator-${child.pid}.log`);
    child.stdout!.pipe(file, { end: false });
    child.stderr!.pipe(file, { end: false });
    child.once('close', () => file.end());
  }
  const metricsUrl = `http://127.0.0.1:${port}`;
  const get = async (path: string): Promise<{ status: number; body: string }> => {
    if (inside) return httpInside(inside.dial, '127.0.0.1', port, path, { timeoutMs: 3000 });
    const res = await fetch(`${metricsUrl}${path}`, { signal: AbortSignal.timeout(3000) });
    return { status: res.status, body: await res.text() };
  };
  const scrape = async (): Promise<string> => (await get('/metrics')).body;
  const handle: OperatorProcess = {
    child,
    metricsUrl,
    scrape,
    logs: () => out() + err(),
    async metric(name, labels = {}) {
      const text = await scrape();
      const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
      let total = 0;
      for (const line of text.split('\n')) {
        if (!line.startsWith(name)) continue;
        const m = /^([a-zA-Z_:]+)(\{[^}]*\})?\s+(\S+)$/.exec(line);
        if (!m || m[1] !== name) continue;
        if (want.every((w) => (m[2] ?? '').includes(w))) total += Number(m[3]);
      }
      return total;
    },
    metricSum(name) { return handle.metric(name); },
    async stop(signal = 'SIGTERM') { await stopChild(child, signal, 8000); },
  };
  await waitUntil('the operator serving /readyz', async () => {
    return (await get('/readyz')).status === 200;
  }, { timeoutMs: 90_000, intervalMs: 200, abort: () => (child.exitCode !== null ? `operator exited ${child.exitCode}: ${err()}` : undefined) });
  return handle;
}

export function crdYaml(): string {
  return readFileSync(new URL('../../../crds/mailclusters.mailcluster.io.yaml', import.meta.url), 'utf8');
}

export function mailClusterObject(namespace: string, name: string, spec: Record<string, unknown>) {
  return { apiVersion: 'mailcluster.io/v1alpha1', kind: 'MailCluster', metadata: { name, namespace }, spec };
}

export async function getMailCluster(c: Clients, namespace: string, name: string): Promise<any> {
  return c.custom.getNamespacedCustomObject({ group: 'mailcluster.io', version: 'v1alpha1', plural: 'mailclusters', namespace, name });
}

export function conditionOf(mc: any, type: string): { status: string; reason: string; message: string } | undefined {
  return (mc?.status?.conditions ?? []).find((c: any) => c.type === type);
}

/** A GET of a pod's admin endpoint (the node's /metrics, /queue), through the node's gateway (pods are inside its namespace). */
export async function nodeAdmin(dial: Dial, ip: string, path: string, timeoutMs = 3000): Promise<{ status: number; body: string }> {
  return httpInside(dial, ip, 8025, path, { timeoutMs });
}

export async function nodeMetric(dial: Dial, ip: string, name: string, labels: Record<string, string> = {}, timeoutMs = 3000): Promise<number> {
  const text = (await nodeAdmin(dial, ip, '/metrics', timeoutMs)).body;
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:]+)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === name && want.every((w) => (m[2] ?? '').includes(w))) total += Number(m[3]);
  }
  return total;
}

/** Speaks just enough SMTP to send `ETRN <domain>` and returns the reply lines. */
export function etrn(address: string, port: number, domain: string, timeoutMs = 10_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: address, port });
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`ETRN to ${address}:${port} timed out`)); }, timeoutMs);
    let buffer = '';
    let stage = 0;
    const reply: string[] = [];
    socket.setEncoding('utf8');
    socket.on('error', (e) => { clearTimeout(timer); reject(e); });
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, '');
        buffer = buffer.slice(nl + 1);
        const last = /^\d{3} /.test(line);
        if (stage === 2) reply.push(line);
        if (!last) continue;
        if (stage === 0) { socket.write('EHLO e2e.test\r\n'); stage = 1; }
        else if (stage === 1) { socket.write(`ETRN ${domain}\r\n`); stage = 2; }
        else if (stage === 2) { socket.write('QUIT\r\n'); stage = 3; clearTimeout(timer); socket.end(); resolve(reply); }
      }
    });
  });
}

/** EHLO, STARTTLS, TLS handshake; returns the server certificate's subject (e.g. `CN=x`). */
export function startTlsSubject(address: string, port: number, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: address, port });
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`STARTTLS to ${address}:${port} timed out`)); }, timeoutMs);
    const fail = (e: Error): void => { clearTimeout(timer); socket.destroy(); reject(e); };
    let buffer = '';
    let stage = 0;
    let ehlo = '';
    socket.setEncoding('utf8');
    socket.on('error', fail);
    const onData = (chunk: string): void => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, '');
        buffer = buffer.slice(nl + 1);
        if (stage === 1) ehlo += `${line}\n`;
        if (!/^\d{3} /.test(line)) continue;
        if (stage === 0) { socket.write('EHLO e2e.test\r\n'); stage = 1; }
        else if (stage === 1) {
          if (!/STARTTLS/i.test(ehlo)) { fail(new Error(`no STARTTLS in the EHLO reply: ${ehlo}`)); return; }
          socket.write('STARTTLS\r\n'); stage = 2;
        } else if (stage === 2) {
          if (!line.startsWith('220')) { fail(new Error(`STARTTLS answered ${line}`)); return; }
          socket.off('data', onData);
          const secure = tlsConnect({ socket, rejectUnauthorized: false, servername: 'localhost' }, () => {
            const cert = secure.getPeerCertificate();
            clearTimeout(timer);
            secure.end();
            resolve(`CN=${cert.subject?.CN ?? ''}`);
          });
          secure.on('error', fail);
          return;
        }
      }
    };
    socket.on('data', onData);
  });
}

export { inNode, waitUntil };

/** Every operator suite's start: the shared test cluster, its clients, the CRD installed and established. */
export async function sharedClusterWithCrd(): Promise<{ cluster: LocalCluster; c: Clients }> {
  const cluster = await sharedLocalCluster();
  await cluster.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], { input: crdYaml() });
  await cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/mailclusters.mailcluster.io']);
  return { cluster, c: clients(cluster.kubeConfig) };
}

/**
 * Every operator suite's end: its MailClusters go first, while its operator still runs (a
 * Delete policy's finalizer needs it, and no later suite's cluster-wide operator may find them
 * in a terminating namespace); then the operator, the namespace and the suite's own servers.
 */
export async function tearDownSuite(cluster: LocalCluster | undefined, namespace: string, operator: OperatorProcess | undefined, servers: Array<{ stop(): Promise<unknown> } | undefined>): Promise<void> {
  if (cluster) await cluster.kubectl(['delete', 'mc', '--all', '-n', namespace, '--wait=true', '--timeout=90s']).catch(() => undefined);
  await operator?.stop();
  if (cluster) await cluster.kubectl(['delete', 'namespace', namespace, '--wait=false']).catch(() => undefined);
  for (const server of servers) await server?.stop();
}
