// `mailcluster <command>`: one dispatcher, each command owned by its folder.
const usage = `usage:
  mailcluster node --config-dir DIR        run a mail node
  mailcluster operator [flags]             run the operator (see --help)
  mailcluster local up|down|status [--dir D]   the embedded single-machine Kubernetes
  mailcluster crds                         print the generated MailCluster CRD
  mailcluster auth-hash                    read a password on stdin, print its PHC scrypt hash (smtp-auth-users)
  mailcluster queue list|show|hold|release|delete|retry|summary --url URL --token T
                                           queue operations on one node (see queue --help)`;

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'node': {
    const { main } = await import('../node-image/src/main.ts');
    await main(rest);
    break;
  }
  case 'operator': {
    const { main } = await import('../operator/src/main.ts');
    await main(rest);
    break;
  }
  case 'local': {
    const { main } = await import('../local/src/cli.ts');
    await main(rest);
    break;
  }
  case 'crds': {
    const { main } = await import('../operator/src/api/crd-cli.ts');
    await main(rest);
    break;
  }
  case 'auth-hash': {
    const { authHashMain } = await import('../node-image/src/smtp/auth.ts');
    await authHashMain();
    break;
  }
  case 'queue': {
    const { main } = await import('../ops/src/queue-cli.ts');
    await main(rest);
    break;
  }
  case undefined:
  case '-h':
  case '--help':
    console.log(usage);
    break;
  default:
    console.error(`mailcluster: unknown command ${JSON.stringify(command)}\n${usage}`);
    process.exit(2);
}
