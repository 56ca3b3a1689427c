//! The cert-manager `CertificateRequest` (`cert-manager.io/v1`): the object the driver creates for
//! a volume, and how its status is read. Pure: building and judging requests needs no API server,
//! so every rule here is unit-tested.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::{Deserialize, Serialize};

use crate::attributes::duration::format_go_duration;
use crate::issuer::IssueOrder;

pub const API_VERSION: &str = "cert-manager.io/v1";
pub const KIND: &str = "CertificateRequest";

/// Labels upstream puts on its requests (kept, so tooling that selects on them keeps working).
pub mod label {
    pub const NODE_ID_HASH: &str = "csi.cert-manager.io/node-id-hash";
    pub const VOLUME_ID_HASH: &str = "csi.cert-manager.io/volume-id-hash";
}

/// Readable annotations, for whoever audits requests: which pod, volume and node asked.
pub mod annotation {
    pub const POD_NAME: &str = "csi.cert-manager.io/pod-name";
    pub const POD_UID: &str = "csi.cert-manager.io/pod-uid";
    pub const VOLUME_ID: &str = "csi.cert-manager.io/volume-id";
    pub const NODE_ID: &str = "csi.cert-manager.io/node-id";
    /// When the driver made the request, with sub-second precision (RFC 3339): orders a volume's
    /// requests for the history limit, where `creationTimestamp` has only whole seconds.
    pub const REQUESTED_AT: &str = "csi.cert-manager.io/requested-at";
}

/// A cert-manager `CertificateRequest`, with the fields the driver writes or reads. Unknown
/// fields (set by cert-manager's webhook: `username`, `uid`, `groups`, …) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequest {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: CertificateRequestSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CertificateRequestStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestSpec {
    /// The PEM CSR (base64 on the wire, as for every `[]byte` in Go).
    pub request: ByteString,
    pub issuer_ref: IssuerReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, rename = "isCA")]
    pub is_ca: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IssuerReference {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<ByteString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<ByteString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl kube::Resource for CertificateRequest {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(KIND)
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("cert-manager.io")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("certificaterequests")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl CertificateRequest {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// `namespace/name`, for messages.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.namespace(), self.name())
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata.labels.as_ref()?.get(key).map(String::as_str)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// Whether this request carries exactly this CSR.
    pub fn has_csr(&self, csr_pem: &str) -> bool {
        self.spec.request.0 == csr_pem.as_bytes()
    }

    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
    }
}

/// The value of the node-id-hash and volume-id-hash labels, byte for byte what the Go driver
/// writes, so that tooling selecting on them (and this driver, after taking a node over from the
/// Go driver) finds every request whichever driver made it. The Go driver's algorithm: the 32-bit
/// FNV-1 hash of the ID's bytes (offset basis 2166136261; per byte, multiply by the prime
/// 16777619, then XOR the byte — FNV-1, not FNV-1a), written as an unsigned decimal number, each
/// digit then mapped through Kubernetes' `rand.SafeEncodeString` (the character at the digit's
/// ASCII code modulo 27 in `bcdfghjklmnpqrstvwxz2456789`), e.g. `node-1` → `9bd6bbf5f`.
pub fn label_hash(value: &str) -> String {
    /// `rand.SafeEncodeString`'s alphabet: no vowels (no words) and no look-alike characters.
    const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let hash = value.bytes().fold(2_166_136_261u32, |hash, byte| {
        hash.wrapping_mul(16_777_619) ^ u32::from(byte)
    });
    hash.to_string()
        .bytes()
        .map(|digit| char::from(SAFE_ALPHABET[usize::from(digit) % SAFE_ALPHABET.len()]))
        .collect()
}

/// The label value earlier versions of this driver wrote (the first 16 hex digits of SHA-256).
/// Read only, so that their requests are still found after an upgrade; never written.
pub fn legacy_label_hash(value: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Every hash label value a request about this ID may carry: the one written now, then the
/// legacy one still read.
pub fn label_hashes(value: &str) -> [String; 2] {
    [label_hash(value), legacy_label_hash(value)]
}

/// The label selector of the node's watch: requests labelled with this node under either hash,
/// so requests made by earlier versions (and by the Go driver) are seen too.
pub fn node_selector(node_id: &str) -> String {
    let [current, legacy] = label_hashes(node_id);
    format!("{} in ({current},{legacy})", label::NODE_ID_HASH)
}

/// Whether a request belongs to this volume of a pod in `namespace`. This driver's requests say
/// so in their volume-id annotation, which must match exactly: FNV-32 hashes of different IDs can
/// collide. The Go driver's requests carry no such annotation; one in the pod's namespace whose
/// volume-id-hash is the volume's (the Go driver's hash, never the legacy one) is the volume's.
pub fn belongs_to_volume(request: &CertificateRequest, namespace: &str, volume_id: &str) -> bool {
    if request.namespace() != namespace {
        return false;
    }
    match request.annotation(annotation::VOLUME_ID) {
        Some(annotated) => annotated == volume_id,
        None => request.label(label::VOLUME_ID_HASH) == Some(label_hash(volume_id).as_str()),
    }
}

/// Whether the Go driver made this request: every request of this driver carries the volume-id
/// annotation, the Go driver's never do. Its private key lived only in the Go driver's memory.
pub fn is_go_drivers(request: &CertificateRequest) -> bool {
    request.annotation(annotation::VOLUME_ID).is_none()
}

/// A fresh, unique request name that still says whose it is: the pod's name (shortened) and a
/// random suffix, e.g. `my-app-7d9f8-x4k2q9zt1c`.
pub fn new_request_name(pod_name: &str) -> String {
    const SUFFIX_LEN: usize = 10;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let prefix: String = pod_name
        .chars()
        .take(52)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string();
    let suffix: String = (0..SUFFIX_LEN)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect();
    if prefix.is_empty() {
        format!("csi-{suffix}")
    } else {
        format!("{prefix}-{suffix}")
    }
}

/// Builds the request for one issuance. The pass-through annotations from the volume's
/// attributes come first, so they can never overwrite the driver's own.
pub fn build(order: &IssueOrder, name: &str, node_id: &str) -> CertificateRequest {
    let mut annotations: BTreeMap<String, String> = order.annotations.clone();
    annotations.insert(annotation::POD_NAME.into(), order.pod.name.clone());
    annotations.insert(annotation::POD_UID.into(), order.pod.uid.clone());
    annotations.insert(annotation::VOLUME_ID.into(), order.volume_id.clone());
    annotations.insert(annotation::NODE_ID.into(), node_id.to_string());
    annotations.insert(
        annotation::REQUESTED_AT.into(),
        time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    );
    let labels = BTreeMap::from([
        (label::NODE_ID_HASH.to_string(), label_hash(node_id)),
        (
            label::VOLUME_ID_HASH.to_string(),
            label_hash(&order.volume_id),
        ),
    ]);
    let owner_references = (!order.pod.uid.is_empty()).then(|| {
        vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: order.pod.name.clone(),
            uid: order.pod.uid.clone(),
            controller: None,
            block_owner_deletion: None,
        }]
    });
    CertificateRequest {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(order.pod.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references,
            ..ObjectMeta::default()
        },
        spec: CertificateRequestSpec {
            request: ByteString(order.csr_pem.as_bytes().to_vec()),
            issuer_ref: IssuerReference {
                name: order.issuer.name.clone(),
                kind: Some(order.issuer.kind.clone()),
                group: Some(order.issuer.group.clone()),
            },
            duration: Some(format_go_duration(order.duration)),
            is_ca: order.is_ca,
            usages: order
                .usages
                .iter()
                .map(|usage| usage.name().to_string())
                .collect(),
        },
        status: None,
    }
}

/// When a request was made, for ordering: the driver's own annotation, else the API server's
/// creation time (requests made by older drivers).
pub fn requested_at(request: &CertificateRequest) -> Option<time::OffsetDateTime> {
    let parse = |text: &str| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
    };
    request
        .annotation(annotation::REQUESTED_AT)
        .and_then(parse)
        .or_else(|| {
            let created = request.metadata.creation_timestamp.as_ref()?;
            time::OffsetDateTime::from_unix_timestamp(created.0.as_second()).ok()
        })
}

/// Where a request stands, as far as the driver is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestState {
    /// Signed: `status.certificate` holds the chain. Accepted whether or not an `Approved`
    /// condition is present (some external issuers sign without one).
    Issued { chain_pem: String, ca_pem: String },
    /// The approver said no; final.
    Denied { reason: String, message: String },
    /// The issuer gave up (Ready=False, reason `Failed`); final.
    Failed { message: String },
    /// Anything else; `detail` is the latest condition, for the timeout message.
    Pending { detail: String },
}

impl RequestState {
    /// Denied and failed requests never change again.
    pub fn is_final_failure(&self) -> bool {
        matches!(
            self,
            RequestState::Denied { .. } | RequestState::Failed { .. }
        )
    }
}

/// Reads a request's status.
pub fn evaluate(request: &CertificateRequest) -> RequestState {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    if let Some(denied) = request.condition("Denied")
        && denied.status == "True"
    {
        return RequestState::Denied {
            reason: text(&denied.reason),
            message: text(&denied.message),
        };
    }
    let ready = request.condition("Ready");
    let certificate = request
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .filter(|c| !c.0.is_empty());
    if let (Some(ready), Some(certificate)) = (ready, certificate)
        && ready.status == "True"
    {
        let ca = request.status.as_ref().and_then(|s| s.ca.as_ref());
        return RequestState::Issued {
            chain_pem: String::from_utf8_lossy(&certificate.0).into_owned(),
            ca_pem: ca
                .map(|ca| String::from_utf8_lossy(&ca.0).into_owned())
                .unwrap_or_default(),
        };
    }
    if let Some(ready) = ready
        && ready.status == "False"
    {
        match ready.reason.as_deref() {
            Some("Failed") => {
                return RequestState::Failed {
                    message: text(&ready.message),
                };
            }
            Some("Denied") => {
                return RequestState::Denied {
                    reason: "Denied".into(),
                    message: text(&ready.message),
                };
            }
            _ => {}
        }
    }
    if request
        .status
        .as_ref()
        .is_some_and(|s| s.failure_time.is_some())
    {
        return RequestState::Failed {
            message: ready.map(|r| text(&r.message)).unwrap_or_default(),
        };
    }
    let detail = match (ready, request.condition("Approved")) {
        (Some(ready), _) => format!(
            "Ready={} {}: {}",
            ready.status,
            text(&ready.reason),
            text(&ready.message)
        ),
        (None, Some(approved)) if approved.status == "True" => {
            "approved, not yet signed by the issuer".into()
        }
        _ => "no status yet: not approved and not signed (is cert-manager running, and does an \
              approver handle this issuer?)"
            .into(),
    };
    RequestState::Pending { detail }
}

/// Adds an explanation when a failure is the one SelfSigned issuers always give for requests
/// without a key Secret: they sign with the requester's private key, which never leaves the node.
pub fn explain_failure(message: &str) -> String {
    if message.contains("private-key-secret-name") {
        format!(
            "{message} — this looks like a SelfSigned issuer, which signs with the requester's \
             private key; the CSI driver keeps keys on the node, so SelfSigned issuers cannot \
             work here. Use a CA issuer (it may itself be bootstrapped from a SelfSigned one)."
        )
    } else {
        message.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{IssuerRef, KeyUsage, PodInfo};
    use std::time::Duration;

    fn issue_request() -> IssueOrder {
        IssueOrder {
            volume_id: "csi-0123".into(),
            pod: PodInfo {
                name: "web-7d9f8".into(),
                namespace: "apps".into(),
                uid: "9c1c3b0e-uid".into(),
                service_account: Some("web".into()),
            },
            issuer: IssuerRef {
                name: "ca-issuer".into(),
                kind: "ClusterIssuer".into(),
                group: "cert-manager.io".into(),
            },
            csr_pem:
                "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
                    .into(),
            duration: Duration::from_secs(90 * 24 * 3600),
            is_ca: false,
            usages: vec![KeyUsage::DigitalSignature, KeyUsage::ServerAuth],
            annotations: BTreeMap::from([
                ("example.com/team".to_string(), "payments".to_string()),
                (annotation::NODE_ID.to_string(), "spoofed".to_string()),
            ]),
            token: None,
            resuming: false,
        }
    }

    #[test]
    fn request_has_the_upstream_shape() {
        let built = build(&issue_request(), "web-7d9f8-abc", "node-1");
        let json = serde_json::to_value(&built).unwrap();
        assert_eq!(json["apiVersion"], "cert-manager.io/v1");
        assert_eq!(json["kind"], "CertificateRequest");
        assert_eq!(json["metadata"]["namespace"], "apps");
        assert_eq!(json["metadata"]["name"], "web-7d9f8-abc");
        let labels = &json["metadata"]["labels"];
        assert_eq!(labels[label::NODE_ID_HASH], "9bd6bbf5f");
        assert_eq!(labels[label::VOLUME_ID_HASH], label_hash("csi-0123"));
        let annotations = &json["metadata"]["annotations"];
        assert_eq!(annotations[annotation::POD_NAME], "web-7d9f8");
        assert_eq!(annotations[annotation::POD_UID], "9c1c3b0e-uid");
        assert_eq!(annotations[annotation::VOLUME_ID], "csi-0123");
        assert_eq!(
            annotations[annotation::NODE_ID],
            "node-1",
            "not overridable"
        );
        assert_eq!(annotations["example.com/team"], "payments");
        let owner = &json["metadata"]["ownerReferences"][0];
        assert_eq!(owner["apiVersion"], "v1");
        assert_eq!(owner["kind"], "Pod");
        assert_eq!(owner["name"], "web-7d9f8");
        assert_eq!(owner["uid"], "9c1c3b0e-uid");
        let spec = &json["spec"];
        assert_eq!(spec["issuerRef"]["name"], "ca-issuer");
        assert_eq!(spec["issuerRef"]["kind"], "ClusterIssuer");
        assert_eq!(spec["issuerRef"]["group"], "cert-manager.io");
        assert_eq!(spec["duration"], "2160h0m0s");
        assert_eq!(spec["isCA"], false);
        assert_eq!(
            spec["usages"],
            serde_json::json!(["digital signature", "server auth"])
        );
        // []byte fields travel as base64.
        let request = spec["request"].as_str().unwrap();
        assert!(request.starts_with("LS0tLS1CRUdJTi"));
        let back: CertificateRequest = serde_json::from_value(json).unwrap();
        assert!(back.has_csr(&issue_request().csr_pem));
    }

    #[test]
    fn requests_order_by_when_they_were_made() {
        let first = build(&issue_request(), "a", "node");
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = build(&issue_request(), "b", "node");
        assert!(requested_at(&first).unwrap() < requested_at(&second).unwrap());
        let mut foreign = build(&issue_request(), "c", "node");
        foreign.metadata.annotations = None;
        assert_eq!(requested_at(&foreign), None);
    }

    #[test]
    fn label_hashes_are_the_go_drivers() {
        // Read off the Go driver's requests on a real API server.
        assert_eq!(label_hash("node-1"), "9bd6bbf5f");
        assert_eq!(label_hash("csi-0123456789abcdef"), "747dc7849");
        // The empty ID hashes to the offset basis, 2166136261.
        assert_eq!(label_hash(""), "65bb57b6b5");
        assert!(
            label_hash("x")
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
    }

    #[test]
    fn legacy_label_hashes_are_what_earlier_versions_wrote() {
        assert_eq!(legacy_label_hash("node-1"), "35971be6e9bb024a");
        assert_eq!(
            label_hashes("node-1"),
            ["9bd6bbf5f".to_string(), "35971be6e9bb024a".to_string()]
        );
    }

    #[test]
    fn the_node_watch_selects_both_hashes() {
        assert_eq!(
            node_selector("node-1"),
            "csi.cert-manager.io/node-id-hash in (9bd6bbf5f,35971be6e9bb024a)"
        );
    }

    #[test]
    fn a_volumes_requests_are_ours_by_annotation_or_the_go_drivers_by_hash() {
        let ours = build(&issue_request(), "ours", "node");
        assert!(belongs_to_volume(&ours, "apps", "csi-0123"));
        assert!(!belongs_to_volume(&ours, "other", "csi-0123"));
        assert!(!belongs_to_volume(&ours, "apps", "csi-4567"));
        assert!(!is_go_drivers(&ours));

        // The Go driver's: the hash label, no annotations.
        let mut go = build(&issue_request(), "0b5c2f6e-uuid", "node");
        go.metadata.annotations = None;
        assert!(is_go_drivers(&go));
        assert!(belongs_to_volume(&go, "apps", "csi-0123"));
        assert!(!belongs_to_volume(&go, "other", "csi-0123"));
        assert!(!belongs_to_volume(&go, "apps", "csi-4567"));
        // Unannotated with only the legacy hash: nobody's.
        let labels = go.metadata.labels.as_mut().unwrap();
        labels.insert(label::VOLUME_ID_HASH.into(), legacy_label_hash("csi-0123"));
        assert!(!belongs_to_volume(&go, "apps", "csi-0123"));

        // Ours for another volume whose hash collides with this one's: never this volume's.
        let mut colliding = build(&issue_request(), "colliding", "node");
        let annotations = colliding.metadata.annotations.as_mut().unwrap();
        annotations.insert(annotation::VOLUME_ID.into(), "csi-4567".into());
        assert!(!belongs_to_volume(&colliding, "apps", "csi-0123"));
    }

    #[test]
    fn names_are_unique_valid_and_say_whose() {
        let a = new_request_name("web-7d9f8");
        let b = new_request_name("web-7d9f8");
        assert_ne!(a, b);
        assert!(a.starts_with("web-7d9f8-"));
        let long = new_request_name(&"a".repeat(300));
        assert!(long.len() <= 63);
        assert!(new_request_name("").starts_with("csi-"));
        assert!(new_request_name(&format!("{}-.x", "b".repeat(51))).starts_with(&"b".repeat(51)));
        assert!(!new_request_name(&format!("{}-.x", "b".repeat(51))).contains("--"));
    }

    fn with_conditions(
        conditions: &[(&str, &str, &str, &str)],
        cert: Option<&str>,
    ) -> CertificateRequest {
        let mut request = build(&issue_request(), "n", "node");
        request.status = Some(CertificateRequestStatus {
            conditions: conditions
                .iter()
                .map(|(t, s, r, m)| Condition {
                    type_: t.to_string(),
                    status: s.to_string(),
                    reason: Some(r.to_string()),
                    message: Some(m.to_string()),
                })
                .collect(),
            certificate: cert.map(|c| ByteString(c.as_bytes().to_vec())),
            ca: Some(ByteString(b"CA".to_vec())),
            failure_time: None,
        });
        request
    }

    #[test]
    fn status_is_read_like_cert_manager_writes_it() {
        let fresh = build(&issue_request(), "n", "node");
        assert!(matches!(evaluate(&fresh), RequestState::Pending { .. }));
        let approved = with_conditions(&[("Approved", "True", "cert-manager.io", "ok")], None);
        assert_eq!(
            evaluate(&approved),
            RequestState::Pending {
                detail: "approved, not yet signed by the issuer".into()
            }
        );
        let issued = with_conditions(
            &[
                ("Approved", "True", "cert-manager.io", "ok"),
                ("Ready", "True", "Issued", "done"),
            ],
            Some("CHAIN"),
        );
        assert_eq!(
            evaluate(&issued),
            RequestState::Issued {
                chain_pem: "CHAIN".into(),
                ca_pem: "CA".into()
            }
        );
        // Signed without approval: accepted.
        let unapproved = with_conditions(&[("Ready", "True", "Issued", "done")], Some("CHAIN"));
        assert!(matches!(evaluate(&unapproved), RequestState::Issued { .. }));
        // Ready=True but no certificate yet: still waiting.
        let empty = with_conditions(&[("Ready", "True", "Issued", "done")], None);
        assert!(matches!(evaluate(&empty), RequestState::Pending { .. }));
        let denied = with_conditions(
            &[
                (
                    "Denied",
                    "True",
                    "policy.example.com",
                    "DNS name not allowed",
                ),
                (
                    "Ready",
                    "False",
                    "Denied",
                    "The CertificateRequest was denied",
                ),
            ],
            None,
        );
        assert_eq!(
            evaluate(&denied),
            RequestState::Denied {
                reason: "policy.example.com".into(),
                message: "DNS name not allowed".into()
            }
        );
        assert!(evaluate(&denied).is_final_failure());
        let failed = with_conditions(
            &[
                ("Approved", "True", "cert-manager.io", "ok"),
                ("Ready", "False", "Failed", "vault: permission denied"),
            ],
            None,
        );
        assert_eq!(
            evaluate(&failed),
            RequestState::Failed {
                message: "vault: permission denied".into()
            }
        );
        let pending = with_conditions(&[("Ready", "False", "Pending", "Waiting on order")], None);
        assert_eq!(
            evaluate(&pending),
            RequestState::Pending {
                detail: "Ready=False Pending: Waiting on order".into()
            }
        );
        assert!(!evaluate(&pending).is_final_failure());
    }

    #[test]
    fn self_signed_failures_are_explained() {
        let explained = explain_failure(
            "Annotation \"cert-manager.io/private-key-secret-name\" missing or reference empty",
        );
        assert!(explained.contains("SelfSigned"));
        assert_eq!(explain_failure("other"), "other");
    }
}
