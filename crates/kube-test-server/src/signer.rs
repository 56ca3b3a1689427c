//! A stand-in for cert-manager: it approves (or denies) CertificateRequests and signs them with
//! a test CA, writing the same status conditions cert-manager's approver and CA issuer write.
//!
//! This exists because the driver's whole job is to create CertificateRequests and wait for
//! cert-manager to answer them; tests choose the answer with [`SignerMode`].

use crate::store::{ChangeKind, now_rfc3339};
use crate::{TaskGuard, TestApiServer};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use parking_lot::{Mutex, MutexGuard};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    PublicKeyData, SerialNumber, SignatureAlgorithm, SigningKey,
};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio::time::Instant;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::FromDer;

const API_VERSION: &str = "cert-manager.io/v1";
const RESOURCE: &str = "certificaterequests";

/// Requests whose `spec.issuerRef.name` is this are never touched, whatever the mode.
pub const IGNORED_ISSUER: &str = "ignored-by-signer";

/// cert-manager's default certificate lifetime.
const DEFAULT_DURATION: Duration = Duration::from_secs(90 * 24 * 3600);

/// How the signer answers the CertificateRequests that arrive while it is set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SignerMode {
    /// Approve, then sign at once.
    #[default]
    Approve,
    /// Approve at once (and mark Ready=False Pending), sign after the delay.
    Delay(Duration),
    /// Deny: Denied=True with this reason and message, then Ready=False reason Denied.
    Deny { reason: String, message: String },
    /// Approve, then Ready=False reason Failed with this message.
    Fail { message: String },
    /// What cert-manager's SelfSigned issuer does for a request without the private key
    /// annotation: approve, then Ready=False reason Failed.
    SelfSignedFailure,
    /// Never answer: no conditions at all.
    Ignore,
    /// Ready=True with a certificate, but no Approved condition.
    SignWithoutApproval,
    /// Approve, then sign at once, but leave `status.ca` out: an issuer that does not know its
    /// CA (ACME, some external issuers).
    ApproveWithoutCa,
    /// Approve nothing, as cert-manager does when its own approver is turned off and another
    /// (csi-driver-spiffe's) decides: sign each request once someone else has approved it, and
    /// answer one that someone denied with Ready=False reason Denied, as cert-manager does.
    /// Undecided requests are left alone.
    SignApprovedOnly,
}

/// A running signer. Cloning gives another handle; it stops when the last handle is dropped.
#[derive(Clone)]
pub struct Signer {
    inner: Arc<Inner>,
    _task: Arc<TaskGuard>,
}

struct Inner {
    server: TestApiServer,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_pem: String,
    state: Mutex<SignerState>,
}

#[derive(Default)]
struct SignerState {
    mode: SignerMode,
    /// UIDs of the requests already answered (or deliberately ignored).
    seen: HashSet<String>,
    signed_at: HashMap<(String, String), Instant>,
}

impl Signer {
    /// Starts answering the server's `cert-manager.io/v1` CertificateRequests that have no
    /// status conditions yet (those already there, and every new one), each according to the
    /// mode set when it is seen.
    pub fn start(server: &TestApiServer) -> Signer {
        let ca = test_ca();
        let inner = Arc::new(Inner {
            server: server.clone(),
            ca_pem: ca.pem(),
            ca,
            state: Mutex::new(SignerState::default()),
        });
        // Subscribe before looking at existing requests so that none falls between the two.
        let changes = server.subscribe();
        let task = tokio::spawn(inner.clone().run(changes));
        Signer {
            inner,
            _task: Arc::new(TaskGuard(task.abort_handle())),
        }
    }

    /// Sets how requests that arrive from now on are answered.
    pub fn set_mode(&self, mode: SignerMode) {
        self.inner.state().mode = mode;
    }

    /// The test CA's certificate (PEM).
    pub fn ca_pem(&self) -> String {
        self.inner.ca_pem.clone()
    }

    /// When the signer wrote Ready=True for that request.
    pub fn signed_at(&self, namespace: &str, name: &str) -> Option<Instant> {
        let key = (namespace.to_string(), name.to_string());
        self.inner.state().signed_at.get(&key).copied()
    }

    /// How many requests the signer has issued certificates for.
    pub fn signed_count(&self) -> usize {
        self.inner.state().signed_at.len()
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, SignerState> {
        self.state.lock()
    }

    async fn run(self: Arc<Self>, mut changes: tokio::sync::broadcast::Receiver<crate::Change>) {
        // Delayed signings; dropped (so aborted) with this task.
        let mut delayed = JoinSet::new();
        self.answer_existing(&mut delayed);
        loop {
            match changes.recv().await {
                Ok(change)
                    if change.kind != ChangeKind::Deleted
                        && change.api_version == API_VERSION
                        && change.resource == RESOURCE =>
                {
                    // Decide on the request as it is now, not as it was then.
                    let namespace = text(&change.object, "/metadata/namespace");
                    let name = text(&change.object, "/metadata/name");
                    if let Some(current) =
                        self.server
                            .get_object(API_VERSION, RESOURCE, namespace, name)
                    {
                        self.consider(&current, &mut delayed);
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => self.answer_existing(&mut delayed),
                Err(RecvError::Closed) => return,
            }
            while delayed.try_join_next().is_some() {}
        }
    }

    fn answer_existing(self: &Arc<Self>, delayed: &mut JoinSet<()>) {
        for request in self.server.list_objects(API_VERSION, RESOURCE) {
            self.consider(&request, delayed);
        }
    }

    /// Answers a request if it is new to the signer and has not been answered by anyone else.
    fn consider(self: &Arc<Self>, request: &Value, delayed: &mut JoinSet<()>) {
        if self.state().mode == SignerMode::SignApprovedOnly {
            return self.consider_decided(request);
        }
        let uid = text(request, "/metadata/uid");
        let unanswered = request
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if !unanswered || text(request, "/spec/issuerRef/name") == IGNORED_ISSUER {
            return;
        }
        let mode = {
            let mut state = self.state();
            if !state.seen.insert(uid.to_string()) {
                return;
            }
            state.mode.clone()
        };
        let namespace = text(request, "/metadata/namespace").to_string();
        let name = text(request, "/metadata/name").to_string();
        match mode {
            SignerMode::Approve => {
                self.approve(&namespace, &name);
                self.issue(request, &namespace, &name);
            }
            SignerMode::ApproveWithoutCa => {
                self.approve(&namespace, &name);
                self.issue_with(request, &namespace, &name, false);
            }
            SignerMode::Delay(delay) => {
                self.approve(&namespace, &name);
                let message =
                    format!("Waiting on certificate issuance from order {namespace}/{name}-1");
                self.write_status(&namespace, &name, |status| {
                    set_condition(status, "Ready", "False", "Pending", &message);
                });
                let (this, request) = (self.clone(), request.clone());
                delayed.spawn(async move {
                    tokio::time::sleep(delay).await;
                    this.issue(&request, &namespace, &name);
                });
            }
            SignerMode::Deny { reason, message } => {
                self.write_status(&namespace, &name, |status| {
                    set_condition(status, "Denied", "True", &reason, &message);
                    set_denied_ready(status);
                });
            }
            SignerMode::Fail { message } => {
                self.approve(&namespace, &name);
                self.fail(&namespace, &name, &message);
            }
            SignerMode::SelfSignedFailure => {
                self.approve(&namespace, &name);
                let message = "Annotation \"cert-manager.io/private-key-secret-name\" missing or \
                               reference empty: secret name missing";
                self.fail(&namespace, &name, message);
            }
            // Handled by `consider_decided` before any request is marked seen.
            SignerMode::Ignore | SignerMode::SignApprovedOnly => {}
            SignerMode::SignWithoutApproval => self.issue(request, &namespace, &name),
        }
    }

    /// [`SignerMode::SignApprovedOnly`]: acts on a request once it carries someone else's
    /// Approved or Denied condition and has no Ready one yet.
    fn consider_decided(&self, request: &Value) {
        let conditions = request
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let has = |kind: &str| {
            conditions
                .iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        };
        let (approved, denied) = (has("Approved"), has("Denied"));
        let answered = conditions.iter().any(|c| c["type"] == "Ready");
        if answered
            || !(approved || denied)
            || text(request, "/spec/issuerRef/name") == IGNORED_ISSUER
        {
            return;
        }
        if !self
            .state()
            .seen
            .insert(text(request, "/metadata/uid").to_string())
        {
            return;
        }
        let namespace = text(request, "/metadata/namespace");
        let name = text(request, "/metadata/name");
        if denied {
            self.write_status(namespace, name, set_denied_ready);
        } else {
            self.issue(request, namespace, name);
        }
    }

    fn approve(&self, namespace: &str, name: &str) {
        self.write_status(namespace, name, |status| {
            set_condition(
                status,
                "Approved",
                "True",
                "cert-manager.io",
                "Certificate request has been approved by cert-manager.io",
            );
        });
    }

    fn fail(&self, namespace: &str, name: &str, message: &str) {
        self.write_status(namespace, name, |status| {
            set_condition(status, "Ready", "False", "Failed", message);
            status["failureTime"] = json!(now_rfc3339());
        });
    }

    /// Signs the request and writes Ready=True with the certificate, or Failed if it can't.
    fn issue(&self, request: &Value, namespace: &str, name: &str) {
        self.issue_with(request, namespace, name, true);
    }

    fn issue_with(&self, request: &Value, namespace: &str, name: &str, with_ca: bool) {
        let certificate = match self.sign(request) {
            Ok(pem) => pem,
            Err(message) => return self.fail(namespace, name, &message),
        };
        let ca = BASE64.encode(&self.ca_pem);
        let written = self.write_status(namespace, name, |status| {
            set_condition(
                status,
                "Ready",
                "True",
                "Issued",
                "Certificate fetched from issuer successfully",
            );
            status["certificate"] = json!(BASE64.encode(&certificate));
            if with_ca {
                status["ca"] = json!(ca);
            }
        });
        if written {
            let key = (namespace.to_string(), name.to_string());
            self.state().signed_at.insert(key, Instant::now());
        }
    }

    /// Changes the request's status through the store, so watchers see MODIFIED. Returns
    /// whether the request still existed.
    fn write_status(&self, namespace: &str, name: &str, f: impl FnOnce(&mut Value)) -> bool {
        self.server
            .update_object(API_VERSION, RESOURCE, namespace, name, |request| {
                if !request.get("status").is_some_and(Value::is_object) {
                    request["status"] = json!({});
                }
                f(&mut request["status"]);
            })
            .is_some()
    }

    /// The PEM certificate for a CertificateRequest's spec, or why there is none.
    ///
    /// As cert-manager's CA issuer does, the certificate's subject is the CSR's byte for byte
    /// (Go's RawSubject: multi-valued RDNs, any string type, whatever characters), and so are its
    /// public key and its SAN extension's value. rcgen never sees the CSR's subject: it writes a
    /// certificate with an empty one (issuer, validity, serial, key usages, basic constraints,
    /// key identifiers), whose subject and key are then replaced before the CA signs it.
    fn sign(&self, request: &Value) -> Result<String, String> {
        let spec = request.get("spec").cloned().unwrap_or(Value::Null);
        let csr_pem = BASE64
            .decode(spec.get("request").and_then(Value::as_str).unwrap_or(""))
            .map_err(|e| format!("spec.request is not valid base64: {e}"))?;
        let csr_pem =
            String::from_utf8(csr_pem).map_err(|_| "spec.request is not a PEM CSR".to_string())?;
        let csr_der = parse_x509_pem(csr_pem.as_bytes())
            .map(|(_, pem)| pem.contents)
            .map_err(|e| format!("Failed to decode CSR in spec.request: {e}"))?;
        let csr = match X509CertificationRequest::from_der(&csr_der) {
            Ok(([], csr)) => csr,
            Ok(_) => {
                return Err("Failed to decode CSR in spec.request: trailing data".to_string());
            }
            Err(e) => return Err(format!("Failed to decode CSR in spec.request: {e}")),
        };
        csr.verify_signature()
            .map_err(|e| format!("Failed to verify CSR signature in spec.request: {e}"))?;

        let lifetime = match spec.get("duration").and_then(Value::as_str) {
            Some(text) => {
                parse_go_duration(text).ok_or_else(|| format!("invalid spec.duration {text:?}"))?
            }
            None => DEFAULT_DURATION,
        };
        let is_ca = spec.get("isCA").and_then(Value::as_bool).unwrap_or(false);
        let usages: Vec<&str> = spec
            .get("usages")
            .and_then(Value::as_array)
            .map(|u| u.iter().filter_map(Value::as_str).collect())
            .unwrap_or_else(|| vec!["digital signature", "key encipherment"]);

        let info = &csr.certification_request_info;
        let mut params = CertificateParams::default();
        // Replaced by the CSR's subject below; empty so that rcgen has nothing to encode.
        params.distinguished_name = DistinguishedName::new();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now;
        // Checked: the sum overflowing, or a year past 9999 (which X.509 times cannot hold),
        // would panic in `time` or in rcgen's encoding.
        params.not_after = time::Duration::try_from(lifetime)
            .ok()
            .and_then(|lifetime| now.checked_add(lifetime))
            .filter(|not_after| not_after.year() <= 9999)
            .ok_or_else(|| format!("spec.duration {lifetime:?} ends after the year 9999"))?;
        let mut serial: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = usages.iter().filter_map(|u| key_usage(u)).collect();
        params.extended_key_usages = usages
            .iter()
            .filter_map(|u| extended_key_usage(u))
            .collect();
        if is_ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            if !params.key_usages.contains(&KeyUsagePurpose::KeyCertSign) {
                params.key_usages.push(KeyUsagePurpose::KeyCertSign);
            }
        } else {
            params.is_ca = IsCa::ExplicitNoCa;
        }
        if let Some(names) = requested_subject_alt_names(&csr) {
            let mut extension = CustomExtension::from_oid_content(SUBJECT_ALT_NAME, names.to_vec());
            // RFC 5280 4.2.1.6, and cert-manager's rule: critical when the subject is empty.
            extension.set_criticality(info.subject.iter_attributes().next().is_none());
            params.custom_extensions.push(extension);
        }
        let key = CsrPublicKey {
            spki: info.subject_pki.raw,
            key: &info.subject_pki.subject_public_key.data,
            placeholder_algorithm: self.ca.key().algorithm(),
        };
        let draft = params
            .signed_by(&key, &self.ca)
            .map_err(|e| format!("Failed to sign certificate: {e}"))?;
        let der = resign_with(
            draft.der(),
            info.subject.as_raw(),
            info.subject_pki.raw,
            self.ca.key(),
        )
        .map_err(|e| format!("Failed to sign certificate: {e}"))?;
        Ok(certificate_pem(&der))
    }
}

/// The OID of the subject alternative name extension, 2.5.29.17.
const SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];

/// The value (the GeneralNames, as DER) of the SAN extension a CSR requests, if it requests one.
fn requested_subject_alt_names<'a>(csr: &'a X509CertificationRequest<'a>) -> Option<&'a [u8]> {
    csr.certification_request_info
        .iter_attributes()
        .find_map(|attribute| match attribute.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(request) => Some(request),
            _ => None,
        })?
        .extensions
        .iter()
        .find(|extension| extension.oid == OID_X509_EXT_SUBJECT_ALT_NAME)
        .map(|extension| extension.value)
}

/// A CSR's public key as rcgen needs it to write a certificate: what matters is the
/// SubjectPublicKeyInfo, from which rcgen derives the subject key identifier. The
/// SubjectPublicKeyInfo rcgen writes from `key` and `placeholder_algorithm` is replaced with the
/// CSR's by [`resign_with`], so any key type the CSR's signature verified with is signed.
struct CsrPublicKey<'a> {
    spki: &'a [u8],
    key: &'a [u8],
    placeholder_algorithm: &'static SignatureAlgorithm,
}

impl PublicKeyData for CsrPublicKey<'_> {
    fn subject_public_key_info(&self) -> Vec<u8> {
        self.spki.to_vec()
    }

    fn der_bytes(&self) -> &[u8] {
        self.key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.placeholder_algorithm
    }
}

/// `certificate` (as rcgen writes one: a version, then serial, signature algorithm, issuer,
/// validity, subject, subjectPublicKeyInfo and extensions) with its subject and
/// subjectPublicKeyInfo replaced by these DER elements, signed again by `ca_key`.
fn resign_with(
    certificate: &[u8],
    subject: &[u8],
    spki: &[u8],
    ca_key: &impl SigningKey,
) -> Result<Vec<u8>, String> {
    let (mut tbs, algorithm) = yasna::parse_der(certificate, |reader| {
        reader.read_sequence(|reader| {
            let mut tbs = Vec::new();
            reader.next().read_sequence_of(|element| {
                tbs.push(element.read_der()?);
                Ok(())
            })?;
            let algorithm = reader.next().read_der()?;
            reader.next().read_der()?;
            Ok((tbs, algorithm))
        })
    })
    .map_err(|e| format!("re-reading the certificate: {e}"))?;
    // Version is [0] EXPLICIT and optional; rcgen always writes it.
    let first = match tbs.first().and_then(|version| version.first()) {
        Some(0xa0) => 1,
        _ => 0,
    };
    for (index, element) in [(first + 4, subject), (first + 5, spki)] {
        *tbs.get_mut(index)
            .ok_or("re-reading the certificate: too few elements")? = element.to_vec();
    }
    let tbs = yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            for element in &tbs {
                writer.next().write_der(element);
            }
        })
    });
    let signature = ca_key.sign(&tbs).map_err(|e| e.to_string())?;
    Ok(yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            writer.next().write_der(&tbs);
            writer.next().write_der(&algorithm);
            writer
                .next()
                .write_bitvec_bytes(&signature, signature.len() * 8);
        })
    }))
}

/// PEM of a DER certificate, in 64-column lines.
fn certificate_pem(der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    let mut rest = body.as_str();
    while !rest.is_empty() {
        // Base64 is ASCII: any split is on a character boundary.
        let (line, tail) = rest.split_at(rest.len().min(64));
        pem.push_str(line);
        pem.push('\n');
        rest = tail;
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// A fresh ECDSA P-256 CA, valid from an hour ago for ten years.
fn test_ca() -> CertifiedIssuer<'static, KeyPair> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generating the test CA key");
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-test-server CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    CertifiedIssuer::self_signed(params, key).expect("self-signing the test CA")
}

/// cert-manager's name for a key usage, as an X.509 key usage.
fn key_usage(usage: &str) -> Option<KeyUsagePurpose> {
    Some(match usage {
        "signing" | "digital signature" => KeyUsagePurpose::DigitalSignature,
        "content commitment" => KeyUsagePurpose::ContentCommitment,
        "key encipherment" => KeyUsagePurpose::KeyEncipherment,
        "key agreement" => KeyUsagePurpose::KeyAgreement,
        "data encipherment" => KeyUsagePurpose::DataEncipherment,
        "cert sign" => KeyUsagePurpose::KeyCertSign,
        "crl sign" => KeyUsagePurpose::CrlSign,
        "encipher only" => KeyUsagePurpose::EncipherOnly,
        "decipher only" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

/// cert-manager's name for a key usage, as an X.509 extended key usage.
fn extended_key_usage(usage: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match usage {
        "any" => ExtendedKeyUsagePurpose::Any,
        "server auth" => ExtendedKeyUsagePurpose::ServerAuth,
        "client auth" => ExtendedKeyUsagePurpose::ClientAuth,
        "code signing" => ExtendedKeyUsagePurpose::CodeSigning,
        "email protection" | "s/mime" => ExtendedKeyUsagePurpose::EmailProtection,
        "timestamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "ocsp signing" => ExtendedKeyUsagePurpose::OcspSigning,
        _ => return None,
    })
}

/// What cert-manager writes on a denied request: Ready=False, reason Denied, and when it failed.
fn set_denied_ready(status: &mut Value) {
    set_condition(
        status,
        "Ready",
        "False",
        "Denied",
        "The CertificateRequest was denied by an approval controller",
    );
    status["failureTime"] = json!(now_rfc3339());
}

/// Sets a condition, replacing any of the same type, like cert-manager's `SetCertificateRequestCondition`
/// (whose lastTransitionTime changes only when the status does).
fn set_condition(status: &mut Value, kind: &str, value: &str, reason: &str, message: &str) {
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(conditions) = status["conditions"].as_array_mut() else {
        return;
    };
    let mut condition = json!({
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_rfc3339(),
    });
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(existing) => {
            if existing["status"] == value {
                condition["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = condition;
        }
        None => conditions.push(condition),
    }
}

fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Parses a Go `time.Duration` string: `"2160h0m0s"`, `"1h30m"`, `"1.5h"`, `"90s"`, `"250ms"`,
/// `"0"`. Negative durations are refused.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.strip_prefix('+').unwrap_or(text);
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let cases = [
            ("2160h0m0s", Some(2160 * 3600 * 1000u64)),
            ("1h", Some(3600 * 1000)),
            ("1h30m", Some(5400 * 1000)),
            ("1.5h", Some(5400 * 1000)),
            ("90s", Some(90 * 1000)),
            ("250ms", Some(250)),
            ("1m0.5s", Some(60_500)),
            ("0", Some(0)),
            ("", None),
            ("1", None),
            ("h", None),
            ("1d", None),
            ("-1h", None),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_go_duration(text).map(|d| d.as_millis()),
                millis.map(u128::from),
                "{text}"
            );
        }
        assert_eq!(
            parse_go_duration("1500us"),
            Some(Duration::from_micros(1500))
        );
    }

    #[test]
    fn conditions_replace_by_type() {
        let mut status = json!({});
        set_condition(&mut status, "Ready", "False", "Pending", "wait");
        set_condition(&mut status, "Approved", "True", "a", "b");
        set_condition(&mut status, "Ready", "True", "Issued", "done");
        let conditions = status["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0]["reason"], "Issued");
        assert_eq!(conditions[1]["type"], "Approved");
    }
}
