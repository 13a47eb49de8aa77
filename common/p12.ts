/**
 * PKCS#12 files for browsers: an operator certificate and its key in one password-protected
 * file a browser imports, so the cluster page can be opened with the same mutual TLS as the
 * API. Written with pkijs (PeculiarVentures' PKI library on WebCrypto): Herd's keys are EC
 * P-256, which node-forge's PKCS#12 writer does not support.
 *
 * Modern algorithms only (PBES2 with PBKDF2-SHA-256 and AES-256-CBC for the key and the
 * certificate, an HMAC-SHA-256 integrity MAC), as OpenSSL 3 writes by default; current
 * Chrome, Firefox and Safari import them.
 */
import { webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

const KEY_BAG = '1.2.840.113549.1.12.10.1.2'; // pkcs8ShroudedKeyBag
const CERT_BAG = '1.2.840.113549.1.12.10.1.3'; // certBag
const FRIENDLY_NAME = '1.2.840.113549.1.9.20';
const LOCAL_KEY_ID = '1.2.840.113549.1.9.21';
const ITERATIONS = 100_000;

const der = (pem: string) => {
  const b64 = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, '');
  const buf = Buffer.from(b64, 'base64');
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
};

function engine(): pkijs.ICryptoEngine {
  return new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto });
}

/** A PKCS#12 (.p12) of the certificate (PEM) and its PKCS#8 key (PEM), protected by password. */
export async function toPkcs12(certPem: string, keyPem: string, password: string, friendlyName: string): Promise<Buffer> {
  if (password.length < 4) throw new Error('a PKCS#12 password must have at least 4 characters (browsers ask for it at import)');
  const crypto = engine();
  const pwd = new TextEncoder().encode(password).buffer as ArrayBuffer;
  const cert = pkijs.Certificate.fromBER(der(certPem));
  const key = pkijs.PrivateKeyInfo.fromBER(der(keyPem));
  const keyId = new Uint8Array(await webcrypto.subtle.digest('SHA-256', cert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView));
  const attrs = () => [
    new pkijs.Attribute({ type: FRIENDLY_NAME, values: [new asn1js.BmpString({ value: friendlyName })] }),
    new pkijs.Attribute({ type: LOCAL_KEY_ID, values: [new asn1js.OctetString({ valueHex: keyId.buffer as ArrayBuffer })] }),
  ];
  const pbes2 = { password: pwd, contentEncryptionAlgorithm: { name: 'AES-CBC', length: 256 } as never, hmacHashAlgorithm: 'SHA-256', iterationCount: ITERATIONS };
  const keyBag = new pkijs.PKCS8ShroudedKeyBag({ parsedValue: key });
  const pfx = new pkijs.PFX({
    parsedValue: {
      integrityMode: 0, // password-based integrity
      authenticatedSafe: new pkijs.AuthenticatedSafe({
        parsedValue: {
          safeContents: [
            { privacyMode: 0, value: new pkijs.SafeContents({ safeBags: [new pkijs.SafeBag({ bagId: KEY_BAG, bagValue: keyBag, bagAttributes: attrs() })] }) },
            { privacyMode: 1, value: new pkijs.SafeContents({ safeBags: [new pkijs.SafeBag({ bagId: CERT_BAG, bagValue: new pkijs.CertBag({ parsedValue: cert }), bagAttributes: attrs() })] }) },
          ],
        },
      }),
    },
  });
  await keyBag.makeInternalValues(pbes2, crypto);
  await pfx.parsedValue!.authenticatedSafe!.makeInternalValues({ safeContents: [{}, pbes2] }, crypto);
  await pfx.makeInternalValues({ password: pwd, iterations: ITERATIONS, pbkdf2HashAlgorithm: 'SHA-256', hmacHashAlgorithm: 'SHA-256' } as never, crypto);
  return Buffer.from(pfx.toSchema().toBER(false));
}
