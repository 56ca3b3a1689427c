//! What the certificate is for and how long it lives: duration, renew-before, the CA flag and
//! the key usages.

use std::time::Duration;

use super::format_go_duration;
use super::reader::{Reader, split_list_strict};
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
pub(super) fn read(
    reader: &mut Reader<'_>,
    default_duration: Duration,
    warnings: &mut Vec<String>,
) -> CertificateTerms {
    let reader = reader.part(Part::Certificate);
    let duration = reader.duration(key::DURATION);
    if let Some(short) = duration.filter(|duration| *duration < Duration::from_secs(1)) {
        // The Go driver sends it as written; so does this driver, and says what comes of it.
        warnings.push(format!(
            "{} is {}: certificates carry whole seconds, so cert-manager's CA and SelfSigned \
             issuers sign one that has expired when it arrives (it is renewed after the longest \
             retry delay, not in a loop); issuers such as Vault may use their default instead",
            key::DURATION,
            format_go_duration(short)
        ));
    }
    CertificateTerms {
        duration: duration.unwrap_or(default_duration),
        // From 0 as the Go driver takes it: renewal at `notAfter − renew-before`
        // (`renewal::renewal_time`), so `0s` renews when the certificate expires. A negative one
        // (a certificate served after it expired) is refused; an empty one is a problem, as it is
        // for the Go driver (after issuing).
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
    for name in split_list_strict(reader, key::KEY_USAGES, raw) {
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
    // Each entry is a usage or a problem, so an accepted list is never empty.
    usages
}
