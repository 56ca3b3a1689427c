//! Java KeyStores (JKS), written as cert-manager's Certificate writes them: a keystore with one
//! private-key entry (the key and its full chain) followed by the CA certificates as
//! trusted-certificate entries, and a truststore with the CA certificates only.
//!
//! Sun's JKS format, implemented from its published description (all integers big-endian):
//!
//! ```text
//! u32 magic 0xFEEDFEED, u32 version 2, u32 entry count, then per entry:
//!   u32 tag (1 = private key, 2 = trusted certificate), alias (Java "UTF": u16 length + bytes),
//!   u64 creation time in ms since the epoch, then
//!   tag 1: u32 length + EncryptedPrivateKeyInfo DER, u32 chain length, per certificate:
//!          certificate type ("UTF" "X.509"), u32 length + DER
//!   tag 2: certificate type ("UTF" "X.509"), u32 length + DER
//! 20 bytes: SHA-1(password as UTF-16BE || "Mighty Aphrodite" || everything above)
//! ```
//!
//! The private key is protected with the "JKS key protector" (OID 1.3.6.1.4.1.42.2.17.1.1): a
//! SHA-1 keystream seeded by a random 20-byte salt, XORed over the PKCS#8 key, followed by a
//! SHA-1 check value. It is weak (it is why Java moved to PKCS#12 by default), but it is what a
//! JKS is; the file is only as safe as the volume it sits in.

use aws_lc_rs::digest::{self, SHA1_FOR_LEGACY_USE_ONLY};
use zeroize::Zeroizing;

use super::KeyError;

const MAGIC: u32 = 0xFEED_FEED;
const VERSION: u32 = 2;
const TAG_PRIVATE_KEY: u32 = 1;
const TAG_TRUSTED_CERTIFICATE: u32 = 2;
/// Mixed into the file's integrity hash after the password.
const WHITENER: &[u8] = b"Mighty Aphrodite";
/// The certificate type Java writes before each certificate.
const X509: &str = "X.509";
/// 1.3.6.1.4.1.42.2.17.1.1: Sun's JKS key protector.
const KEY_PROTECTOR_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 42, 2, 17, 1, 1];
const SHA1_LEN: usize = 20;
/// Java reads an alias with `DataInput.readUTF`: at most 65535 bytes.
pub const MAX_ALIAS_BYTES: usize = 65_535;

/// One entry of a store.
enum Entry<'a> {
    PrivateKey {
        alias: &'a str,
        /// PKCS#8 `PrivateKeyInfo` DER.
        pkcs8: &'a [u8],
        /// Leaf first.
        chain: &'a [Vec<u8>],
    },
    Trusted {
        alias: String,
        certificate: &'a [u8],
    },
}

/// The aliases of the CA entries, as cert-manager names them: `ca`, `ca-1`, `ca-2`, …
pub fn ca_alias(index: usize) -> String {
    if index == 0 {
        "ca".to_string()
    } else {
        format!("ca-{index}")
    }
}

/// Whether an alias would be taken by a CA entry (JKS aliases are case-insensitive).
pub fn is_ca_alias(alias: &str) -> bool {
    let alias = alias.to_ascii_lowercase();
    alias == "ca"
        || alias
            .strip_prefix("ca-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The keystore: the key under `alias` with `chain` (leaf first), then each of `cas` as a
/// trusted entry. `password` protects the file and the key entry alike.
pub fn build_keystore(
    pkcs8: &[u8],
    chain: &[Vec<u8>],
    cas: &[Vec<u8>],
    alias: &str,
    password: &str,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if chain.is_empty() {
        return Err(KeyError::Keystore(
            "the JKS keystore needs a certificate".into(),
        ));
    }
    // JKS aliases are case-insensitive: Java writes them in lower case and finds an entry by
    // the lower-cased name, so a mixed-case alias in the file would be listed but not found.
    let alias = alias.to_lowercase();
    let mut entries = vec![Entry::PrivateKey {
        alias: &alias,
        pkcs8,
        chain,
    }];
    entries.extend(trusted_entries(cas));
    encode(&entries, password, now_millis())
}

/// The truststore: each of `cas` as a trusted entry.
pub fn build_truststore(cas: &[Vec<u8>], password: &str) -> Result<Vec<u8>, KeyError> {
    let entries: Vec<Entry<'_>> = trusted_entries(cas).collect();
    encode(&entries, password, now_millis()).map(|bytes| bytes.to_vec())
}

fn trusted_entries(cas: &[Vec<u8>]) -> impl Iterator<Item = Entry<'_>> {
    cas.iter()
        .enumerate()
        .map(|(index, certificate)| Entry::Trusted {
            alias: ca_alias(index),
            certificate,
        })
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

fn encode(
    entries: &[Entry<'_>],
    password: &str,
    created_ms: u64,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let password = utf16_be(password);
    let mut out = Zeroizing::new(Vec::new());
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&VERSION.to_be_bytes());
    put_u32(&mut out, entries.len())?;
    for entry in entries {
        match entry {
            Entry::PrivateKey {
                alias,
                pkcs8,
                chain,
            } => {
                out.extend_from_slice(&TAG_PRIVATE_KEY.to_be_bytes());
                put_utf(&mut out, alias)?;
                out.extend_from_slice(&created_ms.to_be_bytes());
                let protected = protect_key(pkcs8, &password, &random_salt()?);
                put_bytes(&mut out, &protected)?;
                put_u32(&mut out, chain.len())?;
                for certificate in chain.iter() {
                    put_utf(&mut out, X509)?;
                    put_bytes(&mut out, certificate)?;
                }
            }
            Entry::Trusted { alias, certificate } => {
                out.extend_from_slice(&TAG_TRUSTED_CERTIFICATE.to_be_bytes());
                put_utf(&mut out, alias)?;
                out.extend_from_slice(&created_ms.to_be_bytes());
                put_utf(&mut out, X509)?;
                put_bytes(&mut out, certificate)?;
            }
        }
    }
    let mut integrity = digest::Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    integrity.update(&password);
    integrity.update(WHITENER);
    integrity.update(&out);
    out.extend_from_slice(integrity.finish().as_ref());
    Ok(out)
}

/// Java's `char[]` password as bytes: each UTF-16 code unit big-endian (what both the key
/// protector and the file hash digest).
fn utf16_be(password: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(
        password
            .encode_utf16()
            .flat_map(|unit| unit.to_be_bytes())
            .collect(),
    )
}

fn random_salt() -> Result<[u8; SHA1_LEN], KeyError> {
    let mut salt = [0u8; SHA1_LEN];
    aws_lc_rs::rand::fill(&mut salt)
        .map_err(|_| KeyError::Keystore("the system random source failed".into()))?;
    Ok(salt)
}

fn sha1(parts: &[&[u8]]) -> [u8; SHA1_LEN] {
    let mut context = digest::Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; SHA1_LEN];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// The JKS key protector: `salt || key XOR keystream || SHA-1(password || key)`, where the
/// keystream is `SHA-1(password || salt)`, then `SHA-1(password || previous block)`, …; wrapped in
/// an `EncryptedPrivateKeyInfo` naming the protector's OID (parameters NULL).
fn protect_key(pkcs8: &[u8], password: &[u8], salt: &[u8; SHA1_LEN]) -> Zeroizing<Vec<u8>> {
    let mut protected = Zeroizing::new(Vec::with_capacity(pkcs8.len() + 2 * SHA1_LEN));
    protected.extend_from_slice(salt);
    let mut block = *salt;
    for chunk in pkcs8.chunks(SHA1_LEN) {
        block = sha1(&[password, &block]);
        protected.extend(
            chunk
                .iter()
                .zip(block)
                .map(|(plain, stream)| plain ^ stream),
        );
    }
    protected.extend_from_slice(&sha1(&[password, pkcs8]));
    let oid = yasna::models::ObjectIdentifier::from_slice(KEY_PROTECTOR_OID);
    Zeroizing::new(yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            writer.next().write_sequence(|writer| {
                writer.next().write_oid(&oid);
                writer.next().write_null();
            });
            writer.next().write_bytes(&protected);
        })
    }))
}

/// Java's `DataOutput.writeUTF`: a u16 byte length, then "modified UTF-8" (NUL as two bytes,
/// characters outside the BMP as two three-byte surrogates).
fn put_utf(out: &mut Vec<u8>, text: &str) -> Result<(), KeyError> {
    let encoded = modified_utf8(text);
    let length = u16::try_from(encoded.len()).map_err(|_| {
        KeyError::Keystore(format!(
            "a JKS alias is at most {MAX_ALIAS_BYTES} bytes long"
        ))
    })?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&encoded);
    Ok(())
}

/// The length of `text` as Java writes it in a JKS (for validating aliases up front).
pub fn modified_utf8_len(text: &str) -> usize {
    modified_utf8(text).len()
}

fn modified_utf8(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for unit in text.encode_utf16() {
        let unit = u32::from(unit);
        match unit {
            0x0001..=0x007F => out.push(unit as u8),
            0x0000 | 0x0080..=0x07FF => {
                out.push(0xC0 | (unit >> 6) as u8);
                out.push(0x80 | (unit & 0x3F) as u8);
            }
            _ => {
                out.push(0xE0 | (unit >> 12) as u8);
                out.push(0x80 | ((unit >> 6) & 0x3F) as u8);
                out.push(0x80 | (unit & 0x3F) as u8);
            }
        }
    }
    out
}

fn put_u32(out: &mut Vec<u8>, value: usize) -> Result<(), KeyError> {
    let value = u32::try_from(value)
        .map_err(|_| KeyError::Keystore("a JKS entry is larger than 4 GiB".into()))?;
    out.extend_from_slice(&value.to_be_bytes());
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), KeyError> {
    put_u32(out, bytes.len())?;
    out.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Undoes the key protector, as Java's `KeyProtector.recover` does.
    fn recover_key(protected: &[u8], password: &[u8]) -> Option<Vec<u8>> {
        let (salt, rest) = protected.split_at(SHA1_LEN);
        let (encrypted, check) = rest.split_at(rest.len() - SHA1_LEN);
        let mut block: [u8; SHA1_LEN] = salt.try_into().ok()?;
        let mut plain = Vec::new();
        for chunk in encrypted.chunks(SHA1_LEN) {
            block = sha1(&[password, &block]);
            plain.extend(chunk.iter().zip(block).map(|(c, k)| c ^ k));
        }
        (sha1(&[password, &plain]) == check).then_some(plain)
    }

    fn encrypted_key_info(der: &[u8]) -> (Vec<u64>, Vec<u8>) {
        yasna::parse_der(der, |reader| {
            reader.read_sequence(|reader| {
                let oid = reader.next().read_sequence(|reader| {
                    let oid = reader.next().read_oid()?;
                    reader.next().read_null()?;
                    Ok(oid)
                })?;
                let bytes = reader.next().read_bytes()?;
                Ok((oid.components().clone(), bytes))
            })
        })
        .unwrap()
    }

    #[test]
    fn the_key_protector_round_trips_and_names_its_oid() {
        // 45 bytes: two whole keystream blocks and a partial one.
        let key: Vec<u8> = (0u8..45).collect();
        let password = utf16_be("changeit");
        let wrapped = protect_key(&key, &password, &[7u8; SHA1_LEN]);
        let (oid, protected) = encrypted_key_info(&wrapped);
        assert_eq!(oid, KEY_PROTECTOR_OID);
        assert_eq!(protected.len(), key.len() + 2 * SHA1_LEN);
        assert_eq!(&protected[..SHA1_LEN], &[7u8; SHA1_LEN]);
        assert_ne!(&protected[SHA1_LEN..SHA1_LEN + key.len()], &key[..]);
        assert_eq!(recover_key(&protected, &password), Some(key.clone()));
        assert_eq!(recover_key(&protected, &utf16_be("wrong")), None);
    }

    #[test]
    fn the_file_is_laid_out_as_java_reads_it() {
        let chain = vec![vec![0x30, 0x01, 0xAA], vec![0x30, 0x01, 0xBB]];
        let cas = vec![vec![0x30, 0x01, 0xCC], vec![0x30, 0x01, 0xDD]];
        let entries: Vec<Entry<'_>> = std::iter::once(Entry::PrivateKey {
            alias: "certificate",
            pkcs8: b"key",
            chain: &chain,
        })
        .chain(trusted_entries(&cas))
        .collect();
        let file = encode(&entries, "pw", 0x0102_0304_0506_0708).unwrap();

        let (body, hash) = file.split_at(file.len() - SHA1_LEN);
        assert_eq!(hash, sha1(&[&utf16_be("pw"), WHITENER, body]));
        assert_eq!(
            &body[..12],
            &[0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2, 0, 0, 0, 3]
        );
        let mut rest = &body[12..];
        let mut take = |n: usize| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head.to_vec()
        };
        assert_eq!(take(4), 1u32.to_be_bytes());
        assert_eq!(take(2 + 11), b"\0\x0bcertificate");
        assert_eq!(take(8), 0x0102_0304_0506_0708u64.to_be_bytes());
        let key_len = u32::from_be_bytes(take(4).try_into().unwrap()) as usize;
        let (_, protected) = encrypted_key_info(&take(key_len));
        assert_eq!(recover_key(&protected, &utf16_be("pw")).unwrap(), b"key");
        assert_eq!(take(4), 2u32.to_be_bytes());
        for certificate in &chain {
            assert_eq!(take(2 + 5), b"\0\x05X.509");
            assert_eq!(take(4), 3u32.to_be_bytes());
            assert_eq!(&take(3), certificate);
        }
        for (alias, certificate) in [("ca", &cas[0]), ("ca-1", &cas[1])] {
            assert_eq!(take(4), 2u32.to_be_bytes());
            assert_eq!(take(2), (alias.len() as u16).to_be_bytes());
            assert_eq!(take(alias.len()), alias.as_bytes());
            take(8);
            assert_eq!(take(2 + 5), b"\0\x05X.509");
            assert_eq!(take(4), 3u32.to_be_bytes());
            assert_eq!(&take(3), certificate);
        }
        assert!(rest.is_empty());
    }

    #[test]
    fn aliases_are_written_as_java_modified_utf8() {
        assert_eq!(modified_utf8("a\0é"), [b'a', 0xC0, 0x80, 0xC3, 0xA9]);
        // U+1F510: a surrogate pair, three bytes each.
        assert_eq!(modified_utf8("\u{1F510}").len(), 6);
        let mut out = Vec::new();
        assert!(put_utf(&mut out, &"x".repeat(MAX_ALIAS_BYTES + 1)).is_err());
    }

    #[test]
    fn ca_aliases_follow_cert_manager() {
        assert_eq!(
            (0..3).map(ca_alias).collect::<Vec<_>>(),
            ["ca", "ca-1", "ca-2"]
        );
        for taken in ["ca", "CA", "ca-1", "Ca-12"] {
            assert!(is_ca_alias(taken), "{taken}");
        }
        for free in ["certificate", "ca-", "ca-x", "cab", "my-ca"] {
            assert!(!is_ca_alias(free), "{free}");
        }
    }

    #[test]
    fn a_keystore_needs_a_certificate() {
        assert!(build_keystore(b"key", &[], &[], "certificate", "pw").is_err());
    }
}
