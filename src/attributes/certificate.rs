//! What the certificate is for and how long it lives: duration, renew-before, the CA flag and
//! the key usages.

use std::time::Duration;

use super::reader::{Reader, split_list};
use super::spec::KeyUsage;
use super::table::{Part, key};

/// The certificate's properties other than its names and key.
pub(super) struct CertificateTerms {
    pub duration: Duration,
    pub renew_before: Option<Duration>,
    pub is_ca: bool,
    pub usages: Vec<KeyUsage>,
}

/// `default_duration` applies without a `duration` attribute (`--default-duration`).
pub(super) fn read(reader: &mut Reader<'_>, default_duration: Duration) -> CertificateTerms {
    let reader = reader.part(Part::Certificate);
    CertificateTerms {
        duration: reader.duration(key::DURATION).unwrap_or(default_duration),
        renew_before: reader.duration(key::RENEW_BEFORE),
        is_ca: reader.boolean(key::IS_CA),
        usages: read_usages(reader),
    }
}

fn read_usages(reader: &mut Reader<'_>) -> Vec<KeyUsage> {
    let Some(raw) = reader.get(key::KEY_USAGES) else {
        return vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];
    };
    let mut usages = Vec::new();
    for name in split_list(raw) {
        match KeyUsage::from_name(&name) {
            Some(usage) if !usages.contains(&usage) => usages.push(usage),
            Some(_) => {}
            None => reader.problem(
                key::KEY_USAGES,
                Some(raw),
                format!(
                    "contains unknown usage {name:?}; known usages: {}",
                    KeyUsage::ALL.map(KeyUsage::name).join(", ")
                ),
            ),
        }
    }
    if usages.is_empty() {
        reader.problem(key::KEY_USAGES, Some(raw), "must name at least one usage");
    }
    usages
}
