/**
 * Throwaway certificate authorities and certificates for the TLS tests, made with `openssl` in a
 * temporary directory (removed when the test process exits).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate (and its key, and the CA that signed it) as files and as PEM text. */
export interface TestCertificate {
  certFile: string;
  keyFile: string;
  caFile: string;
  cert: string;
  key: string;
  ca: string;
}

/** A test certificate authority. */
export interface TestCa {
  caFile: string;
  /** A certificate signed by this CA for `name` (also valid for 127.0.0.1 and localhost). */
  issue(name: string): TestCertificate;
}

const dirs: string[] = [];
let hooked = false;

/** Makes a CA named `name` (an EC P-256 key, valid two days). */
export function makeTestCa(name: string): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-ca-'));
  dirs.push(dir);
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });
  }
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', `/CN=${name}`, '-days', '2']);
  const caFile = join(dir, 'ca.crt');
  let serial = 0;
  return {
    caFile,
    issue(cn: string): TestCertificate {
      const base = `cert-${++serial}`;
      run(['req', ...ec, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${cn}`]);
      writeFileSync(join(dir, `${base}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
      run([
        'x509',
        '-req',
        '-in',
        `${base}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-set_serial',
        String(1000 + serial),
        '-out',
        `${base}.crt`,
        '-days',
        '2',
        '-extfile',
        `${base}.ext`,
      ]);
      const certFile = join(dir, `${base}.crt`);
      const keyFile = join(dir, `${base}.key`);
      return {
        certFile,
        keyFile,
        caFile,
        cert: readFileSync(certFile, 'utf8'),
        key: readFileSync(keyFile, 'utf8'),
        ca: readFileSync(caFile, 'utf8'),
      };
    },
  };
}
