//! The optional PKCS#12 keystore: the volume's key and its full chain, password-protected with
//! one of cert-manager's encryption profiles.

use zeroize::Zeroizing;

use super::{KeyError, PrivateKey};
use crate::attributes::Pkcs12Profile;
use crate::certificate::pem_certificates;

/// Key derivation and MAC iterations, as cert-manager's profiles use.
const ITERATIONS: u32 = 2048;

/// Builds the keystore: the key, the leaf, any intermediates and the CA (unless the chain already
/// ends with it), under `password`.
pub fn build_keystore(
    key: &PrivateKey,
    chain_pem: &str,
    ca_pem: &str,
    password: &str,
    profile: Pkcs12Profile,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let failed = |e: &dyn std::fmt::Display| KeyError::Keystore(e.to_string());
    let mut certificates = pem_certificates(chain_pem).map_err(|e| failed(&e))?;
    if let Ok(ca) = pem_certificates(ca_pem) {
        for certificate in ca {
            if !certificates.contains(&certificate) {
                certificates.push(certificate);
            }
        }
    }
    let leaf = certificates[0].clone();
    let bytes =
        match profile {
            // RC2-40 for the certificates and 3DES for the key, SHA-1 MAC: upstream's format.
            Pkcs12Profile::LegacyRc2 => {
                let others: Vec<&[u8]> = certificates[1..].iter().map(Vec::as_slice).collect();
                p12::PFX::new_with_cas(&leaf, key.pkcs8_der(), &others, password, "")
                    .ok_or_else(|| KeyError::Keystore("PKCS#12 encoding failed".into()))?
                    .to_der()
            }
            Pkcs12Profile::LegacyDes | Pkcs12Profile::Modern2023 => {
                let (encryption, mac) = match profile {
                    Pkcs12Profile::LegacyDes => (
                        p12_keystore::EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
                        p12_keystore::MacAlgorithm::HmacSha1,
                    ),
                    _ => (
                        p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
                        p12_keystore::MacAlgorithm::HmacSha256,
                    ),
                };
                let chain = certificates
                    .iter()
                    .map(|der| p12_keystore::Certificate::from_der(der))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| failed(&e))?;
                let private_key =
                    p12_keystore::PrivateKey::from_der(key.pkcs8_der()).map_err(|e| failed(&e))?;
                let local_key_id = crate::x509::key_identifier(&leaf);
                let mut store = p12_keystore::KeyStore::new();
                store.add_entry(
                    "certificate",
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(
                        p12_keystore::PrivateKeyChain::new(local_key_id, private_key, chain),
                    ),
                );
                store
                    .writer(password)
                    .encryption_algorithm(encryption)
                    .encryption_iterations(ITERATIONS)
                    .mac_algorithm(mac)
                    .mac_iterations(ITERATIONS)
                    .write()
                    .map_err(|e| failed(&e))?
            }
        };
    Ok(Zeroizing::new(bytes))
}
