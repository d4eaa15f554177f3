// Costs of the issue-10 checks, in process (no servers): what one SMTP AUTH attempt costs in
// CPU at the default scrypt parameters (the reason failed attempts are delayed and capped per
// client), the relay verdict per RCPT with the routing analysis, the admin guard per request.
// `node test/bench/security/run.ts [--rounds N]`. Prints medians; asserts nothing.
import { performance } from 'node:perf_hooks';
import { createHash } from 'node:crypto';
import { hashPassword, verifyPassword, DEFAULT_SCRYPT } from '../../../node-image/src/smtp/auth.ts';
import { relayVerdict } from '../../../node-image/src/smtp/policy.ts';
import { decideAdminAuth } from '../../../node-image/src/admin/auth.ts';
import { median, parseFlags, positiveInt, table } from '../stats.ts';

const flags = parseFlags(process.argv.slice(2), { '--rounds': 'value' });
const rounds = positiveInt(flags, '--rounds', 7);

const phc = await hashPassword('bench-password', DEFAULT_SCRYPT);
const scryptMs: number[] = [];
for (let i = 0; i < rounds; i++) {
  const t = performance.now();
  await verifyPassword(i % 2 ? 'bench-password' : 'wrong', phc);
  scryptMs.push(performance.now() - t);
}

const policy = { relayDomains: new Set(['customer.test', 'a.test', 'b.test']), isRelayNetwork: (ip: string) => ip.startsWith('10.'), isPeer: () => false };
const paths = ['user@customer.test', 'victim%foreign.test@customer.test', '@x.test:v@customer.test', '"a@b"@customer.test', 'u@foreign.test', 'U@CUSTOMER.TEST.'];
const perCall = (fn: (i: number) => unknown, n: number): number[] => {
  const out: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    for (let i = 0; i < n; i++) fn(i);
    out.push(((performance.now() - t) * 1e6) / n);
  }
  return out;
};
const verdictNs = perCall((i) => relayVerdict(paths[i % paths.length], '203.0.113.9', false, policy), 200_000);
const digest = createHash('sha256').update('token').digest('hex');
const guardNs = perCall((i) => decideAdminAuth(i % 2 ? 'Bearer token' : 'Bearer wrong', digest), 100_000);

console.log(table(['what', 'median', 'unit', 'rounds'], [
  [`scrypt verify (ln=${DEFAULT_SCRYPT.ln}, r=${DEFAULT_SCRYPT.r}, p=${DEFAULT_SCRYPT.p})`, median(scryptMs).toFixed(1), 'ms / AUTH attempt', rounds],
  ['relayVerdict with routing analysis', median(verdictNs).toFixed(0), 'ns / RCPT', rounds],
  ['admin guard (sha256 + timingSafeEqual)', median(guardNs).toFixed(0), 'ns / request', rounds],
]));
