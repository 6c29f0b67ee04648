/**
 * Throw-away TLS material for tests, made with the `openssl` command line (Debian's openssl package) into a
 * directory of the test's own: a CA, a server certificate for 127.0.0.1 and localhost signed by it, a second CA
 * that signed nothing of ours, and a private key that belongs to no certificate. Valid for two days.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export interface TestCerts {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** A CA that signed nothing here: verifying with it must fail. */
  otherCaCert: string;
  /** A private key that does not belong to serverCert. */
  otherKey: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string): void {
  openssl(dir, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

export function makeTestCerts(dir: string): TestCerts {
  makeCa(dir, 'strata-test-ca');
  makeCa(dir, 'other-ca');
  openssl(dir, [
    'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost',
  ]);
  writeFileSync(
    path.join(dir, 'server-ext.cnf'),
    [
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  );
  openssl(dir, [
    'x509', '-req', '-in', 'server.csr', '-CA', 'strata-test-ca.crt', '-CAkey', 'strata-test-ca.key',
    '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server-ext.cnf',
  ]);
  openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'other.key']);
  return {
    dir,
    caCert: path.join(dir, 'strata-test-ca.crt'),
    serverCert: path.join(dir, 'server.crt'),
    serverKey: path.join(dir, 'server.key'),
    otherCaCert: path.join(dir, 'other-ca.crt'),
    otherKey: path.join(dir, 'other.key'),
  };
}
