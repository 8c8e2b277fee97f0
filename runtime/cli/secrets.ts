/**
 * Secrets of the command line: the shared token and TLS files of a cluster, the checkpoint
 * storage's URL and Redis password. Each can come from a file or an environment variable, so that
 * it never has to be on the command line, where every user of the host reads it (`ps`,
 * `/proc/<pid>/cmdline`). Flags come before environment variables.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { CheckpointStorage } from '../../state/storage/checkpoint-storage.js';
import { openCheckpointStorage } from '../../state/storage/open-storage.js';
import { type ClusterTlsOptions, checkAuthentication } from '../distributed/wire.js';
import { log } from '../log.js';
import { UsageError } from './load-job.js';

/** Where warnings go (standard error). */
export type Warn = (line: string) => void;

const stderrWarn: Warn = (line) => log.warn(line);

/** The contents of a secret file, without the line break at its end. */
export function readSecretFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${what} from ${path}: ${(e as Error).message}`);
  }
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '') throw new UsageError(`${what} file ${path} is empty`);
  return secret;
}

/** Flags of the cluster's security (`run --listen` and `taskmanager`). */
export interface ClusterSecurityFlags {
  token?: string;
  tokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

/**
 * The token and TLS settings of a job manager or task manager: the token from `--token`,
 * `--token-file`, `TIDEMARK_TOKEN` or `TIDEMARK_TOKEN_FILE` (the first given); the TLS files from
 * `--tls-cert`, `--tls-key`, `--tls-ca` (or `TIDEMARK_TLS_CERT`, `TIDEMARK_TLS_KEY`,
 * `TIDEMARK_TLS_CA`). A token is needed unless TLS is mutual (a CA given).
 */
export function clusterSecurity(
  flags: ClusterSecurityFlags,
  env: NodeJS.ProcessEnv = process.env,
  warn: Warn = stderrWarn,
): { token: string; tls: ClusterTlsOptions | undefined } {
  if (flags.token !== undefined && flags.tokenFile !== undefined)
    throw new UsageError('give the token one way: --token or --token-file');
  if (flags.token !== undefined)
    warn('--token shows the token to every user of this host (ps): use --token-file or TIDEMARK_TOKEN');
  const token =
    flags.token ??
    fromFile(flags.tokenFile, 'the token (--token-file)') ??
    nonEmpty(env.TIDEMARK_TOKEN) ??
    fromFile(nonEmpty(env.TIDEMARK_TOKEN_FILE), 'the token (TIDEMARK_TOKEN_FILE)') ??
    '';
  const tls = tlsFromFiles(flags);
  try {
    checkAuthentication(token, tls);
  } catch {
    throw new UsageError(
      token === ''
        ? 'running on several hosts needs a shared token of at least 8 characters (--token-file, TIDEMARK_TOKEN or TIDEMARK_TOKEN_FILE) or mutual TLS (--tls-cert, --tls-key and --tls-ca)'
        : 'the shared token must have at least 8 characters',
    );
  }
  return { token, tls };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function fromFile(path: string | undefined, what: string): string | undefined {
  return path === undefined ? undefined : readSecretFile(path, what);
}

/** Reads and checks the TLS files (undefined when none is given). */
export function tlsFromFiles(flags: ClusterSecurityFlags): ClusterTlsOptions | undefined {
  const { tlsCert, tlsKey, tlsCa } = flags;
  if (tlsCert === undefined && tlsKey === undefined) {
    if (tlsCa !== undefined)
      throw new UsageError(
        '--tls-ca needs --tls-cert and --tls-key too: every process of a cluster shows a certificate',
      );
    return undefined;
  }
  if (tlsCert === undefined || tlsKey === undefined)
    throw new UsageError(
      `--tls-cert and --tls-key go together: ${tlsCert === undefined ? '--tls-cert' : '--tls-key'} is missing`,
    );
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read the TLS ${what} from ${path}: ${(e as Error).message}`);
    }
  };
  const cert = read(tlsCert, 'certificate (--tls-cert)');
  const key = read(tlsKey, 'key (--tls-key)');
  const ca = tlsCa === undefined ? undefined : read(tlsCa, 'CA certificate (--tls-ca)');
  const certificate = (pem: string, path: string, what: string) => {
    try {
      return new X509Certificate(pem);
    } catch {
      throw new UsageError(`${path} (${what}) is not a PEM certificate`);
    }
  };
  const own = certificate(cert, tlsCert, '--tls-cert');
  if (ca !== undefined) certificate(ca, tlsCa!, '--tls-ca');
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new UsageError(`${tlsKey} (--tls-key) is not a PEM private key (without a passphrase)`);
  }
  if (!own.checkPrivateKey(privateKey))
    throw new UsageError(
      `the key ${tlsKey} (--tls-key) is not the key of the certificate ${tlsCert} (--tls-cert)`,
    );
  try {
    createSecureContext({ cert, key, ...(ca === undefined ? {} : { ca }) });
  } catch (e) {
    throw new UsageError(
      `cannot use the TLS files (--tls-cert ${tlsCert}, --tls-key ${tlsKey}): ${(e as Error).message}`,
    );
  }
  if (Date.parse(own.validTo) < Date.now())
    throw new UsageError(`the certificate ${tlsCert} (--tls-cert) expired on ${own.validTo}`);
  return { cert, key, ...(ca === undefined ? {} : { ca }) };
}

/** The flags of the `checkpoints` commands that say which storage. */
export interface StorageCommandFlags {
  storage?: string;
  redisPasswordFile?: string;
}

/** Flags of a checkpoint storage on the command line. */
export interface StorageFlags {
  /** The storage URL given as a flag. */
  url?: string | undefined;
  redisPasswordFile?: string | undefined;
}

/** The storage URL: the flag's, else `TIDEMARK_CHECKPOINT_STORAGE` (undefined when neither). */
export function storageUrl(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  return flag ?? nonEmpty(env.TIDEMARK_CHECKPOINT_STORAGE);
}

/**
 * Opens (constructs) the checkpoint storage at `url`, with the Redis password from
 * `--redis-password-file`, `TIDEMARK_REDIS_PASSWORD` or `TIDEMARK_REDIS_PASSWORD_FILE` (the first
 * given; it overrides a password in the URL, and is ignored by other storages). Warns when the URL
 * of a flag holds a password.
 */
export function openStorage(
  url: string,
  flags: StorageFlags,
  env: NodeJS.ProcessEnv = process.env,
  warn: Warn = stderrWarn,
): CheckpointStorage {
  if (flags.url !== undefined && /^[a-z][a-z0-9+.-]*:\/\/[^@/?#]*:[^@/?#]*@/i.test(flags.url))
    warn(
      'the storage URL on the command line holds a password that every user of this host can read (ps): use TIDEMARK_REDIS_PASSWORD, --redis-password-file or TIDEMARK_CHECKPOINT_STORAGE',
    );
  const password =
    fromFile(flags.redisPasswordFile, 'the Redis password (--redis-password-file)') ??
    nonEmpty(env.TIDEMARK_REDIS_PASSWORD) ??
    fromFile(nonEmpty(env.TIDEMARK_REDIS_PASSWORD_FILE), 'the Redis password (TIDEMARK_REDIS_PASSWORD_FILE)');
  return openCheckpointStorage(url, password === undefined ? {} : { redis: { password } });
}
