//! The SPIFFE request builder: a volume context → the [`VolumeAttributes`] the volume manager
//! issues from. The pod's identity comes from kubelet's pod info (kept in the volume's record, so
//! a resting volume's renewal builds the same request); when kubelet passes the pod's token (a
//! publish, a republish), its claims must name the same namespace and service account.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::claims;
use crate::attributes::{
    AttributeProblem, CertRequestSpec, FileNames, InvalidAttributes, IssuerRef, KUBELET_PREFIX,
    KeyAlgorithm, KeyEncoding, KeySpec, KeyUsage, PodInfo, PodIpSans, Subject, VolumeAttributes,
    key,
};
use crate::kubernetes::token;
use crate::spiffe::id::{SpiffeId, TrustDomain};

/// The one volume attribute of its own this driver reads.
pub const FS_GROUP: &str = "spiffe.csi.cert-manager.io/fs-group";
/// The annotation carrying the requested identity (the approver's cue).
pub const IDENTITY_ANNOTATION: &str = "spiffe.csi.cert-manager.io/identity";
/// Extra annotations under this prefix are refused (upstream's `annotations.Prefix`).
pub const ANNOTATION_PREFIX: &str = "spiffe.csi.cert-manager.io";

/// Usages of every request, in the order upstream sends them.
pub const USAGES: [KeyUsage; 4] = [
    KeyUsage::DigitalSignature,
    KeyUsage::KeyEncipherment,
    KeyUsage::ServerAuth,
    KeyUsage::ClientAuth,
];

/// ECDSA P-256, PKCS#8 (`PRIVATE KEY`): the only key upstream makes.
pub const KEY: KeySpec = KeySpec {
    algorithm: KeyAlgorithm::Ecdsa,
    size: 256,
    encoding: KeyEncoding::Pkcs8,
};

/// What every request of this node is built with (from the flags).
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub trust_domain: TrustDomain,
    pub duration: Duration,
    pub files: FileNames,
    /// `--extra-certificate-request-annotations`, with the refused keys already dropped.
    pub annotations: BTreeMap<String, String>,
}

/// Drops the extra annotations whose key starts with [`ANNOTATION_PREFIX`] (as upstream does:
/// logged, not fatal); returns what remains and the refused keys.
pub fn sanitize_annotations(
    extra: BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let (refused, kept): (BTreeMap<_, _>, BTreeMap<_, _>) = extra
        .into_iter()
        .partition(|(key, _)| key.starts_with(ANNOTATION_PREFIX));
    (kept, refused.into_keys().collect())
}

/// Parses `k=v,k2=v2` (pflag's stringToString; empty = none).
pub fn parse_annotations(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut annotations = BTreeMap::new();
    for pair in text.split(',').filter(|pair| !pair.trim().is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("{pair:?} has an empty key"));
        }
        annotations.insert(key.to_string(), value.to_string());
    }
    Ok(annotations)
}

impl RequestTemplate {
    /// The attributes of one volume, or every problem with its context. `issuer` is the one
    /// active now (a placeholder when none is: the issuance then says so, see
    /// [`super::SpiffeIssuer`]).
    pub fn build(
        &self,
        context: &HashMap<String, String>,
        issuer: IssuerRef,
    ) -> Result<VolumeAttributes, InvalidAttributes> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, value: Option<&str>, reason: String| {
            problems.push(AttributeProblem {
                key: key.to_string(),
                value: value.map(str::to_string),
                reason,
            })
        };
        match context.get(key::EPHEMERAL).map(String::as_str) {
            Some("true") => {}
            other => problem(
                key::EPHEMERAL,
                other,
                "must be \"true\": this driver only serves CSI ephemeral inline volumes".into(),
            ),
        }
        let mut required = |name: &str| match context.get(name) {
            Some(value) if !value.is_empty() => value.clone(),
            _ => {
                problem(
                    name,
                    None,
                    "is missing: kubelet must pass pod info (podInfoOnMount: true on the \
                     CSIDriver)"
                        .into(),
                );
                String::new()
            }
        };
        let pod = PodInfo {
            name: required(key::POD_NAME),
            namespace: required(key::POD_NAMESPACE),
            uid: required(key::POD_UID),
            service_account: Some(required(key::SERVICE_ACCOUNT_NAME)),
        };
        let service_account = pod.service_account.clone().unwrap_or_default();
        let mut fs_group = None;
        for (name, value) in context {
            if name == FS_GROUP {
                fs_group = match value.parse::<u64>() {
                    Ok(gid) if (1..=u64::from(u32::MAX)).contains(&gid) => u32::try_from(gid).ok(),
                    _ => {
                        problem(
                            FS_GROUP,
                            Some(value),
                            "must be a group ID from 1 to 4294967295".into(),
                        );
                        None
                    }
                };
            } else if !name.starts_with(KUBELET_PREFIX) {
                problem(
                    name,
                    None,
                    format!(
                        "is not an attribute of this driver: the only one it reads is {FS_GROUP} \
                         (the identity is the pod's service account)"
                    ),
                );
            }
        }
        // The token, when kubelet passed one, must be the pod's.
        if context.contains_key(key::SERVICE_ACCOUNT_TOKENS) {
            match token::from_volume_context(context) {
                Ok(token) => {
                    use secrecy::ExposeSecret;
                    match claims::identity(token.secret().expose_secret()) {
                        Ok(claimed) => {
                            if !pod.namespace.is_empty()
                                && !service_account.is_empty()
                                && (claimed.namespace != pod.namespace
                                    || claimed.service_account != service_account)
                            {
                                problem(
                                    key::SERVICE_ACCOUNT_TOKENS,
                                    None,
                                    format!(
                                        "holds a token for service account {}/{}, but the pod \
                                         runs as {}/{} ({} and {})",
                                        claimed.namespace,
                                        claimed.service_account,
                                        pod.namespace,
                                        service_account,
                                        key::POD_NAMESPACE,
                                        key::SERVICE_ACCOUNT_NAME
                                    ),
                                );
                            }
                        }
                        Err(error) => problem(
                            key::SERVICE_ACCOUNT_TOKENS,
                            None,
                            format!("holds a token that {error}"),
                        ),
                    }
                }
                Err(error) => problem(key::SERVICE_ACCOUNT_TOKENS, None, error.to_string()),
            }
        }
        let id = if pod.namespace.is_empty() || service_account.is_empty() {
            None
        } else {
            match SpiffeId::new(self.trust_domain.clone(), &pod.namespace, &service_account) {
                Ok(id) => Some(id),
                Err(error) => {
                    problem(
                        key::SERVICE_ACCOUNT_NAME,
                        Some(&service_account),
                        format!("makes no SPIFFE ID: {error}"),
                    );
                    None
                }
            }
        };
        problems.sort_by(|a, b| a.key.cmp(&b.key));
        let Some(id) = id.filter(|_| problems.is_empty()) else {
            return Err(InvalidAttributes(problems));
        };
        let id = id.to_string();
        let mut annotations = self.annotations.clone();
        annotations.insert(IDENTITY_ANNOTATION.to_string(), id.clone());
        Ok(VolumeAttributes {
            pod,
            spec: CertRequestSpec {
                issuer,
                subject: Subject::default(),
                dns_names: Vec::new(),
                ip_sans: Vec::new(),
                pod_ip_sans: PodIpSans::None,
                uri_sans: vec![id],
                duration: self.duration,
                renew_before: None,
                is_ca: false,
                usages: USAGES.to_vec(),
                key: KEY,
                files: self.files.clone(),
                fs_group,
                reuse_private_key: false,
                pkcs12: None,
                jks: None,
                annotations,
            },
            unknown_keys: Vec::new(),
            warnings: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> RequestTemplate {
        RequestTemplate {
            trust_domain: TrustDomain::new("cluster.local").unwrap(),
            duration: Duration::from_secs(3600),
            files: FileNames {
                certificate: "tls.crt".into(),
                private_key: "tls.key".into(),
                ca: "ca.crt".into(),
            },
            annotations: BTreeMap::from([("team".into(), "a".into())]),
        }
    }

    fn issuer() -> IssuerRef {
        IssuerRef {
            name: "spiffe-ca".into(),
            kind: "ClusterIssuer".into(),
            group: "cert-manager.io".into(),
        }
    }

    fn context(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut context: HashMap<String, String> = [
            (key::EPHEMERAL, "true"),
            (key::POD_NAME, "sleep-1"),
            (key::POD_NAMESPACE, "sandbox"),
            (key::POD_UID, "uid-1"),
            (key::SERVICE_ACCOUNT_NAME, "sleep"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            context.insert(k.to_string(), v.to_string());
        }
        context
    }

    fn tokens(token: &str) -> String {
        serde_json::json!({"": {"token": token, "expirationTimestamp": "2026-12-07T20:00:00Z"}})
            .to_string()
    }

    #[test]
    fn builds_the_spiffe_request() {
        let token = claims::unsigned_token("sandbox", "sleep");
        let attributes = template()
            .build(
                &context(&[
                    (key::SERVICE_ACCOUNT_TOKENS, &tokens(&token)),
                    (FS_GROUP, "456"),
                ]),
                issuer(),
            )
            .unwrap();
        let spec = &attributes.spec;
        assert_eq!(
            spec.uri_sans,
            ["spiffe://cluster.local/ns/sandbox/sa/sleep"]
        );
        assert!(spec.dns_names.is_empty() && spec.ip_sans.is_empty());
        assert_eq!(spec.subject, Subject::default());
        assert_eq!(spec.key, KEY);
        assert!(!spec.is_ca);
        assert_eq!(
            spec.usages.iter().map(|u| u.name()).collect::<Vec<_>>(),
            [
                "digital signature",
                "key encipherment",
                "server auth",
                "client auth"
            ]
        );
        assert_eq!(spec.fs_group, Some(456));
        assert_eq!(spec.duration, Duration::from_secs(3600));
        assert_eq!(
            spec.annotations
                .get(IDENTITY_ANNOTATION)
                .map(String::as_str),
            Some("spiffe://cluster.local/ns/sandbox/sa/sleep")
        );
        assert_eq!(spec.annotations.get("team").map(String::as_str), Some("a"));
        // Without the token (a record read back), the same request.
        let again = template()
            .build(&context(&[(FS_GROUP, "456")]), issuer())
            .unwrap();
        assert_eq!(again.spec, attributes.spec);
    }

    #[test]
    fn names_each_problem() {
        let error = |extra: &[(&str, &str)]| {
            template()
                .build(&context(extra), issuer())
                .unwrap_err()
                .to_string()
        };
        let message = error(&[("csi.cert-manager.io/dns-names", "x")]);
        assert!(
            message.contains("csi.cert-manager.io/dns-names is not an attribute"),
            "{message}"
        );
        for bad in ["0", "-1", "4294967296", "abc", ""] {
            let message = error(&[(FS_GROUP, bad)]);
            assert!(
                message.contains(&format!("{FS_GROUP}={bad:?} must be a group ID")),
                "{message}"
            );
        }
        assert!(
            template()
                .build(&context(&[(FS_GROUP, "4294967295")]), issuer())
                .is_ok()
        );
        let other = claims::unsigned_token("sandbox", "admin");
        let message = error(&[(key::SERVICE_ACCOUNT_TOKENS, &tokens(&other))]);
        assert!(
            message.contains("sandbox/admin") && message.contains("sandbox/sleep"),
            "{message}"
        );
        assert!(!message.contains(&other));
        let message = error(&[(key::SERVICE_ACCOUNT_TOKENS, &tokens("opaque"))]);
        assert!(message.contains("not a JWT"), "{message}");
        let mut no_sa = context(&[]);
        no_sa.remove(key::SERVICE_ACCOUNT_NAME);
        let message = template().build(&no_sa, issuer()).unwrap_err().to_string();
        assert!(message.contains(key::SERVICE_ACCOUNT_NAME), "{message}");
    }

    #[test]
    fn annotations_parse_and_the_prefix_is_refused() {
        let parsed =
            parse_annotations("hello=world,spiffe.csi.cert-manager.io/x=y, a=b=c").unwrap();
        let (kept, refused) = sanitize_annotations(parsed);
        assert_eq!(kept.get("hello").map(String::as_str), Some("world"));
        assert_eq!(kept.get("a").map(String::as_str), Some("b=c"));
        assert_eq!(refused, ["spiffe.csi.cert-manager.io/x"]);
        assert!(parse_annotations("novalue").is_err());
        assert!(parse_annotations("").unwrap().is_empty());
    }
}
