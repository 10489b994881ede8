// The TLS material for etcd, read from PEM files named on the command line
// or in the environment.

import { readFileSync } from 'node:fs';
import { UsageError, type TlsFiles } from '../config.js';

/** EtcdTls is the PEM contents: the CA to trust (the system's when absent) and an optional client certificate. */
export interface EtcdTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** readEtcdTls reads the PEM files; an unreadable one is a usage error. */
export function readEtcdTls(files: TlsFiles): EtcdTls {
  const read = (path: string, flag: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new UsageError(`cannot read ${flag} ${JSON.stringify(path)}: ${(err as Error).message}`);
    }
  };
  return {
    ...(files.caFile ? { ca: read(files.caFile, '--etcd-ca') } : {}),
    ...(files.certFile ? { cert: read(files.certFile, '--etcd-cert') } : {}),
    ...(files.keyFile ? { key: read(files.keyFile, '--etcd-key') } : {}),
  };
}
