// `mailcluster crds [--output FILE]`: prints (or writes) the generated MailCluster CRD.
import { writeFileSync } from 'node:fs';
import { mailClusterCrdYaml } from './crd.ts';

export async function main(args: string[]): Promise<void> {
  let output: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--output' || arg === '-o') output = args[++i];
    else if (arg.startsWith('--output=')) output = arg.slice('--output='.length);
    else if (arg === '-h' || arg === '--help') { console.log('usage: mailcluster crds [--output FILE]'); return; }
    else throw new Error(`mailcluster crds: unknown argument ${JSON.stringify(arg)} (usage: mailcluster crds [--output FILE])`);
  }
  if (output === undefined || output === '') {
    if (output === '') throw new Error('mailcluster crds: --output needs a file name');
    process.stdout.write(mailClusterCrdYaml());
  } else {
    writeFileSync(output, mailClusterCrdYaml());
  }
}
