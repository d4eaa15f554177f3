// SMTP AUTH passwords as PHC scrypt strings (BRIEF contract 3):
// `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt b64>$<hash b64>` (standard base64 without padding).
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { SmtpAuthUser } from '../config/security.ts';

export interface ScryptParams { ln: number; r: number; p: number }
/** Cost for new hashes: N = 2^15, r = 8, p = 1 (32 MiB, tens of ms). */
export const DEFAULT_SCRYPT: ScryptParams = { ln: 15, r: 8, p: 1 };
const KEY_LENGTH = 32;

const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');

function scryptAsync(password: string, salt: Buffer, keylen: number, p: ScryptParams): Promise<Buffer> {
  const N = 2 ** p.ln;
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, { N, r: p.r, p: p.p, maxmem: 256 * N * p.r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** A PHC scrypt string for the password (random 16-byte salt). */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT, salt: Buffer = randomBytes(16)): Promise<string> {
  const key = await scryptAsync(password, salt, KEY_LENGTH, params);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

export interface ParsedPhc { params: ScryptParams; salt: Buffer; hash: Buffer }

export function parsePhcScrypt(phc: string): ParsedPhc | null {
  const m = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/.exec(phc);
  if (!m) return null;
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (params.ln < 1 || params.ln > 20 || params.r < 1 || params.p < 1) return null;
  const hash = Buffer.from(m[5], 'base64');
  if (hash.length < 16) return null;
  return { params, salt: Buffer.from(m[4], 'base64'), hash };
}

export async function verifyPassword(password: string, phc: string): Promise<boolean> {
  const parsed = parsePhcScrypt(phc);
  if (!parsed) return false;
  const key = await scryptAsync(password, parsed.salt, parsed.hash.length, parsed.params);
  return timingSafeEqual(key, parsed.hash);
}

// an unknown user costs the same scrypt work as a known one (no user enumeration by timing)
let dummy: string | null = null;

/** The user with this name and password (any relay right), or null. Never consults scheduler.auth. */
export async function authenticate(users: readonly SmtpAuthUser[], username: string, password: string): Promise<SmtpAuthUser | null> {
  const user = users.find((u) => u.user === username);
  if (!user) {
    dummy ??= await hashPassword('mailcluster-dummy', { ln: DEFAULT_SCRYPT.ln, r: 8, p: 1 }, Buffer.alloc(16));
    await verifyPassword(password, dummy);
    return null;
  }
  return (await verifyPassword(password, user.phc)) ? user : null;
}

/** `mailcluster auth-hash`: reads a password on stdin (one line), prints its PHC scrypt string. */
export async function authHashMain(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (password === '') {
    console.error('mailcluster auth-hash: empty password on stdin');
    process.exit(2);
  }
  console.log(await hashPassword(password));
}
