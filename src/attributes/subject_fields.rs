//! Reading the subject attributes: `literal-subject` (RFC 4514, which wins), else common-name
//! and the per-field lists; every value held to X.509's upper bounds.

use super::reader::Reader;
use super::spec::PodInfo;
use super::subject::{self, Subject};
use super::table::{Part, key};

/// Subject from `literal-subject` (which wins), else from common-name and the per-field lists, in
/// the order Go's `pkix.Name` encodes them (what cert-manager produces).
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
                    check_upper_bound(
                        reader,
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
        if let Some(value) = reader.expanded(attribute, pod) {
            for entry in subject::split_escaped_list(&value) {
                check_upper_bound(reader, attribute, oid, &entry);
                parsed.push(oid, entry);
            }
        }
    }
    if let Some(common_name) = reader
        .expanded(key::COMMON_NAME, pod)
        .filter(|cn| !cn.is_empty())
    {
        check_upper_bound(reader, key::COMMON_NAME, subject::COMMON_NAME, &common_name);
        parsed.push(subject::COMMON_NAME, common_name);
    }
    match reader.get(key::SERIAL_NUMBER) {
        None => {}
        Some(serial) if !serial.trim().is_empty() => {
            let serial = serial.trim().to_string();
            check_upper_bound(reader, key::SERIAL_NUMBER, subject::SERIAL_NUMBER, &serial);
            parsed.push(subject::SERIAL_NUMBER, serial)
        }
        Some(serial) => reader.problem(key::SERIAL_NUMBER, Some(serial), "must not be empty"),
    }
    parsed
}

/// X.509's upper bounds on subject values are validation rules: a longer value is reported with
/// the bound and where it comes from.
fn check_upper_bound(reader: &mut Reader<'_>, key: &str, oid: &[u64], value: &str) {
    let kind = subject::AttributeType::of(oid);
    if let Some((bound, source)) = kind.upper_bound() {
        let length = value.chars().count();
        if length > bound {
            reader.problem(
                key,
                Some(value),
                format!(
                    "has a {} of {length} characters; {source} allows at most {bound}",
                    kind.short_name()
                ),
            );
        }
    }
}
