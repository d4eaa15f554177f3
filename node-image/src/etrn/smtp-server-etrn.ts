// ETRN for smtp-server, which has no ETRN and no hook for custom commands.
//
// The place that checks smtp-server's internals. ETRN relies on, in smtp-server 3.21.6
// (dist/esm/smtp-connection.js):
//   - SMTPConnection#_onCommand finds a command's handler as `this['handler_' + NAME]`
//     (through _isSupported/_getHandler), so a prototype method `handler_ETRN` becomes a command;
//   - handler_EHLO announces its keywords with one `this.send(250, [greeting, ...keywords], false)`;
//   - `this._server` is the SMTPServer, `this.session.envelope.mailFrom` is set inside a mail
//     transaction, `this.hostNameAppearsAs` after HELO/EHLO, `this.send(code, lines, false)`
//     writes a multi-line reply verbatim.
// smtp/security-hooks.ts patches per connection `_parseAddressCommand(name, command)` (RCPT
// paths as sent) and `handler_EHLO` (no AUTH before STARTTLS); smtp/server.ts keys open
// sessions by the id it passes to `server.connect(socket, {id})`, which must become
// `session.id` (smtp-server's STARTTLS strips the accepted socket's listeners, so sessions end
// through onClose); smtp/fast-data-mode.ts checks its own SMTPStream internals.
// installEtrn() checks the version and each of these before patching and throws if any is
// off; test/unit/etrn/smtp-server-etrn.test.ts fails loudly when they change.
import { createRequire } from 'node:module';
import type { SMTPServer, SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { SmtpReply } from './reply.ts';

/** The smtp-server version this module was written against (package.json pins it exactly). */
export const SUPPORTED_SMTP_SERVER_VERSION = '3.21.6';

export interface EtrnCommandContext {
  /** The client's address (after PROXY/XCLIENT, as smtp-server reports it). */
  remoteAddress: string;
  /** True between MAIL FROM and the end of DATA. */
  inTransaction: boolean;
  session: SMTPServerSession;
}

/** Answers one ETRN; `args` is the text after the verb. */
export type EtrnCommandHandler = (args: string, context: EtrnCommandContext) => Promise<SmtpReply>;

type SendFn = (code: number, data: string | string[], context?: string | false) => void;
type HandlerFn = (this: ConnectionInternals, command: Buffer | string, callback: () => void) => void;

interface ConnectionInternals {
  _server: SMTPServer;
  session: SMTPServerSession & { envelope: { mailFrom: unknown } };
  hostNameAppearsAs?: string | false;
  remoteAddress: string;
  send: SendFn;
}

interface ConnectionPrototype {
  _onCommand: unknown;
  _getHandler: unknown;
  _isSupported: unknown;
  _parseAddressCommand: unknown;
  send: unknown;
  handler_EHLO: HandlerFn;
  handler_ETRN?: HandlerFn;
}

const handlers = new WeakMap<object, EtrnCommandHandler>();
let installed = false;

/** The installed smtp-server version. */
export function installedSmtpServerVersion(): string {
  const require = createRequire(import.meta.url);
  return (require('smtp-server/package.json') as { version: string }).version;
}

/** Lists what this module relies on and is missing or changed; empty when all is in place. */
export function checkSmtpServerInternals(): string[] {
  const problems: string[] = [];
  const version = installedSmtpServerVersion();
  if (version !== SUPPORTED_SMTP_SERVER_VERSION) {
    problems.push(`smtp-server is ${version}, but the ETRN extension was written for exactly ${SUPPORTED_SMTP_SERVER_VERSION}`);
  }
  const proto = SMTPConnection.prototype as unknown as ConnectionPrototype;
  for (const name of ['_onCommand', '_getHandler', '_isSupported', 'send', 'handler_EHLO', '_parseAddressCommand'] as const) {
    if (typeof proto[name] !== 'function') problems.push(`SMTPConnection.prototype.${name} is not a function`);
  }
  const source = (name: keyof ConnectionPrototype) => (typeof proto[name] === 'function' ? String(proto[name]) : '');
  if (!/this\['handler_' \+ command\]/.test(source('_getHandler'))) {
    problems.push("SMTPConnection#_getHandler no longer looks handlers up as this['handler_' + command]");
  }
  if (!/_getHandler\(commandName\)/.test(source('_onCommand'))) {
    problems.push('SMTPConnection#_onCommand no longer dispatches through _getHandler(commandName)');
  }
  if (!/this\.send\(250, \[formattedResponse\]\.concat\(features/.test(source('handler_EHLO'))) {
    problems.push('SMTPConnection#handler_EHLO no longer sends its keywords as one send(250, [greeting, ...features])');
  }
  if (!/options\.id \|\|/.test(String(SMTPConnection))) {
    problems.push('new SMTPConnection(server, socket, options) no longer takes its id (session.id) from options.id');
  }
  if (!/session\.envelope = \{\s*mailFrom: false/.test(source('_resetSession' as keyof ConnectionPrototype))) {
    problems.push('SMTPConnection#_resetSession no longer resets session.envelope.mailFrom');
  }
  return problems;
}

/** Adds ETRN to smtp-server's SMTPConnection, once. Throws if the internals are not as expected. */
export function installEtrn(): void {
  if (installed) return;
  const problems = checkSmtpServerInternals();
  if (problems.length > 0) {
    throw new Error(`cannot add ETRN to smtp-server: ${problems.join('; ')} (see node-image/src/etrn/smtp-server-etrn.ts)`);
  }
  const proto = SMTPConnection.prototype as unknown as ConnectionPrototype;
  const originalEhlo = proto.handler_EHLO;

  proto.handler_EHLO = function (command, callback) {
    if (!handlers.has(this._server)) return originalEhlo.call(this, command, callback);
    // handler_EHLO sends synchronously: `send` is wrapped for that one call, then put back
    // as it was (the node may have its own per-connection `send`)
    const hadOwn = Object.prototype.hasOwnProperty.call(this, 'send');
    const send = this.send;
    this.send = (code, data, context) => {
      send.call(this, code, code === 250 && Array.isArray(data) ? [...data, 'ETRN'] : data, context);
    };
    try {
      originalEhlo.call(this, command, callback);
    } finally {
      if (hadOwn) this.send = send;
      else delete (this as Partial<ConnectionInternals>).send;
    }
  };

  proto.handler_ETRN = function (command, callback) {
    const handler = handlers.get(this._server);
    if (!handler) {
      this.send(500, 'Error: command not recognized');
      return callback();
    }
    if (!this.hostNameAppearsAs) {
      this.send(503, ['5.5.1 Error: send HELO/EHLO first'], false);
      return callback();
    }
    const args = command.toString().replace(/^\s*ETRN\b/i, '');
    const context: EtrnCommandContext = {
      remoteAddress: String(this.session.remoteAddress ?? this.remoteAddress),
      inTransaction: Boolean(this.session.envelope?.mailFrom),
      session: this.session,
    };
    handler(args, context).then(
      (reply) => {
        this.send(reply.code, reply.lines, false);
        callback();
      },
      (err: Error) => {
        this._server.logger?.error?.({ err: err.message }, 'ETRN handler failed');
        this.send(451, ['4.3.0 ETRN failed: internal error'], false);
        callback();
      },
    );
  };
  installed = true;
}

/** Makes `server` answer ETRN with `handler` and announce ETRN after EHLO. */
export function enableEtrn(server: SMTPServer, handler: EtrnCommandHandler): void {
  installEtrn();
  handlers.set(server, handler);
}
