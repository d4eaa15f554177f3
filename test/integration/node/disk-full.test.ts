// Disk faults on a real small filesystem: the spool lives on a 20 MB tmpfs that the test
// mounts (we are root) and fills. PARAM queue-minfree answers 452 4.3.1 before the disk
// fills; a write that hits ENOSPC is answered 452 (never 250) and loses nothing; a DSN
// that cannot be queued leaves the original queued. Every message acknowledged with 250
// (the ledger) is delivered once space returns. Addresses: 127.10.92.0/24.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { startDns, type DnsServer } from '../../support/dnsmasq.ts';
import { startCaptureServer, type CaptureServer } from '../../support/capture-server.ts';
import { startMailNode, type MailNode } from '../../support/mail-node.ts';
import { makeTempDir, waitUntil } from '../../support/processes.ts';
import { header, nodeTestAddress, rawSession } from './helpers.ts';

const A = (h: number) => nodeTestAddress(92, h);
const MB = 1024 * 1024;

function freeOn(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Writes zeros into `file` (on the filesystem of `dir`) until `leave` bytes are free (0: until ENOSPC). */
function fill(dir: string, file: string, leave: number): void {
  const fd = openSync(file, 'a');
  try {
    for (const chunk of [MB, 64 * 1024, 4096]) {
      const buf = Buffer.alloc(chunk);
      for (;;) {
        if (leave > 0 && freeOn(dir) - chunk < leave) break;
        try { writeSync(fd, buf); } catch (err) { if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break; throw err; }
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** One message over a raw session: every reply, and the one to the final dot (or the first refusal). */
async function send(host: string, port: number, id: string, extraHeaders = ''): Promise<{ final: string; replies: string[] }> {
  const s = await rawSession(host, port);
  const replies: string[] = [];
  try {
    replies.push(await s.command('EHLO client.test'));
    const mail = await s.command('MAIL FROM:<alice@src.test>');
    replies.push(mail);
    if (!mail.startsWith('250')) return { final: mail, replies };
    replies.push(await s.command('RCPT TO:<bob@dest.test>'));
    const go = await s.command('DATA');
    replies.push(go);
    if (!go.startsWith('354')) return { final: go, replies };
    const body = `From: <alice@src.test>\r\nTo: <bob@dest.test>\r\nMessage-ID: <${id}@test>\r\n${extraHeaders}\r\n${'x'.repeat(200 * 1024)}\r\n`;
    const final = await s.command(body + '.');
    replies.push(final);
    return { final, replies };
  } finally {
    s.close();
  }
}

describe('a full spool filesystem (tmpfs)', function () {
  this.timeout(120_000);
  let dns: DnsServer;
  let dest: CaptureServer;
  let mountPoint: string;
  let node: MailNode;
  const acked = new Map<string, string>();
  const deliveredIds = () => new Set(dest.messages.map((m) => /<(.*)@test>/.exec(header(m.raw, 'Message-ID') ?? '')?.[1]).filter(Boolean));

  before(async () => {
    mountPoint = makeTempDir('tmpfs');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m,mode=0700', 'tmpfs', mountPoint]);
    mkdirSync(join(mountPoint, 'spool'));
    dest = await startCaptureServer({ address: A(100), listen: false });
    dns = await startDns({
      address: A(53),
      mx: [{ domain: 'dest.test', host: 'mx.dest.test', preference: 10 }, { domain: 'src.test', host: 'mx.dest.test', preference: 10 }],
      a: [{ name: 'mx.dest.test', ip: A(100) }],
    });
    node = await startMailNode({
      hostname: 'full.test', address: A(1), relayDomains: ['dest.test'], relayNetworks: ['127.0.0.0/8'],
      dnsServer: dns.server, deliveryPort: dest.port, maxsize: MB,
      retryInterval: 1, maxRetryInterval: 2, postoffice: join(mountPoint, 'spool'),
      extraSmtpserverLines: [`PARAM queue-minfree ${4 * MB}`],
    });
  });

  after(async () => {
    await node?.close();
    await dest?.stop();
    await dns?.stop();
    if (mountPoint) { try { execFileSync('umount', [mountPoint]); } catch { /* not mounted */ } }
  });

  const fillers = () => join(mountPoint, 'filler');
  const smtpPort = () => Number(node.smtp.split(':')[1]);

  it('answers 452 4.3.1 at MAIL FROM below queue-minfree, 452 (never 250) on ENOSPC, and delivers every acknowledged message once space returns', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await send(A(1), smtpPort(), `ok-${i}`);
      assert.match(r.final, /^250 /);
      acked.set(`ok-${i}`, r.final);
    }
    // above the reserve, but not with room for the SIZE a client declares
    fill(mountPoint, fillers() + '-0', 4.5 * MB);
    const sized = await rawSession(A(1), smtpPort());
    await sized.command('EHLO client.test');
    assert.match(await sized.command(`MAIL FROM:<alice@src.test> SIZE=${MB}`), /^452 4\.3\.1 /);
    assert.match(await sized.command('MAIL FROM:<alice@src.test> SIZE=1000'), /^250 /);
    sized.close();
    // below the reserve, not yet full
    fill(mountPoint, fillers() + '-1', 2 * MB);
    assert.ok(freeOn(mountPoint) < 4 * MB);
    const refused = await send(A(1), smtpPort(), 'refused-minfree');
    assert.match(refused.final, /^452 4\.3\.1 Insufficient system storage/);

    // the reserve off, the disk really full: the write fails, the client gets 452, never 250
    const reloaded = node.waitForLog((l) => l.event === 'reload' && l.result === 'ok', 10_000);
    await node.reload({ extraSmtpserverLines: ['PARAM queue-minfree 0'] });
    await reloaded;
    fill(mountPoint, fillers() + '-2', 0);
    for (let i = 0; i < 3; i++) {
      const r = await send(A(1), smtpPort(), `enospc-${i}`);
      assert.match(r.final, /^45[12] /, `ENOSPC answered ${r.final}`);
    }
    const report = await node.queue();
    assert.equal(report.total, 10, 'exactly the acknowledged messages are queued');

    // a crash while full, then space returns and the destination comes up
    await node.kill9();
    rmSync(fillers() + '-0');
    rmSync(fillers() + '-1');
    rmSync(fillers() + '-2');
    await node.reload({ extraSmtpserverLines: [`PARAM queue-minfree ${4 * MB}`] });
    await node.start();
    assert.equal((await node.queue()).total, 10, 'every acknowledged message survived the full disk and the crash');
    const after = await send(A(1), smtpPort(), 'after');
    assert.match(after.final, /^250 /, 'space back: accepted again');
    acked.set('after', after.final);
    await dest.start();
    await waitUntil('every acknowledged message delivered', () => [...acked.keys()].every((id) => deliveredIds().has(id)), { timeoutMs: 30_000 });
    const extra = [...deliveredIds()].filter((id) => !acked.has(id!));
    console.log(`      ledger: ${acked.size} acknowledged, all delivered; ${dest.messages.length - deliveredIds().size} duplicates; not acknowledged but delivered: ${extra.join(', ') || 'none'}`);
    assert.deepEqual(extra, [], 'a refused message is not delivered');
    await waitUntil('queue empty', async () => (await node.queue()).total === 0, { timeoutMs: 10_000 });
  });

  it('a DSN that cannot be queued (ENOSPC) leaves the original queued; the bounce goes out once space returns', async () => {
    await dest.stop();
    dest.clear();
    // headers larger than a page: the DSN, which quotes them, cannot fit in a segment's last page
    const pad = `X-Pad: ${Array.from({ length: 16 }, () => 'p'.repeat(900)).join('\r\n\t')}\r\n`;
    const r = await send(A(1), smtpPort(), 'bounce-me', pad);
    assert.match(r.final, /^250 /);
    await waitUntil('deferred', async () => (await node.queue()).deferred === 1, { timeoutMs: 10_000 });
    fill(mountPoint, fillers() + '-3', 0);
    // the destination refuses the recipient for good: the next retry fails it and wants a DSN
    dest.setReply({ stage: 'rcpt', code: 550, message: '5.1.1 no such user', recipients: ['bob@dest.test'] });
    await dest.start();
    await node.waitForLog((l) => l.event === 'bounce' && /could not queue DSN/.test(String(l.msg)), 20_000).catch((err) => {
      console.log(node.logs().slice(-15).map((l) => JSON.stringify(l)).join('\n'));
      throw err;
    });
    assert.equal((await node.queue()).total, 1, 'the original is still queued');
    await new Promise((res) => setTimeout(res, 2500));
    assert.equal((await node.queue()).total, 1, 'and stays queued while the disk is full');
    rmSync(fillers() + '-3');
    const dsn = await dest.waitForMessages(1, 30_000);
    assert.deepEqual(dsn[0].rcptTo, ['alice@src.test']);
    assert.equal(dsn[0].mailFrom, '');
    assert.match(dsn[0].raw.toString(), /multipart\/report[\s\S]*no such user/);
    await waitUntil('queue empty', async () => (await node.queue()).total === 0, { timeoutMs: 10_000 });
    dest.setReply(undefined);
  });
});
