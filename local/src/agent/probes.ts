// One probe attempt (tcpSocket, httpGet, exec) against a pod running on its own 127.x address.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { V1Container, V1Probe } from '@kubernetes/client-node';

export interface ProbeContext {
  podIP: string;
  container: V1Container;
  env: Record<string, string>;
  cwd: string;
}

export interface ProbeResult { ok: boolean; message: string }

/** A numeric port, or a named port looked up in the container's ports. */
export function resolvePort(port: number | string | undefined, container: V1Container): number {
  if (typeof port === 'number') return port;
  if (port !== undefined && /^\d+$/.test(port)) return Number(port);
  const named = container.ports?.find((p) => p.name === port);
  if (!named) throw new Error(`probe port ${JSON.stringify(port)} is not a port of container ${container.name}`);
  return named.containerPort;
}

export async function runProbe(probe: V1Probe, ctx: ProbeContext): Promise<ProbeResult> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  try {
    if (probe.tcpSocket) return await tcpProbe(probe.tcpSocket.host || ctx.podIP, resolvePort(probe.tcpSocket.port as number | string, ctx.container), timeoutMs);
    if (probe.httpGet) {
      const g = probe.httpGet;
      const headers: Record<string, string> = { 'user-agent': 'kube-probe/local' };
      for (const h of g.httpHeaders ?? []) headers[h.name] = h.value;
      return await httpProbe((g.scheme ?? 'HTTP').toUpperCase() === 'HTTPS', g.host || ctx.podIP, resolvePort(g.port as number | string, ctx.container), g.path ?? '/', headers, timeoutMs);
    }
    if (probe.exec) return await execProbe(probe.exec.command ?? [], ctx, timeoutMs);
    return { ok: false, message: 'unsupported probe type (local mode supports tcpSocket, httpGet, exec)' };
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => { socket.destroy(); resolve({ ok: false, message: `dial tcp ${host}:${port}: timeout` }); }, timeoutMs);
    socket.once('connect', () => { clearTimeout(timer); socket.destroy(); resolve({ ok: true, message: '' }); });
    socket.once('error', (err) => { clearTimeout(timer); resolve({ ok: false, message: `dial tcp ${host}:${port}: ${err.message}` }); });
  });
}

function httpProbe(tls: boolean, host: string, port: number, path: string, headers: Record<string, string>, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const req = (tls ? httpsRequest : httpRequest)({ host, port, path, headers, method: 'GET', timeout: timeoutMs, rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      // As the kubelet: 200-399 is success.
      resolve(status >= 200 && status < 400 ? { ok: true, message: '' } : { ok: false, message: `HTTP probe failed with statuscode: ${status}` });
    });
    req.on('timeout', () => { req.destroy(new Error('timeout')); });
    req.on('error', (err) => resolve({ ok: false, message: `Get "http://${host}:${port}${path}": ${err.message}` }));
    req.end();
  });
}

function execProbe(command: string[], ctx: ProbeContext, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    if (command.length === 0) { resolve({ ok: false, message: 'exec probe without command' }); return; }
    const child = spawn(command[0], command.slice(1), { cwd: ctx.cwd, env: ctx.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { if (output.length < 1024) output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { if (output.length < 1024) output += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); resolve({ ok: false, message: err.message }); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(code === 0 ? { ok: true, message: '' } : { ok: false, message: signal ? `command timed out` : `command exited ${code}: ${output.trim()}` });
    });
  });
}
