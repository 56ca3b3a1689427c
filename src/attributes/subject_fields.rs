//! Reading the subject attributes: `literal-subject` (RFC 4514, which wins), else common-name
//! and the per-field lists. Values over X.509's upper bounds are encoded as given, with a warning:
//! jetstack's driver has no bounds and cert-manager issues such names.

use super::reader::Reader;
use super::spec::PodInfo;
use super::subject::{self, Subject};
use super::table::{Part, key};

/// Subject from `literal-subject` (which wins), else from common-name and the per-field lists, as
/// Go's `pkix.Name.ToRDNSequence` lays them out: C, ST, L, STREET, postalCode, O, OU, CN,
/// serialNumber, all values of one list in one RDN.
pub(super) fn read(reader: &mut Reader<'_>, pod: &PodInfo, warnings: &mut Vec<String>) -> Subject {
    let reader = reader.part(Part::Subject);
    const FIELDS: [(&str, &[u64]); 7] = [
        (key::COUNTRIES, subject::COUNTRY),
        (key::PROVINCES, subject::PROVINCE),
        (key::LOCALITIES, subject::LOCALITY),
        (key::STREET_ADDRESSES, subject::STREET_ADDRESS),
        (key::POSTAL_CODES, subject::POSTAL_CODE),
        (key::ORGANIZATIONS, subject::ORGANIZATION),
        (key::ORGANIZATIONAL_UNITS, subject::ORGANIZATIONAL_UNIT),
    ];
    if let Some(literal) = reader.expanded(key::LITERAL_SUBJECT, pod) {
        let overridden: Vec<&str> = FIELDS
            .iter()
            .map(|(k, _)| *k)
            .chain([key::COMMON_NAME, key::SERIAL_NUMBER])
            .filter(|k| reader.get(k).is_some())
            .collect();
        if !overridden.is_empty() {
            warnings.push(format!(
                "{} is set, so {} {} ignored",
                key::LITERAL_SUBJECT,
                overridden.join(", "),
                if overridden.len() == 1 { "is" } else { "are" }
            ));
        }
        return match subject::parse_literal_subject(&literal) {
            Ok(parsed) => {
                for attribute in parsed.rdns.iter().flatten() {
                    warn_over_upper_bound(
                        warnings,
                        key::LITERAL_SUBJECT,
                        &attribute.kind.0,
                        &attribute.value,
                    );
                }
                parsed
            }
            Err(reason) => {
                let raw = reader.get(key::LITERAL_SUBJECT);
                reader.problem(key::LITERAL_SUBJECT, raw, reason);
                Subject::default()
            }
        };
    }
    let mut parsed = Subject::default();
    for (attribute, oid) in FIELDS {
        // As the Go driver reads them: an empty value is no value; otherwise every comma
        // separates (no escaping), and each entry is kept as written, spaces and empty entries
        // included, so that a pod spec gets the subject DN it had.
        if reader.get(attribute).is_none_or(str::is_empty) {
            continue;
        }
        if let Some(value) = reader.expanded(attribute, pod) {
            let entries: Vec<String> = value.split(',').map(str::to_string).collect();
            for entry in &entries {
                warn_over_upper_bound(warnings, attribute, oid, entry);
            }
            parsed.push_all(oid, entries);
        }
    }
    if let Some(common_name) = reader
        .expanded(key::COMMON_NAME, pod)
        .filter(|cn| !cn.is_empty())
    {
        warn_over_upper_bound(
            warnings,
            key::COMMON_NAME,
            subject::COMMON_NAME,
            &common_name,
        );
        parsed.push(subject::COMMON_NAME, common_name);
    }
    // As written (no variables, no trimming); empty is no serial number.
    match reader.get(key::SERIAL_NUMBER) {
        None | Some("") => {}
        Some(serial) => {
            let serial = serial.to_string();
            warn_over_upper_bound(
                warnings,
                key::SERIAL_NUMBER,
                subject::SERIAL_NUMBER,
                &serial,
            );
            parsed.push(subject::SERIAL_NUMBER, serial)
        }
    }
    parsed
}

/// X.509's upper bounds on subject values: a longer value is kept (Go's driver and cert-manager
/// accept it; some TLS stacks may not) and named in a warning with the bound and its source.
fn warn_over_upper_bound(warnings: &mut Vec<String>, key: &str, oid: &[u64], value: &str) {
    let kind = subject::AttributeType::of(oid);
    if let Some((bound, source)) = kind.upper_bound() {
        let length = value.chars().count();
        if length > bound {
            warnings.push(format!(
                "{key} has a {} of {length} characters, over the {bound} {source} allows; \
                 it is requested as given",
                kind.short_name()
            ));
        }
    }
}
