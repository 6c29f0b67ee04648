/**
 * TLS material from the files configuration names (STRATA_TLS_CERT, STRATA_TLS_KEY, STRATA_TLS_CA), read and
 * checked once at start-up, so that an unreadable file, a key that does not belong to the certificate or an
 * expired certificate stops the process with a message naming the variable instead of failing every handshake.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../config/config.js';
import type { AccessSettings } from '../config/access-config.js';

/** A server's certificate chain and private key, PEM. */
export interface ServerTls {
  cert: Buffer;
  key: Buffer;
}

export interface TlsMaterial {
  /** HTTPS for this process's listener (gateway or storage node); null = plain HTTP. */
  server: ServerTls | null;
  /** The CA node clients verify storage nodes with; null = the system's CAs (and plain HTTP stays allowed). */
  ca: Buffer | null;
}

type TlsFiles = Pick<AccessSettings, 'tlsCertFile' | 'tlsKeyFile' | 'tlsCaFile'>;

export function loadTls(files: TlsFiles, nowMs: number = Date.now()): TlsMaterial {
  let server: ServerTls | null = null;
  if (files.tlsCertFile !== null && files.tlsKeyFile !== null) {
    const cert = readPem('STRATA_TLS_CERT', files.tlsCertFile);
    const key = readPem('STRATA_TLS_KEY', files.tlsKeyFile);
    const certificate = parseCertificate('STRATA_TLS_CERT', files.tlsCertFile, cert);
    let privateKey;
    try {
      privateKey = createPrivateKey(key);
    } catch (error) {
      throw new ConfigError(`STRATA_TLS_KEY (${files.tlsKeyFile}) is not a PEM private key: ${(error as Error).message}`);
    }
    if (!certificate.checkPrivateKey(privateKey)) {
      throw new ConfigError(
        `STRATA_TLS_KEY (${files.tlsKeyFile}) is not the private key of the certificate in STRATA_TLS_CERT (${files.tlsCertFile})`,
      );
    }
    if (Date.parse(certificate.validTo) < nowMs) {
      throw new ConfigError(`the certificate in STRATA_TLS_CERT (${files.tlsCertFile}) expired on ${certificate.validTo}`);
    }
    try {
      createSecureContext({ cert, key });
    } catch (error) {
      throw new ConfigError(`STRATA_TLS_CERT and STRATA_TLS_KEY cannot serve TLS: ${(error as Error).message}`);
    }
    server = { cert, key };
  }
  let ca: Buffer | null = null;
  if (files.tlsCaFile !== null) {
    ca = readPem('STRATA_TLS_CA', files.tlsCaFile);
    parseCertificate('STRATA_TLS_CA', files.tlsCaFile, ca);
    try {
      createSecureContext({ ca });
    } catch (error) {
      throw new ConfigError(`STRATA_TLS_CA (${files.tlsCaFile}) is not a usable CA bundle: ${(error as Error).message}`);
    }
  }
  return { server, ca };
}

function readPem(variable: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConfigError(`${variable} (${file}) cannot be read: ${(error as Error).message}`);
  }
}

function parseCertificate(variable: string, file: string, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new ConfigError(`${variable} (${file}) is not a PEM certificate: ${(error as Error).message}`);
  }
}

/**
 * The TLS options of a node client: verify with the configured CA, and once a CA is configured never talk to a
 * node in plaintext (the cluster token travels on every call).
 */
export function nodeClientTls(material: TlsMaterial): { ca?: Buffer; requireTls: boolean } {
  return material.ca === null ? { requireTls: false } : { ca: material.ca, requireTls: true };
}
