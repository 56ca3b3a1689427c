//! The keystore and truststore files a volume asks for (PKCS#12, JKS), built from the key, the
//! chain and the CA the issuer returned, so every mode (embedded CA, cert-manager, adopted
//! volumes) writes them into the same atomic file set as the PEM files.

use zeroize::Zeroizing;

use super::{KeyError, PrivateKey, jks, pkcs12};
use crate::attributes::CertRequestSpec;
use crate::certificate::pem_certificates;

/// One keystore file of the set.
pub struct StoreFile {
    pub name: String,
    pub contents: Zeroizing<Vec<u8>>,
    /// Holds the private key (a keystore), so it gets the key file's mode; a truststore does not.
    pub secret: bool,
}

impl std::fmt::Debug for StoreFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreFile")
            .field("name", &self.name)
            .field("bytes", &self.contents.len())
            .field("secret", &self.secret)
            .finish()
    }
}

/// Every keystore and truststore `spec` asks for. Truststores need the CA: when the issuer
/// returned none (`ca_pem` empty or without a certificate) they are left out of the set (as
/// cert-manager leaves `truststore.*` out of the Secret), and the keystores hold no CA entries.
pub fn build(
    spec: &CertRequestSpec,
    key: &PrivateKey,
    chain_pem: &str,
    ca_pem: &str,
) -> Result<Vec<StoreFile>, KeyError> {
    let cas = pem_certificates(ca_pem).unwrap_or_default();
    let mut files = Vec::new();
    if let Some(store) = &spec.pkcs12 {
        let password = &store.password.0;
        files.push(StoreFile {
            name: store.file_name.clone(),
            contents: pkcs12::build_keystore(key, chain_pem, ca_pem, password, store.profile)?,
            secret: true,
        });
        if let Some(name) = store.truststore.as_ref().filter(|_| !cas.is_empty()) {
            files.push(StoreFile {
                name: name.clone(),
                contents: Zeroizing::new(pkcs12::build_truststore(&cas, password, store.profile)?),
                secret: false,
            });
        }
    }
    if let Some(store) = &spec.jks {
        let password = &store.password.0;
        let chain = pem_certificates(chain_pem).map_err(|e| KeyError::Keystore(e.to_string()))?;
        files.push(StoreFile {
            name: store.file_name.clone(),
            contents: jks::build_keystore(key.pkcs8_der(), &chain, &cas, &store.alias, password)?,
            secret: true,
        });
        if let Some(name) = store.truststore.as_ref().filter(|_| !cas.is_empty()) {
            files.push(StoreFile {
                name: name.clone(),
                contents: Zeroizing::new(jks::build_truststore(&cas, password)?),
                secret: false,
            });
        }
    }
    Ok(files)
}
