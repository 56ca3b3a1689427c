//! The certificate's subject alternative names: DNS names, IP addresses and URIs, each checked
//! for its own syntax; and a warning when nothing names the certificate.

use std::net::IpAddr;

use super::Subject;
use super::reader::{Reader, split_list, split_list_strict};
use super::spec::{ParseOptions, PodInfo, PodIpSans};
use super::table::{Part, key};

/// The names a certificate is valid for besides its subject.
pub(super) struct Sans {
    pub dns_names: Vec<String>,
    pub ip_sans: Vec<IpAddr>,
    pub pod_ip_sans: PodIpSans,
    pub uri_sans: Vec<String>,
}

pub(super) fn read(
    reader: &mut Reader<'_>,
    pod: &PodInfo,
    options: ParseOptions,
    warnings: &mut Vec<String>,
) -> Sans {
    let reader = reader.part(Part::Sans);
    let dns_names = read_dns_names(reader, pod, warnings);
    let (ip_sans, pod_ip_sans) = read_ip_sans(reader, options);
    Sans {
        dns_names,
        ip_sans,
        pod_ip_sans,
        uri_sans: read_uri_sans(reader, pod),
    }
}

/// Empty entries are dropped (the Go driver would put an empty name in the certificate).
fn read_dns_names(
    reader: &mut Reader<'_>,
    pod: &PodInfo,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    let dns_names = reader
        .expanded(key::DNS_NAMES, pod)
        .map(|value| split_list(&value))
        .unwrap_or_default();
    for name in &dns_names {
        if !name.is_ascii() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
            reader.problem(
                key::DNS_NAMES,
                Some(name),
                "is not a DNS name (ASCII without spaces or control characters; use punycode \
                 for IDNs)",
            );
        } else if name.len() > 253 || name.split('.').any(|label| label.len() > 63) {
            // The Go driver accepts these; resolvers and many issuers do not.
            warnings.push(format!(
                "{} has {name:?}, longer than a DNS name can be (253 characters, 63 per label, \
                 RFC 1035): no resolver will find it, and some issuers refuse it",
                key::DNS_NAMES
            ));
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
    for entry in split_list_strict(reader, key::IP_SANS, raw) {
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
        for entry in split_list_strict(reader, key::URI_SANS, &expanded) {
            match parse_request_uri(&entry) {
                Ok(uri) => uri_sans.push(uri),
                Err(reason) => reader.problem(
                    key::URI_SANS,
                    Some(&expanded),
                    format!("contains {entry:?}, which is not a URI: {reason}"),
                ),
            }
        }
    }
    uri_sans
}

/// A certificate that nothing names (no common name, no SAN) is accepted, as the Go driver and
/// cert-manager accept it, with a warning: only a client that trusts it by its chain alone, not
/// by a name, can use it. Checked on the parsed values, so `dns-names: ","` names nothing.
pub(super) fn warn_if_nothing_is_named(subject: &Subject, sans: &Sans, warnings: &mut Vec<String>) {
    if subject.common_name().is_none()
        && sans.dns_names.is_empty()
        && sans.ip_sans.is_empty()
        && sans.pod_ip_sans == PodIpSans::None
        && sans.uri_sans.is_empty()
    {
        warnings.push(format!(
            "the certificate names nothing: no common name and no {}, {} or {}; a client can only \
             trust it by its chain, not by a name",
            key::DNS_NAMES,
            key::IP_SANS,
            key::URI_SANS
        ));
    }
}

/// A URI SAN as Go's `url.ParseRequestURI` takes it (what the Go driver uses): `*`, an absolute
/// path, or `scheme:` and anything (with `//authority` checked for its port, its host's
/// characters and its `%` escapes, and the path for its `%` escapes). The scheme comes back in
/// lower case, as Go writes it. Unlike Go, whitespace and non-ASCII are refused rather than
/// percent-encoded (that would change the name the user wrote).
fn parse_request_uri(uri: &str) -> Result<String, String> {
    if uri.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("it contains a control character".into());
    }
    if !uri.is_ascii() || uri.contains(char::is_whitespace) {
        return Err("it contains whitespace or non-ASCII characters (percent-encode them)".into());
    }
    if uri == "*" {
        return Ok(uri.to_string());
    }
    let (scheme, rest) = split_scheme(uri)?;
    let path = rest.split_once('?').map_or(rest, |(path, _query)| path);
    if !path.starts_with('/') {
        return match scheme {
            // `scheme:opaque`, even an empty one.
            Some(scheme) => Ok(format!("{}:{rest}", scheme.to_ascii_lowercase())),
            None => Err("it has no scheme (scheme:...) and is not an absolute path".into()),
        };
    }
    let path = match (scheme, path.strip_prefix("//")) {
        (Some(_), Some(authority_and_path)) => {
            let (authority, path) = authority_and_path
                .find('/')
                .map_or((authority_and_path, ""), |slash| {
                    authority_and_path.split_at(slash)
                });
            check_authority(authority)?;
            path
        }
        _ => path,
    };
    check_escapes(path)?;
    Ok(match scheme {
        Some(scheme) => format!("{}:{rest}", scheme.to_ascii_lowercase()),
        None => uri.to_string(),
    })
}

/// Go's `getScheme`: the scheme and the rest, or no scheme (the whole URI is the rest).
fn split_scheme(uri: &str) -> Result<(Option<&str>, &str), String> {
    for (index, byte) in uri.bytes().enumerate() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if index > 0 => {}
            b':' if index == 0 => return Err("missing protocol scheme".into()),
            b':' => return Ok((Some(&uri[..index]), &uri[index + 1..])),
            _ => return Ok((None, uri)),
        }
    }
    Ok((None, uri))
}

/// `userinfo@host:port`, as Go's `parseAuthority` and `parseHost` check it.
fn check_authority(authority: &str) -> Result<(), String> {
    let (userinfo, host) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    if let Some(bracketed) = host.strip_prefix('[') {
        let close = bracketed
            .rfind(']')
            .ok_or_else(|| "missing ']' in host".to_string())?;
        check_port(&bracketed[close + 1..])?;
        check_escapes(&bracketed[..close])?;
    } else {
        if let Some(colon) = host.rfind(':') {
            check_port(&host[colon..])?;
        }
        check_host_characters(host)?;
    }
    if let Some(userinfo) = userinfo {
        let valid = |c: char| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c);
        if !userinfo.chars().all(valid) {
            return Err("invalid userinfo".into());
        }
        check_escapes(userinfo)?;
    }
    Ok(())
}

/// An optional `:digits` after the host.
fn check_port(colon_port: &str) -> Result<(), String> {
    match colon_port.strip_prefix(':') {
        _ if colon_port.is_empty() => Ok(()),
        Some(port) if port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(format!("invalid port {colon_port:?} after host")),
    }
}

/// Each `%` starts two hex digits.
fn check_escapes(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    for (index, _) in text.match_indices('%') {
        if !(index + 2 < bytes.len()
            && bytes[index + 1].is_ascii_hexdigit()
            && bytes[index + 2].is_ascii_hexdigit())
        {
            let end = (index + 3).min(text.len());
            return Err(format!("invalid URL escape {:?}", &text[index..end]));
        }
    }
    Ok(())
}

/// A host: letters, digits, `-._~`, sub-delimiters and `%` escapes of non-ASCII bytes (or `%25`).
fn check_host_characters(host: &str) -> Result<(), String> {
    check_escapes(host)?;
    let bytes = host.as_bytes();
    for (index, c) in host.char_indices() {
        if c == '%' {
            let escape = &host[index..index + 3];
            if bytes[index + 1] < b'8' && escape != "%25" {
                return Err(format!("invalid URL escape {escape:?}"));
            }
        } else if !(c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:[]<>\"".contains(c)) {
            return Err(format!(
                "invalid character {:?} in host name",
                c.to_string()
            ));
        }
    }
    Ok(())
}
