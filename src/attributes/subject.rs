//! Certificate subjects: the RFC 4514 `literal-subject` string and the per-field attributes
//! (`organizations`, `countries`, …), both turned into one ordered list of relative distinguished
//! names, in the order they are encoded (most significant first, e.g. `C` before `CN`).

use std::fmt;

/// An attribute type of a distinguished name, as an OID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttributeType(pub Vec<u64>);

/// How a value is encoded in DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringKind {
    Printable,
    Utf8,
}

/// The characters Go's `encoding/asn1` marshals a string as PrintableString with (it leaves out
/// `*` and `&`, which X.680 does not allow but its parser tolerates); measured with Go 1.19, kept
/// in `tests/fixtures/csr_subject/vectors.json` as `printable_ascii`.
pub const GO_PRINTABLE_PUNCTUATION: &str = " '()+,-./:=?";

/// The DER string type Go gives a value: PrintableString when every character is in
/// PrintableString's set, else UTF8String, whatever the attribute type. cert-manager and
/// jetstack's driver build every subject (`pkix.Name` and `literal-subject` alike) from Go
/// strings, so country, domain component and e-mail address follow the same rule as CN.
pub fn string_kind(value: &str) -> StringKind {
    let printable = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || GO_PRINTABLE_PUNCTUATION.contains(c));
    if printable {
        StringKind::Printable
    } else {
        StringKind::Utf8
    }
}

/// Short names for messages (`short_name`), with their OIDs. `literal-subject` accepts fewer
/// ([`LITERAL_SUBJECT_KEYWORDS`]), and a subject prints with those, so that it parses back.
const KEYWORDS: &[(&str, &[u64])] = &[
    ("CN", &[2, 5, 4, 3]),
    ("SN", &[2, 5, 4, 4]),
    ("SERIALNUMBER", &[2, 5, 4, 5]),
    ("C", &[2, 5, 4, 6]),
    ("L", &[2, 5, 4, 7]),
    ("ST", &[2, 5, 4, 8]),
    ("STREET", &[2, 5, 4, 9]),
    ("O", &[2, 5, 4, 10]),
    ("OU", &[2, 5, 4, 11]),
    ("TITLE", &[2, 5, 4, 12]),
    ("POSTALCODE", &[2, 5, 4, 17]),
    ("GIVENNAME", &[2, 5, 4, 42]),
    ("DC", &[0, 9, 2342, 19200300, 100, 1, 25]),
    ("UID", &[0, 9, 2342, 19200300, 100, 1, 1]),
    ("EMAILADDRESS", &[1, 2, 840, 113549, 1, 9, 1]),
    ("E", &[1, 2, 840, 113549, 1, 9, 1]),
];

pub const COMMON_NAME: &[u64] = &[2, 5, 4, 3];
pub const SERIAL_NUMBER: &[u64] = &[2, 5, 4, 5];
pub const COUNTRY: &[u64] = &[2, 5, 4, 6];
pub const LOCALITY: &[u64] = &[2, 5, 4, 7];
pub const PROVINCE: &[u64] = &[2, 5, 4, 8];
pub const STREET_ADDRESS: &[u64] = &[2, 5, 4, 9];
pub const ORGANIZATION: &[u64] = &[2, 5, 4, 10];
pub const ORGANIZATIONAL_UNIT: &[u64] = &[2, 5, 4, 11];
pub const POSTAL_CODE: &[u64] = &[2, 5, 4, 17];

/// Upper bounds on value lengths, in characters: RFC 5280's `ub-*` (Appendix A), X.520's where
/// RFC 5280 has none (street address, postal code), and a DNS label for domain components. Go's
/// driver has no such checks and cert-manager issues longer values, so they are warnings only.
const UPPER_BOUNDS: &[(&[u64], usize, &str)] = &[
    (COMMON_NAME, 64, "RFC 5280 ub-common-name"),
    (SERIAL_NUMBER, 64, "RFC 5280 ub-serial-number"),
    (COUNTRY, 2, "RFC 5280 ub-country-name-alpha-length"),
    (LOCALITY, 128, "RFC 5280 ub-locality-name"),
    (PROVINCE, 128, "RFC 5280 ub-state-name"),
    (STREET_ADDRESS, 128, "X.520 ub-street-address"),
    (ORGANIZATION, 64, "RFC 5280 ub-organization-name"),
    (
        ORGANIZATIONAL_UNIT,
        64,
        "RFC 5280 ub-organizational-unit-name",
    ),
    (&[2, 5, 4, 12], 64, "RFC 5280 ub-title"),
    (POSTAL_CODE, 40, "X.520 ub-postal-code"),
    (
        &[1, 2, 840, 113549, 1, 9, 1],
        255,
        "RFC 5280 ub-emailaddress-length",
    ),
    (
        &[0, 9, 2342, 19200300, 100, 1, 25],
        63,
        "RFC 1035 (a domain component is one DNS label)",
    ),
];

impl AttributeType {
    pub fn of(oid: &[u64]) -> AttributeType {
        AttributeType(oid.to_vec())
    }

    /// The most characters a value of this type may have, and where that bound comes from.
    pub fn upper_bound(&self) -> Option<(usize, &'static str)> {
        UPPER_BOUNDS
            .iter()
            .find(|(oid, _, _)| *oid == self.0.as_slice())
            .map(|(_, bound, source)| (*bound, *source))
    }

    /// A short name for messages (`CN`, `O`, …), else the dotted OID.
    pub fn short_name(&self) -> String {
        KEYWORDS
            .iter()
            .find(|(_, oid)| *oid == self.0.as_slice())
            .map(|(name, _)| name.to_string())
            .unwrap_or_else(|| {
                self.0
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(".")
            })
    }
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match LITERAL_SUBJECT_KEYWORDS
            .iter()
            .find(|(_, oid)| *oid == self.0.as_slice())
        {
            Some((name, _)) => f.write_str(name),
            None => {
                let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
                f.write_str(&parts.join("."))
            }
        }
    }
}

/// One attribute-type-and-value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeValue {
    pub kind: AttributeType,
    pub value: String,
}

/// A distinguished name: relative distinguished names in encoding order, each one or more
/// attribute values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub rdns: Vec<Vec<AttributeValue>>,
}

impl Subject {
    pub fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }

    /// Appends one RDN holding every value of `values`, as Go's `pkix.Name` does with the values
    /// of one attribute type (`O=A+O=B`); nothing when `values` is empty.
    pub fn push_all(&mut self, oid: &[u64], values: impl IntoIterator<Item = String>) {
        let rdn: Vec<AttributeValue> = values
            .into_iter()
            .map(|value| AttributeValue {
                kind: AttributeType::of(oid),
                value,
            })
            .collect();
        if !rdn.is_empty() {
            self.rdns.push(rdn);
        }
    }

    /// Appends one single-valued RDN.
    pub fn push(&mut self, oid: &[u64], value: impl Into<String>) {
        self.rdns.push(vec![AttributeValue {
            kind: AttributeType::of(oid),
            value: value.into(),
        }]);
    }

    /// The first common name, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.rdns
            .iter()
            .flatten()
            .find(|attribute| attribute.kind.0 == COMMON_NAME)
            .map(|attribute| attribute.value.as_str())
    }
}

impl fmt::Display for Subject {
    /// RFC 4514 form (most specific first), for logs and messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, rdn) in self.rdns.iter().rev().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            for (position, attribute) in rdn.iter().enumerate() {
                if position > 0 {
                    f.write_str("+")?;
                }
                write!(f, "{}=", attribute.kind)?;
                let last = attribute.value.chars().count().saturating_sub(1);
                for (index, c) in attribute.value.chars().enumerate() {
                    // RFC 4514 §2.4: specials anywhere; space at the start and the end; '#'
                    // anywhere (it need only be escaped at the start, but cert-manager refuses
                    // "=#" wherever it is, escaped `=` included).
                    let escape = ",+\"\\<>;=#".contains(c)
                        || (index == 0 && c == ' ')
                        || (index == last && c == ' ');
                    if escape {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
            }
        }
        Ok(())
    }
}

/// Splits on `separator` where it is not escaped with a backslash; escapes are kept.
fn split_unescaped(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let last = parts.last_mut().expect("never empty");
            last.push(c);
            if let Some(next) = chars.next() {
                last.push(next);
            }
        } else if c == separator {
            parts.push(String::new());
        } else {
            parts.last_mut().expect("never empty").push(c);
        }
    }
    parts
}

/// The first `"`, `<`, `>` or NUL in a raw value that no backslash escapes.
fn unescaped_special(raw: &str) -> Option<char> {
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' | '<' | '>' | '\0' => return Some(c),
            _ => {}
        }
    }
    None
}

fn hex_value(c: char) -> Option<u8> {
    c.to_digit(16).map(|d| d as u8)
}

/// Decodes an RFC 4514 attribute value: `\` followed by a special character or two hex digits.
fn unescape_value(raw: &str) -> Result<String, String> {
    // Only spaces are insignificant around a value (RFC 4514); other whitespace is content.
    let trimmed = raw.trim_start_matches(' ');
    // Trailing spaces are only kept when escaped.
    let mut bytes = Vec::with_capacity(trimmed.len());
    let mut chars = trimmed.chars().peekable();
    let mut trailing_unescaped_spaces = 0;
    while let Some(c) = chars.next() {
        if c == '\\' {
            trailing_unescaped_spaces = 0;
            let Some(next) = chars.next() else {
                return Err(format!("value {raw:?} ends with a lone backslash"));
            };
            if let Some(high) = hex_value(next)
                && let Some(low) = chars.peek().copied().and_then(hex_value)
            {
                chars.next();
                bytes.push(high * 16 + low);
            } else if "\"+,;<>\\ #=".contains(next) {
                let mut buffer = [0u8; 4];
                bytes.extend_from_slice(next.encode_utf8(&mut buffer).as_bytes());
            } else {
                return Err(format!("value {raw:?} has an invalid escape \\{next}"));
            }
        } else {
            trailing_unescaped_spaces = if c == ' ' {
                trailing_unescaped_spaces + 1
            } else {
                0
            };
            let mut buffer = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
        }
    }
    bytes.truncate(bytes.len() - trailing_unescaped_spaces);
    String::from_utf8(bytes).map_err(|_| format!("value {raw:?} is not valid UTF-8 once unescaped"))
}

/// The attribute types `literal-subject` may name, spelled exactly so: cert-manager's parser (which
/// the Go driver uses) knows these ten, case-sensitively; any other type must be a dotted OID.
const LITERAL_SUBJECT_KEYWORDS: &[(&str, &[u64])] = &[
    ("C", COUNTRY),
    ("O", ORGANIZATION),
    ("OU", ORGANIZATIONAL_UNIT),
    ("CN", COMMON_NAME),
    ("SERIALNUMBER", SERIAL_NUMBER),
    ("L", LOCALITY),
    ("ST", PROVINCE),
    ("STREET", STREET_ADDRESS),
    ("DC", &[0, 9, 2342, 19200300, 100, 1, 25]),
    ("UID", &[0, 9, 2342, 19200300, 100, 1, 1]),
];

fn parse_attribute_type(raw: &str) -> Result<AttributeType, String> {
    let name = raw.trim();
    if let Some((_, oid)) = LITERAL_SUBJECT_KEYWORDS
        .iter()
        .find(|(keyword, _)| *keyword == name)
    {
        return Ok(AttributeType::of(oid));
    }
    let arcs: Result<Vec<u64>, _> = name.split('.').map(str::parse::<u64>).collect();
    match arcs {
        // X.660: the first arc is 0, 1 or 2, and under 0 and 1 the second is below 40 (the first
        // two arcs share one encoded number, which must not overflow).
        Ok(arcs)
            if arcs.len() >= 2
                && arcs[0] <= 2
                && (arcs[0] == 2 || arcs[1] < 40)
                && arcs[1] <= u64::MAX - 80 =>
        {
            Ok(AttributeType(arcs))
        }
        _ => Err(format!(
            "has unknown attribute type {name:?}; use C, O, OU, CN, SERIALNUMBER, L, ST, STREET, DC or UID (in capitals, as cert-manager reads them) or a dotted OID such as 2.5.4.17"
        )),
    }
}

/// Parses an RFC 4514 distinguished name (`CN=app,O=Example\, Inc.,C=GB`) as cert-manager's
/// parser does for the Go driver: `,` or `;` between RDNs, `+` within one; blank is an empty
/// subject; `=#` (a hex-encoded value) anywhere, and an unescaped `"`, `<`, `>` or NUL, are refused.
pub fn parse_literal_subject(text: &str) -> Result<Subject, String> {
    if text.trim().is_empty() {
        return Ok(Subject::default());
    }
    if text.contains("=#") {
        return Err(
            "contains \"=#\" (a hex-encoded value), which cert-manager does not support".into(),
        );
    }
    let mut rdns = Vec::new();
    for rdn_text in split_unescaped(text, ',')
        .iter()
        .flat_map(|part| split_unescaped(part, ';'))
    {
        let mut rdn = Vec::new();
        for ava in split_unescaped(&rdn_text, '+') {
            let (kind, value) = ava
                .split_once('=')
                .ok_or_else(|| format!("has {:?}, which is not TYPE=value", ava.trim()))?;
            if value.trim_start_matches(' ').starts_with('#') {
                return Err(format!(
                    "has a hex-encoded value {value:?}, which is not supported"
                ));
            }
            if let Some(c) = unescaped_special(value) {
                return Err(format!(
                    "has {c:?} unescaped in value {value:?}; write it as \\{c}"
                ));
            }
            rdn.push(AttributeValue {
                kind: parse_attribute_type(kind)?,
                value: unescape_value(value)?,
            });
        }
        rdns.push(rdn);
    }
    // The string lists the most specific RDN first; the encoding is the other way round.
    rdns.reverse();
    Ok(Subject { rdns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_subject_is_reversed_into_encoding_order() {
        let subject = parse_literal_subject("CN=app.example.com,O=Example,C=GB").unwrap();
        let types: Vec<String> = subject
            .rdns
            .iter()
            .map(|rdn| rdn[0].kind.to_string())
            .collect();
        assert_eq!(types, ["C", "O", "CN"]);
        assert_eq!(subject.common_name(), Some("app.example.com"));
        assert_eq!(subject.to_string(), "CN=app.example.com,O=Example,C=GB");
    }

    #[test]
    fn escapes_and_multi_valued_rdns() {
        let subject =
            parse_literal_subject(r"CN=Smith\, John+UID=jsmith,O=Caf\C3\A9 \+ Co,OU=\#1 team\ ")
                .unwrap();
        assert_eq!(subject.rdns.len(), 3);
        assert_eq!(subject.rdns[2].len(), 2, "CN+UID is one RDN");
        assert_eq!(subject.rdns[2][0].value, "Smith, John");
        assert_eq!(subject.rdns[1][0].value, "Café + Co");
        assert_eq!(subject.rdns[0][0].value, "#1 team ");
    }

    #[test]
    fn keywords_as_cert_manager_spells_them_and_dotted_oids() {
        let subject = parse_literal_subject("CN=a;2.5.4.10=Org,2.5.4.11=Unit").unwrap();
        assert_eq!(subject.rdns[0][0].kind.0, vec![2, 5, 4, 11]);
        assert_eq!(subject.rdns[1][0].kind.0, ORGANIZATION.to_vec());
        assert_eq!(
            subject.rdns[2][0].kind.0,
            COMMON_NAME.to_vec(),
            "`;` separates RDNs"
        );
        // Blank is an empty subject (go-ldap parses it as an empty DN).
        assert!(parse_literal_subject("   ").unwrap().is_empty());
    }

    #[test]
    fn malformed_subjects_are_explained() {
        // Every one refused by cert-manager's parser too: keywords are case-sensitive and only
        // its ten; `=#` anywhere; unescaped `"`, `<`, `>`.
        for bad in [
            "CN",
            "FOO=bar",
            "cn=a",
            "Cn=a",
            "E=a@example.com",
            "EMAILADDRESS=a@example.com",
            "POSTALCODE=1",
            "TITLE=x",
            "SN=x",
            "OID.2.5.4.3=x",
            "CN=#0403616263",
            "CN=a=#b",
            "CN=say \"hi\"",
            "CN=<x>",
            r"CN=bad\q",
            "CN=trailing\\",
        ] {
            assert!(parse_literal_subject(bad).is_err(), "{bad:?}");
        }
        assert!(parse_literal_subject(r#"CN=say \"hi\" \<x\>"#).is_ok());
    }

    #[test]
    fn display_round_trips_awkward_values() {
        for value in ["#1", " padded ", "a,b+c\"d\\e<f>g;h=i", "Café"] {
            let mut subject = Subject::default();
            subject.push(ORGANIZATION, value);
            let text = subject.to_string();
            assert_eq!(parse_literal_subject(&text).unwrap(), subject, "{text}");
        }
    }

    #[test]
    fn string_kinds_follow_go_whatever_the_attribute() {
        for printable in ["GB", "app.example.com", "what?", "Q'(A)+B,-./:=? z9", ""] {
            assert_eq!(
                string_kind(printable),
                StringKind::Printable,
                "{printable:?}"
            );
        }
        for utf8 in ["*.example.com", "A&B", "a_b", "a@b", "café", "a\tb", "a;b"] {
            assert_eq!(string_kind(utf8), StringKind::Utf8, "{utf8:?}");
        }
    }

    #[test]
    fn push_all_makes_one_rdn() {
        let mut subject = Subject::default();
        subject.push_all(ORGANIZATION, ["B".to_string(), "A".to_string()]);
        subject.push_all(COUNTRY, Vec::new());
        assert_eq!(subject.rdns.len(), 1);
        assert_eq!(subject.to_string(), "O=B+O=A");
    }
}
