//! What the certificate is for and how long it lives: duration, renew-before, the CA flag and
//! the key usages.

use std::time::Duration;

use super::reader::{Reader, split_list_strict};
use super::spec::KeyUsage;
use super::table::{Part, key};
use super::{format_go_duration, parse_go_duration};

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
        renew_before: read_renew_before(reader),
        is_ca: reader.boolean(key::IS_CA),
        usages: read_usages(reader),
    }
}

/// `renew-before`: any duration from 0, as the Go driver takes it. Renewal is then at
/// `notAfter − renew-before` (`renewal::renewal_time`), so `0s` renews when the certificate
/// expires. Unlike `duration`, an empty value is a problem (the Go driver fails on it too, after
/// issuing), and a negative one (a certificate served after it expired) is refused.
fn read_renew_before(reader: &mut Reader<'_>) -> Option<Duration> {
    let raw = reader.get(key::RENEW_BEFORE)?;
    // `-0s` is Go's zero too; any other negative value is refused.
    let unsigned = raw.strip_prefix('-').unwrap_or(raw);
    match parse_go_duration(unsigned) {
        Ok(value) if value.is_zero() || unsigned.len() == raw.len() => Some(value),
        Ok(_) => {
            reader.problem(key::RENEW_BEFORE, Some(raw), "must not be negative");
            None
        }
        Err(reason) => {
            reader.problem(key::RENEW_BEFORE, Some(raw), reason);
            None
        }
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
