// What the tests need from the machine, and how to get it: Debian packages
// (installed with apt-get when we are root, otherwise named exactly), Node 24
// (already running: npm put node_modules/.bin first on the PATH).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** A binary the tests run, and the Debian package that ships it. */
export interface DebianTool { binary: string; pkg: string }

export const debianTools: DebianTool[] = [
  { binary: '/usr/sbin/smtp-sink', pkg: 'postfix' },
  { binary: '/usr/sbin/smtp-source', pkg: 'postfix' },
  { binary: '/usr/sbin/postfix', pkg: 'postfix' },
  { binary: '/usr/bin/swaks', pkg: 'swaks' },
  { binary: '/usr/sbin/dnsmasq', pkg: 'dnsmasq-base' },
  { binary: '/usr/sbin/haproxy', pkg: 'haproxy' },
];

/** What `npm run images` and the image tests need: podman with Debian's runc, and debootstrap for the local base. */
export const imageTools: DebianTool[] = [
  { binary: '/usr/bin/podman', pkg: 'podman' },
  { binary: '/usr/sbin/runc', pkg: 'runc' },
  { binary: '/usr/sbin/debootstrap', pkg: 'debootstrap' },
];

/**
 * What local mode's node (`mailcluster local up`, and the e2e suites that run pods) needs besides the images:
 * Debian's runc, the CNI plugins (bridge, host-local, portmap), iptables for kube-proxy and the
 * kubelet, iproute2 for the namespace and bridge, nsenter, and openssl for the certificates.
 */
export const kubeletNodeTools: DebianTool[] = [
  { binary: '/usr/sbin/runc', pkg: 'runc' },
  { binary: '/usr/lib/cni/bridge', pkg: 'containernetworking-plugins' },
  { binary: '/usr/sbin/iptables', pkg: 'iptables' },
  { binary: '/usr/sbin/ip', pkg: 'iproute2' },
  { binary: '/usr/bin/nsenter', pkg: 'util-linux' },
  { binary: '/usr/bin/openssl', pkg: 'openssl' },
];

export function missingPackages(tools: DebianTool[] = debianTools): string[] {
  return [...new Set(tools.filter((t) => !existsSync(t.binary)).map((t) => t.pkg))];
}

/** Installs the missing Debian packages, or throws naming them when we cannot. */
export function ensureDebianPackages(log: (line: string) => void = console.log, tools: DebianTool[] = debianTools): void {
  const missing = missingPackages(tools);
  if (missing.length === 0) return;
  const isRoot = process.getuid?.() === 0;
  const hasApt = existsSync('/usr/bin/apt-get');
  if (!isRoot || !hasApt) {
    throw new Error(`the tests need these Debian packages: ${missing.join(' ')}; install them with: ` +
      `echo 'postfix postfix/main_mailer_type select No configuration' | sudo debconf-set-selections && ` +
      `sudo DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing.join(' ')}`);
  }
  log(`installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Debian's postfix asks which configuration to write; "No configuration" leaves it unstarted.
  execFileSync('debconf-set-selections', { input: 'postfix postfix/main_mailer_type select No configuration\n', env });
  const update = spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
  if (update.status !== 0) throw new Error('apt-get update failed');
  const install = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
  if (install.status !== 0) throw new Error(`apt-get install ${missing.join(' ')} failed`);
  const still = missingPackages(tools);
  if (still.length > 0) throw new Error(`still missing after apt-get install: ${still.join(' ')}`);
}
