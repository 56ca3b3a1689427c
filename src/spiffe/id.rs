//! A SPIFFE ID as csi-driver-spiffe hands them out: `spiffe://<trust domain>/ns/<namespace>/sa/<name>`.
//!
//! Parsing is strict on purpose: the approver compares what a CSR asks for with what the requester
//! may have, and anything that could be read two ways (upper case, a port, a query, `..`, empty or
//! percent-encoded segments, a trailing slash) is refused rather than normalised.

use std::fmt;

/// The SPIFFE specification's limit on a whole SPIFFE ID (and so on its trust domain).
const MAX_ID_LENGTH: usize = 2048;

/// A trust domain, valid per the SPIFFE ID specification: lowercase letters, digits, `.`, `-`
/// and `_`, not empty, at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrustDomain(String);

impl TrustDomain {
    pub fn new(name: &str) -> Result<TrustDomain, SpiffeIdError> {
        if name.is_empty() {
            return Err(SpiffeIdError::EmptyTrustDomain);
        }
        if name.len() > 255 {
            return Err(SpiffeIdError::TooLong);
        }
        if let Some(bad) = name.chars().find(|c| !is_trust_domain_char(*c)) {
            return Err(SpiffeIdError::TrustDomainCharacter {
                trust_domain: name.to_string(),
                character: bad,
            });
        }
        Ok(TrustDomain(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TrustDomain {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrustDomain::new(s)
    }
}

fn is_trust_domain_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
}

/// The characters the SPIFFE specification allows in a path segment.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// Why a text is not a csi-driver-spiffe SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    /// The scheme is not exactly `spiffe://`.
    #[error("{0:?} does not start with spiffe://")]
    Scheme(String),
    #[error("the trust domain is empty")]
    EmptyTrustDomain,
    /// A character the specification does not allow (upper case, `:` for a port, `@`, …).
    #[error(
        "trust domain {trust_domain:?} holds {character:?}: only lowercase letters, digits, '.', '-' and '_' are allowed"
    )]
    TrustDomainCharacter {
        trust_domain: String,
        character: char,
    },
    /// The path is not `/ns/<namespace>/sa/<name>` with two valid segments.
    #[error("{0:?} is not of the form spiffe://<trust domain>/ns/<namespace>/sa/<service account>")]
    Path(String),
    #[error("longer than {MAX_ID_LENGTH} bytes")]
    TooLong,
}

/// The identity of a Kubernetes service account in a trust domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    trust_domain: TrustDomain,
    namespace: String,
    service_account: String,
}

impl SpiffeId {
    /// The ID of `service_account` in `namespace`. Both must be valid path segments (Kubernetes
    /// names always are).
    pub fn new(
        trust_domain: TrustDomain,
        namespace: &str,
        service_account: &str,
    ) -> Result<SpiffeId, SpiffeIdError> {
        let id = SpiffeId {
            trust_domain,
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
        };
        if !valid_segment(namespace) || !valid_segment(service_account) {
            return Err(SpiffeIdError::Path(id.to_string()));
        }
        if id.to_string().len() > MAX_ID_LENGTH {
            return Err(SpiffeIdError::TooLong);
        }
        Ok(id)
    }

    /// Parses `spiffe://<td>/ns/<ns>/sa/<sa>` exactly: no other path, no query, fragment, port
    /// or user info, nothing percent-encoded, no trailing slash.
    pub fn parse(text: &str) -> Result<SpiffeId, SpiffeIdError> {
        if text.len() > MAX_ID_LENGTH {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = text
            .strip_prefix("spiffe://")
            .ok_or_else(|| SpiffeIdError::Scheme(text.to_string()))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let trust_domain = TrustDomain::new(authority)?;
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["ns", namespace, "sa", service_account]
                if valid_segment(namespace) && valid_segment(service_account) =>
            {
                Ok(SpiffeId {
                    trust_domain,
                    namespace: namespace.to_string(),
                    service_account: service_account.to_string(),
                })
            }
            _ => Err(SpiffeIdError::Path(text.to_string())),
        }
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn service_account(&self) -> &str {
        &self.service_account
    }
}

/// A path segment the specification allows: not empty, not `.` or `..`, only `[A-Za-z0-9._-]`.
fn valid_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".." && segment.chars().all(is_path_char)
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn td(name: &str) -> TrustDomain {
        TrustDomain::new(name).unwrap()
    }

    #[test]
    fn builds_and_prints_the_service_account_identity() {
        let id = SpiffeId::new(td("cluster.local"), "sandbox", "sleep").unwrap();
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/sandbox/sa/sleep");
        assert_eq!(SpiffeId::parse(&id.to_string()), Ok(id));
    }

    #[test]
    fn parses_the_parts() {
        let id = SpiffeId::parse("spiffe://foo.bar_baz-1/ns/my-ns/sa/my.sa_1").unwrap();
        assert_eq!(id.trust_domain().as_str(), "foo.bar_baz-1");
        assert_eq!(id.namespace(), "my-ns");
        assert_eq!(id.service_account(), "my.sa_1");
    }

    #[test]
    fn trust_domains_follow_the_spiffe_spec() {
        for good in ["cluster.local", "example.org", "a", "td_1-2.x", "0"] {
            assert!(TrustDomain::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Cluster.local",
            "example.org:8080",
            "user@example.org",
            "exa mple",
            "example.org/",
            "ex%41mple",
            "ëxample",
        ] {
            assert!(TrustDomain::new(bad).is_err(), "{bad:?}");
        }
        assert!(TrustDomain::new(&"a".repeat(256)).is_err());
    }

    #[test]
    fn refuses_anything_that_is_not_exactly_ns_and_sa() {
        for bad in [
            "",
            "spiffe:/cluster.local/ns/a/sa/b",
            "SPIFFE://cluster.local/ns/a/sa/b",
            "https://cluster.local/ns/a/sa/b",
            "spiffe://Cluster.local/ns/a/sa/b",
            "spiffe://cluster.local:443/ns/a/sa/b",
            "spiffe://user@cluster.local/ns/a/sa/b",
            "spiffe:///ns/a/sa/b",
            "spiffe://cluster.local",
            "spiffe://cluster.local/",
            "spiffe://cluster.local/ns/a/sa/b/",
            "spiffe://cluster.local/ns/a/sa/b/c",
            "spiffe://cluster.local/ns/a/sa/",
            "spiffe://cluster.local/ns//sa/b",
            "spiffe://cluster.local/ns/../sa/b",
            "spiffe://cluster.local/ns/./sa/b",
            "spiffe://cluster.local/ns/a%2Fb/sa/c",
            "spiffe://cluster.local/ns/a/sa/b?x=1",
            "spiffe://cluster.local/ns/a/sa/b#x",
            "spiffe://cluster.local/sa/b/ns/a",
            "spiffe://cluster.local//ns/a/sa/b",
            "spiffe://cluster.local/NS/a/sa/b",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("spiffe://cluster.local/ns/a/sa/{}", "b".repeat(2048));
        assert_eq!(SpiffeId::parse(&long), Err(SpiffeIdError::TooLong));
    }

    #[test]
    fn refuses_invalid_segments_when_building() {
        assert!(SpiffeId::new(td("cluster.local"), "", "b").is_err());
        assert!(SpiffeId::new(td("cluster.local"), "a/b", "c").is_err());
        assert!(SpiffeId::new(td("cluster.local"), "a", "..").is_err());
    }

    #[test]
    fn errors_name_the_problem() {
        let error = SpiffeId::parse("spiffe://Cluster.local/ns/a/sa/b").unwrap_err();
        assert!(error.to_string().contains("'C'"), "{error}");
        let error = SpiffeId::parse("spiffe://cluster.local/ns/a").unwrap_err();
        assert!(error.to_string().contains("/ns/<namespace>/sa/"), "{error}");
    }
}
