//! The certificate's subject alternative names: DNS names, IP addresses and URIs, each checked
//! for its own syntax; and the rule that something must name the certificate.

use std::net::IpAddr;

use super::Subject;
use super::reader::{Reader, split_list};
use super::spec::PodInfo;
use super::table::{Part, key};

/// The names a certificate is valid for besides its subject.
pub(super) struct Sans {
    pub dns_names: Vec<String>,
    pub ip_sans: Vec<IpAddr>,
    pub uri_sans: Vec<String>,
}

pub(super) fn read(reader: &mut Reader<'_>, pod: &PodInfo) -> Sans {
    let reader = reader.part(Part::Sans);
    Sans {
        dns_names: read_dns_names(reader, pod),
        ip_sans: read_ip_sans(reader),
        uri_sans: read_uri_sans(reader, pod),
    }
}

fn read_dns_names(reader: &mut Reader<'_>, pod: &PodInfo) -> Vec<String> {
    let dns_names = reader
        .expanded(key::DNS_NAMES, pod)
        .map(|value| split_list(&value))
        .unwrap_or_default();
    for name in &dns_names {
        if !name.is_ascii()
            || name.contains(|c: char| c.is_whitespace() || c.is_control())
            || name.len() > 253
            || name.split('.').any(|label| label.len() > 63)
        {
            reader.problem(
                key::DNS_NAMES,
                Some(name),
                "is not a DNS name (ASCII without spaces, at most 253 characters and 63 per \
                 label, RFC 1035; use punycode for IDNs)",
            );
        }
    }
    dns_names
}

fn read_ip_sans(reader: &mut Reader<'_>) -> Vec<IpAddr> {
    let mut ip_sans = Vec::new();
    if let Some(raw) = reader.get(key::IP_SANS) {
        for entry in split_list(raw) {
            match entry.parse::<IpAddr>() {
                Ok(ip) => ip_sans.push(ip),
                Err(_) => reader.problem(
                    key::IP_SANS,
                    Some(raw),
                    format!("contains {entry:?}, which is not an IPv4 or IPv6 address"),
                ),
            }
        }
    }
    ip_sans
}

fn read_uri_sans(reader: &mut Reader<'_>, pod: &PodInfo) -> Vec<String> {
    let mut uri_sans = Vec::new();
    if let Some(expanded) = reader.expanded(key::URI_SANS, pod) {
        for entry in split_list(&expanded) {
            if is_absolute_uri(&entry)
                && entry.is_ascii()
                && !entry.contains(|c: char| c.is_control())
            {
                uri_sans.push(entry);
            } else {
                reader.problem(
                    key::URI_SANS,
                    Some(&expanded),
                    format!("contains {entry:?}, which is not an absolute URI (scheme:...)"),
                );
            }
        }
    }
    uri_sans
}

/// Something must name the certificate, as cert-manager requires: a common name (from
/// common-name or inside literal-subject) or at least one SAN. Checked on the parsed values, so
/// `dns-names: ","` does not count.
pub(super) fn check_something_is_named(reader: &mut Reader<'_>, subject: &Subject, sans: &Sans) {
    if subject.common_name().is_none()
        && sans.dns_names.is_empty()
        && sans.ip_sans.is_empty()
        && sans.uri_sans.is_empty()
    {
        let dns_names = reader.part(Part::Sans).get(key::DNS_NAMES);
        reader.problem(
            key::DNS_NAMES,
            dns_names,
            "names nothing: set common-name (or a CN in literal-subject), dns-names, ip-sans or uri-sans",
        );
    }
}

/// `scheme:rest` with a valid scheme (RFC 3986 §3.1) and something after it.
fn is_absolute_uri(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !value.contains(char::is_whitespace)
}
