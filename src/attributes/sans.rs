//! The certificate's subject alternative names: DNS names, IP addresses and URIs, each checked
//! for its own syntax; and the rule that something must name the certificate.

use std::net::IpAddr;

use super::Subject;
use super::reader::{Reader, split_list};
use super::spec::{ParseOptions, PodInfo, PodIpSans};
use super::table::{Part, key};

/// The names a certificate is valid for besides its subject.
pub(super) struct Sans {
    pub dns_names: Vec<String>,
    pub ip_sans: Vec<IpAddr>,
    pub pod_ip_sans: PodIpSans,
    pub uri_sans: Vec<String>,
}

pub(super) fn read(reader: &mut Reader<'_>, pod: &PodInfo, options: ParseOptions) -> Sans {
    let reader = reader.part(Part::Sans);
    let dns_names = read_dns_names(reader, pod);
    let (ip_sans, pod_ip_sans) = read_ip_sans(reader, options);
    Sans {
        dns_names,
        ip_sans,
        pod_ip_sans,
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

/// Addresses, and `${POD_IP}` / `${POD_IPS}` (each a whole entry) for the pod's own.
fn read_ip_sans(reader: &mut Reader<'_>, options: ParseOptions) -> (Vec<IpAddr>, PodIpSans) {
    let mut ip_sans = Vec::new();
    let mut pod_ip_sans = PodIpSans::None;
    let Some(raw) = reader.get(key::IP_SANS) else {
        return (ip_sans, pod_ip_sans);
    };
    for entry in split_list(raw) {
        let own = match entry.as_str() {
            "${POD_IP}" | "$POD_IP" => Some(PodIpSans::Primary),
            "${POD_IPS}" | "$POD_IPS" => Some(PodIpSans::All),
            _ => None,
        };
        if let Some(own) = own {
            match options.pod_ip_wait.missing() {
                // Both asked: all of them.
                None => pod_ip_sans = pod_ip_sans.max(own),
                Some(flags) => reader.problem(
                    key::IP_SANS,
                    Some(raw),
                    format!(
                        "uses {entry}, but the pod has no address when its volume is published: \
                         the driver must run with {flags} to wait for it"
                    ),
                ),
            }
            continue;
        }
        match entry.parse::<IpAddr>() {
            Ok(ip) => ip_sans.push(ip),
            Err(_) if entry.contains('$') => reader.problem(
                key::IP_SANS,
                Some(raw),
                format!(
                    "contains {entry:?}: the variables of ip-sans are ${{POD_IP}} and \
                     ${{POD_IPS}}, each as a whole entry"
                ),
            ),
            Err(_) => reader.problem(
                key::IP_SANS,
                Some(raw),
                format!("contains {entry:?}, which is not an IPv4 or IPv6 address"),
            ),
        }
    }
    (ip_sans, pod_ip_sans)
}

fn read_uri_sans(reader: &mut Reader<'_>, pod: &PodInfo) -> Vec<String> {
    let mut uri_sans = Vec::new();
    if let Some(expanded) = reader.expanded(key::URI_SANS, pod) {
        for entry in split_list(&expanded) {
            if is_absolute_uri(&entry)
                && entry.is_ascii()
                && !entry.contains(|c: char| c.is_control())
            {
                // Go's url.URL.String() (what jetstack's driver puts in the CSR) writes the scheme
                // in lower case; the rest as given.
                let (scheme, rest) = entry.split_once(':').expect("an absolute URI");
                uri_sans.push(format!("{}:{rest}", scheme.to_ascii_lowercase()));
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
        && sans.pod_ip_sans == PodIpSans::None
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
