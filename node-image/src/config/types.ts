// The node's whole configuration, as read from one config directory
// (smtpserver.conf + zmailer.conf + scheduler.auth). See DESIGN.md "Node configuration contract".

export interface BindAddress { address: string; port: number }

/** One `PARAM etrn-cluster <node[/port]> <user> <password>` line; `@path` passwords already read. */
export interface EtrnPeer { host: string; port: number; user: string; password: string }

/** One scheduler.auth line `user:password:ATTRS:IP-ACLs`; acls normalised to CIDR strings (`127.0.0.0/8`). */
export interface SchedulerAuthEntry { user: string; password: string; rights: string[]; acls: string[] }

export interface TlsFiles { certFile: string; keyFile: string }

export interface NodeConfig {
  /** The config directory as given (before MAILCLUSTER_ROOT resolution). */
  configDir: string;
  hostname: string;
  bindSmtp: BindAddress;
  bindMailq: BindAddress;
  bindAdmin: BindAddress;
  /** Largest message accepted, bytes (SIZE; 552 past it). */
  maxSize: number;
  /** STARTTLS offered when set; paths resolved under MAILCLUSTER_ROOT. */
  tls: TlsFiles | null;
  etrnCluster: EtrnPeer[];
  relayDomains: string[];
  /** CIDR strings. */
  relayNetworks: string[];
  /** CIDR strings: connections from here must start with a PROXY v1/v2 header. */
  proxyProtocol: string[];
  /** `ip` or `ip:port` / `[ipv6]:port`, as node:dns setServers takes them; empty = system resolver. */
  dnsServers: string[];
  /** Port used for outbound delivery. */
  smtpPort: number;
  /** SELFADDRESSES entries as written (`1.2.3.4`, `[1.2.3.4]`, `[IPv6:…]`, `name.example`). */
  selfAddresses: string[];
  /** Spool directory, resolved under MAILCLUSTER_ROOT. */
  postOffice: string;
  schedulerAuth: SchedulerAuthEntry[];
  /** Source address for outbound connections (MAILCLUSTER_BIND_ADDRESS, or a non-wildcard BindSmtp address); undefined = the system's choice. */
  outboundAddress?: string;
  // PARAM extensions (DECISIONS.md); times in seconds (fractions allowed, for tests).
  retryInterval: number;
  maxRetryInterval: number;
  queueLifetime: number;
  maxReceivedHeaders: number;
  maxRecipients: number;
  maxConnections: number;
  deliveryConcurrency: number;
  /** SHA-256 (lowercase hex) of the admin token (contract 1); null: credentialed admin endpoints answer 403. */
  adminTokenSha256: string | null;
}

/** A configuration error that names the file and line (line 0: the file as a whole). */
export class ConfigError extends Error {
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, message: string) {
    super(line > 0 ? `${file}:${line}: ${message}` : `${file}: ${message}`);
    this.name = 'ConfigError';
    this.file = file;
    this.line = line;
  }
}
