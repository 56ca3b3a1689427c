//! What the approver decides about one CertificateRequest: a pure function of the request (as the
//! API server returns it, JSON) and the approver's [`Policy`]. No I/O, so every rule is unit-tested
//! here and the controller only carries decisions out.
//!
//! The rules are upstream's (csi-driver-spiffe's evaluator: the CSR parses and its signature
//! verifies; `spec.duration` is the configured one; no common name, DNS, IP or email names; only
//! the SAN, key usage and extended key usage extensions, with digital signature / key
//! encipherment and server / client auth only; `spec.isCA` false; `spec.usages` exactly the four;
//! exactly one URI, the SPIFFE ID of the service account in `spec.username`, or with
//! `--use-own-service-account` a request made by the driver's own service account for a SPIFFE ID
//! of the trust domain). Stricter than upstream, each on purpose (see docs/spiffe-approver.md):
//! which requests are judged is decided by `spec.issuerRef`, not by an annotation; the SPIFFE ID's
//! namespace must be the request's own; the key must be ECDSA P-256 (what the driver makes); the
//! subject must be empty; the PEM must hold exactly one CSR; extensions must not repeat.

use std::time::Duration;

use k8s_openapi::ByteString;
use serde_json::Value;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension, X509Extension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519, OID_X509_EXT_EXTENDED_KEY_USAGE,
    OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::attributes::duration::{format_go_duration, parse_go_duration};
use crate::spiffe::id::{SpiffeId, TrustDomain};

/// The condition reason upstream writes on both approvals and denials.
pub const CONDITION_REASON: &str = "spiffe.csi.cert-manager.io";
/// The annotation csi-driver-spiffe puts on its requests (upstream's approver keys on it).
pub const IDENTITY_ANNOTATION: &str = "spiffe.csi.cert-manager.io/identity";
/// The message of an approval, as upstream writes it.
pub const APPROVED_MESSAGE: &str = "Approved request";
/// The `spec.usages` a SPIFFE request must carry, in any order.
pub const REQUIRED_USAGES: [&str; 4] = [
    "digital signature",
    "key encipherment",
    "server auth",
    "client auth",
];

/// The issuer the driver requests from: `spec.issuerRef` of the requests the approver judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRef {
    pub name: String,
    pub kind: String,
    pub group: String,
}

impl IssuerRef {
    /// cert-manager's defaults for an issuerRef: an empty kind is `Issuer`, an empty group
    /// `cert-manager.io`. A request that leaves them out asks for the same issuer as one that
    /// spells them, so it must be judged the same way (upstream compares the fields verbatim).
    pub fn normalised(name: &str, kind: &str, group: &str) -> IssuerRef {
        let or = |value: &str, default: &str| {
            if value.is_empty() {
                default.to_string()
            } else {
                value.to_string()
            }
        };
        IssuerRef {
            name: name.to_string(),
            kind: or(kind, "Issuer"),
            group: or(group, "cert-manager.io"),
        }
    }
}

/// What the approver enforces (its flags).
#[derive(Debug, Clone)]
pub struct Policy {
    pub trust_domain: TrustDomain,
    /// `--certificate-request-duration`: the one `spec.duration` allowed.
    pub certificate_request_duration: Duration,
    pub issuer: IssuerRef,
    /// `--use-own-service-account`: requests are made by the driver itself.
    pub use_own_service_account: bool,
    /// `--driver-service-account`: the driver's full username
    /// (`system:serviceaccount:<namespace>:<name>`).
    pub driver_service_account: Option<String>,
    /// `--auto-approve-non-spiffe`: approve requests for other issuers too (in place of
    /// cert-manager's own approver), unless they reach for a SPIFFE identity.
    pub auto_approve_non_spiffe: bool,
}

/// The approver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write `Approved=True`.
    Approve,
    /// Write `Denied=True` with this message.
    Deny(Denial),
    /// Write nothing.
    Leave(LeaveReason),
}

/// Why a request is denied: a class (a metric label) and the message for the condition, which
/// names the field and the value at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub class: DenialClass,
    pub message: String,
}

impl Denial {
    fn new(class: DenialClass, message: impl Into<String>) -> Denial {
        Denial {
            class,
            message: message.into(),
        }
    }

    /// The condition's message: `Denied request: <why>`, as upstream prefixes it.
    pub fn condition_message(&self) -> String {
        format!("Denied request: {}", self.message)
    }
}

/// What kind of rule a denied request broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DenialClass {
    /// `spec.request` is missing or not one PEM CSR.
    MalformedRequest,
    Signature,
    Duration,
    /// A common name, DNS name, IP address, email address or other non-URI name.
    ForbiddenName,
    /// Any subject attribute (stricter than upstream, which allows all but the CN).
    Subject,
    KeyType,
    Extension,
    IsCa,
    Usages,
    /// `spec.username` is not who may ask (not a service account, not the driver).
    Requester,
    /// The URI is not the one SPIFFE ID allowed.
    SpiffeId,
    /// The SPIFFE ID's namespace is not the request's (stricter than upstream).
    Namespace,
    /// With `--auto-approve-non-spiffe`: a request for another issuer that asks for a SPIFFE
    /// identity.
    SpiffeForOtherIssuer,
}

impl DenialClass {
    /// The value of the `reason` label on the denial counter.
    pub fn metric_label(self) -> &'static str {
        match self {
            DenialClass::MalformedRequest => "malformed_request",
            DenialClass::Signature => "signature",
            DenialClass::Duration => "duration",
            DenialClass::ForbiddenName => "forbidden_name",
            DenialClass::Subject => "subject",
            DenialClass::KeyType => "key_type",
            DenialClass::Extension => "extension",
            DenialClass::IsCa => "is_ca",
            DenialClass::Usages => "usages",
            DenialClass::Requester => "requester",
            DenialClass::SpiffeId => "spiffe_id",
            DenialClass::Namespace => "namespace",
            DenialClass::SpiffeForOtherIssuer => "spiffe_for_other_issuer",
        }
    }

    pub const ALL: [DenialClass; 13] = [
        DenialClass::MalformedRequest,
        DenialClass::Signature,
        DenialClass::Duration,
        DenialClass::ForbiddenName,
        DenialClass::Subject,
        DenialClass::KeyType,
        DenialClass::Extension,
        DenialClass::IsCa,
        DenialClass::Usages,
        DenialClass::Requester,
        DenialClass::SpiffeId,
        DenialClass::Namespace,
        DenialClass::SpiffeForOtherIssuer,
    ];
}

/// Why a request gets no condition from the approver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// Already Approved or Denied (by anyone), or already issued or failed.
    AlreadyDecided,
    /// For another issuer (and `--auto-approve-non-spiffe` is off).
    OtherIssuer,
}

/// Decides about one CertificateRequest. Never panics, whatever the JSON holds: a field of the
/// wrong type counts as absent, and anything the rules need but cannot read denies the request.
pub fn decide(request: &Value, policy: &Policy) -> Decision {
    if already_decided(request) {
        return Decision::Leave(LeaveReason::AlreadyDecided);
    }
    let issuer = IssuerRef::normalised(
        text(request, "/spec/issuerRef/name"),
        text(request, "/spec/issuerRef/kind"),
        text(request, "/spec/issuerRef/group"),
    );
    let outcome = if issuer == policy.issuer {
        judge_spiffe_request(request, policy)
    } else if policy.auto_approve_non_spiffe {
        judge_other_request(request)
    } else {
        return Decision::Leave(LeaveReason::OtherIssuer);
    };
    match outcome {
        Ok(()) => Decision::Approve,
        Err(denial) => Decision::Deny(denial),
    }
}

/// Whether someone already answered: an Approved or Denied condition (cert-manager allows only
/// `True` there, and neither can be removed), a Ready=True (issued) or a failure.
pub fn already_decided(request: &Value) -> bool {
    let conditions = request
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let decided = conditions.iter().any(|condition| {
        let kind = text(condition, "/type");
        kind == "Approved"
            || kind == "Denied"
            || (kind == "Ready" && text(condition, "/status") == "True")
    });
    decided || !text(request, "/status/failureTime").is_empty()
}

/// The full set of rules, in upstream's order (so the same forged request gets the same first
/// complaint), with the stricter checks where they belong.
fn judge_spiffe_request(request: &Value, policy: &Policy) -> Result<(), Denial> {
    let der = csr_der(request)?;
    let csr = parse_csr(&der)?;
    check_duration(request, policy.certificate_request_duration)?;
    csr.verify_signature().map_err(|error| {
        Denial::new(
            DenialClass::Signature,
            format!("spec.request: the CSR's signature does not verify ({error})"),
        )
    })?;
    let names = requested_names(&csr)?;
    names.check_only_uris()?;
    check_subject(&csr)?;
    check_key(&csr)?;
    check_extensions(&csr)?;
    if request
        .pointer("/spec/isCA")
        .is_some_and(|v| v != &Value::Bool(false))
    {
        return Err(Denial::new(
            DenialClass::IsCa,
            format!(
                "spec.isCA: must be false, is {}",
                request.pointer("/spec/isCA").unwrap_or(&Value::Null)
            ),
        ));
    }
    check_usages(request)?;
    let uri = names.single_uri()?;
    let namespace = text(request, "/metadata/namespace");
    let username = text(request, "/spec/username");
    if policy.use_own_service_account {
        check_driver_identity(uri, username, namespace, policy)
    } else {
        check_pod_identity(uri, username, namespace, policy)
    }
}

/// With `--auto-approve-non-spiffe`, a request for another issuer: approved, as cert-manager's
/// own approver would, unless it reaches for a SPIFFE identity (a `spiffe:` URI in its CSR, or the
/// driver's identity annotation), or its CSR cannot be read to tell.
fn judge_other_request(request: &Value) -> Result<(), Denial> {
    if request
        .pointer(&format!(
            "/metadata/annotations/{}",
            IDENTITY_ANNOTATION.replace('~', "~0").replace('/', "~1")
        ))
        .is_some()
    {
        return Err(Denial::new(
            DenialClass::SpiffeForOtherIssuer,
            format!(
                "metadata.annotations: {IDENTITY_ANNOTATION} is set on a request for another issuer than the SPIFFE one"
            ),
        ));
    }
    let der = csr_der(request)?;
    let csr = parse_csr(&der)?;
    let names = requested_names(&csr)?;
    if let Some(uri) = names.uris.iter().find(|uri| {
        uri.get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("spiffe:"))
    }) {
        return Err(Denial::new(
            DenialClass::SpiffeForOtherIssuer,
            format!(
                "non-SPIFFE certificate request contains SPIFFE URI SAN {uri:?} (spec.request)"
            ),
        ));
    }
    Ok(())
}

fn csr_der(request: &Value) -> Result<Vec<u8>, Denial> {
    let malformed = |why: String| Denial::new(DenialClass::MalformedRequest, why);
    let field = request
        .pointer("/spec/request")
        .filter(|v| !v.is_null())
        .ok_or_else(|| malformed("spec.request: is not set".into()))?;
    let ByteString(pem_bytes) = serde_json::from_value(field.clone())
        .map_err(|_| malformed("spec.request: is not base64".into()))?;
    let blocks = pem::parse_many(&pem_bytes)
        .map_err(|e| malformed(format!("spec.request: is not PEM ({e})")))?;
    match blocks.as_slice() {
        [block]
            if matches!(
                block.tag(),
                "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"
            ) =>
        {
            Ok(block.contents().to_vec())
        }
        [block] => Err(malformed(format!(
            "spec.request: holds a PEM {:?} block, not a CERTIFICATE REQUEST",
            block.tag()
        ))),
        [] => Err(malformed("spec.request: holds no PEM block".into())),
        more => Err(malformed(format!(
            "spec.request: holds {} PEM blocks; exactly one CERTIFICATE REQUEST is allowed",
            more.len()
        ))),
    }
}

fn parse_csr(der: &[u8]) -> Result<X509CertificationRequest<'_>, Denial> {
    match X509CertificationRequest::from_der(der) {
        Ok(([], csr)) => Ok(csr),
        Ok(_) => Err(Denial::new(
            DenialClass::MalformedRequest,
            "spec.request: trailing bytes after the CSR",
        )),
        Err(error) => Err(Denial::new(
            DenialClass::MalformedRequest,
            format!("spec.request: not a PKCS#10 CSR ({error})"),
        )),
    }
}

fn check_duration(request: &Value, required: Duration) -> Result<(), Denial> {
    let wanted = format_go_duration(required);
    let problem = match request.pointer("/spec/duration") {
        None | Some(Value::Null) => "is not set".to_string(),
        Some(Value::String(given)) => match parse_go_duration(given) {
            Ok(duration) if duration == required => return Ok(()),
            Ok(_) => format!("is {given:?}"),
            Err(reason) => format!("{given:?} {reason}"),
        },
        Some(other) => format!("is {other}"),
    };
    Err(Denial::new(
        DenialClass::Duration,
        format!("spec.duration: must be {wanted:?}, {problem}"),
    ))
}

/// The names a CSR asks for, from its subject (CN) and its SAN extension.
#[derive(Debug, Default)]
struct RequestedNames {
    common_names: Vec<String>,
    dns: Vec<String>,
    ips: Vec<String>,
    emails: Vec<String>,
    uris: Vec<String>,
    /// Other GeneralName kinds (otherName, directoryName, registeredID, …), described.
    other: Vec<String>,
}

impl RequestedNames {
    fn check_only_uris(&self) -> Result<(), Denial> {
        let mut found = Vec::new();
        for (label, values) in [
            ("common name", &self.common_names),
            ("DNS names", &self.dns),
            ("IP addresses", &self.ips),
            ("email addresses", &self.emails),
            ("other names", &self.other),
        ] {
            if !values.is_empty() {
                found.push(format!("{label} {values:?}"));
            }
        }
        if found.is_empty() {
            return Ok(());
        }
        Err(Denial::new(
            DenialClass::ForbiddenName,
            format!(
                "spec.request: only one URI SAN is allowed, the CSR also asks for {}",
                found.join(", ")
            ),
        ))
    }

    fn single_uri(&self) -> Result<&str, Denial> {
        match self.uris.as_slice() {
            [uri] => Ok(uri),
            uris => Err(Denial::new(
                DenialClass::SpiffeId,
                format!(
                    "spec.request: expected exactly 1 SPIFFE URI, the CSR has {} {uris:?}",
                    uris.len()
                ),
            )),
        }
    }
}

fn requested_names(csr: &X509CertificationRequest<'_>) -> Result<RequestedNames, Denial> {
    let info = &csr.certification_request_info;
    let mut names = RequestedNames {
        common_names: info
            .subject
            .iter_common_name()
            .map(|cn| {
                cn.as_str()
                    .map_or_else(|_| format!("{:?}", cn.as_slice()), str::to_string)
            })
            .collect(),
        ..RequestedNames::default()
    };
    for extension in extensions(csr)? {
        if extension.oid != OID_X509_EXT_SUBJECT_ALT_NAME {
            continue;
        }
        let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() else {
            return Err(Denial::new(
                DenialClass::Extension,
                "spec.request: the subject alternative name extension cannot be parsed",
            ));
        };
        for name in &san.general_names {
            match name {
                GeneralName::URI(uri) => names.uris.push(uri.to_string()),
                GeneralName::DNSName(dns) => names.dns.push(dns.to_string()),
                GeneralName::RFC822Name(email) => names.emails.push(email.to_string()),
                GeneralName::IPAddress(bytes) => names.ips.push(ip_text(bytes)),
                other => names.other.push(format!("{other:?}")),
            }
        }
    }
    Ok(names)
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(bytes);
            std::net::Ipv6Addr::from(octets).to_string()
        }
        _ => format!("{bytes:02x?}"),
    }
}

/// The CSR's requested extensions (its extensionRequest attribute), each at most once.
fn extensions<'a>(
    csr: &'a X509CertificationRequest<'a>,
) -> Result<Vec<&'a X509Extension<'a>>, Denial> {
    let mut all = Vec::new();
    for attribute in csr.certification_request_info.iter_attributes() {
        if let ParsedCriAttribute::ExtensionRequest(request) = attribute.parsed_attribute() {
            all.extend(request.extensions.iter());
        }
    }
    for (index, extension) in all.iter().enumerate() {
        if all[..index]
            .iter()
            .any(|earlier| earlier.oid == extension.oid)
        {
            return Err(Denial::new(
                DenialClass::Extension,
                format!(
                    "spec.request: the extension {} appears more than once",
                    extension.oid
                ),
            ));
        }
    }
    Ok(all)
}

fn check_subject(csr: &X509CertificationRequest<'_>) -> Result<(), Denial> {
    let subject = &csr.certification_request_info.subject;
    if subject.iter_attributes().next().is_none() {
        return Ok(());
    }
    Err(Denial::new(
        DenialClass::Subject,
        format!(
            "spec.request: the subject must be empty, is {subject:?}",
            subject = subject.to_string()
        ),
    ))
}

fn check_key(csr: &X509CertificationRequest<'_>) -> Result<(), Denial> {
    let spki = &csr.certification_request_info.subject_pki;
    let algorithm = &spki.algorithm.algorithm;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|parameters| parameters.as_oid().ok());
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY && curve.as_ref() == Some(&OID_EC_P256) {
        return Ok(());
    }
    let described = if *algorithm == OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
            _ => "RSA".to_string(),
        }
    } else if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        match curve {
            Some(oid) if oid == OID_NIST_EC_P384 => "ECDSA P-384".to_string(),
            Some(oid) if oid == OID_NIST_EC_P521 => "ECDSA P-521".to_string(),
            Some(oid) => format!("ECDSA on curve {oid}"),
            None => "ECDSA without a named curve".to_string(),
        }
    } else if *algorithm == OID_SIG_ED25519 {
        "Ed25519".to_string()
    } else {
        format!("key algorithm {algorithm}")
    };
    Err(Denial::new(
        DenialClass::KeyType,
        format!("spec.request: the key must be ECDSA P-256, is {described}"),
    ))
}

/// Key usage bits allowed: digital signature (bit 0) and key encipherment (bit 2).
const ALLOWED_KEY_USAGE_BITS: u16 = 0b101;

fn check_extensions(csr: &X509CertificationRequest<'_>) -> Result<(), Denial> {
    let forbidden =
        |what: String| Denial::new(DenialClass::Extension, format!("spec.request: {what}"));
    for extension in extensions(csr)? {
        if extension.oid == OID_X509_EXT_SUBJECT_ALT_NAME {
            continue; // Judged name by name.
        } else if extension.oid == OID_X509_EXT_KEY_USAGE {
            match extension.parsed_extension() {
                ParsedExtension::KeyUsage(usage) if usage.flags & !ALLOWED_KEY_USAGE_BITS == 0 => {}
                ParsedExtension::KeyUsage(usage) => {
                    return Err(forbidden(format!(
                        "forbidden key usage {usage}: only digital signature and key encipherment are allowed"
                    )));
                }
                _ => return Err(forbidden("the key usage extension cannot be parsed".into())),
            }
        } else if extension.oid == OID_X509_EXT_EXTENDED_KEY_USAGE {
            match extension.parsed_extension() {
                ParsedExtension::ExtendedKeyUsage(usage)
                    if !usage.any
                        && !usage.code_signing
                        && !usage.email_protection
                        && !usage.time_stamping
                        && !usage.ocsp_signing
                        && usage.other.is_empty() => {}
                ParsedExtension::ExtendedKeyUsage(usage) => {
                    return Err(forbidden(format!(
                        "forbidden extended key usage {usage:?}: only server auth and client auth are allowed"
                    )));
                }
                _ => {
                    return Err(forbidden(
                        "the extended key usage extension cannot be parsed".into(),
                    ));
                }
            }
        } else {
            return Err(forbidden(format!("forbidden extension {}", extension.oid)));
        }
    }
    Ok(())
}

fn check_usages(request: &Value) -> Result<(), Denial> {
    let given = request.pointer("/spec/usages");
    let mut usages: Option<Vec<&str>> = match given {
        Some(Value::Array(items)) => items.iter().map(Value::as_str).collect(),
        None | Some(Value::Null) => Some(Vec::new()),
        Some(_) => None,
    };
    if let Some(usages) = usages.as_mut() {
        usages.sort_unstable();
        let mut required = REQUIRED_USAGES;
        required.sort_unstable();
        if usages.as_slice() == required {
            return Ok(());
        }
    }
    Err(Denial::new(
        DenialClass::Usages,
        format!(
            "spec.usages: must be exactly {REQUIRED_USAGES:?} in any order, is {}",
            given.unwrap_or(&Value::Null)
        ),
    ))
}

/// Default mode: the URI is the SPIFFE ID of the service account that made the request, in the
/// request's own namespace.
fn check_pod_identity(
    uri: &str,
    username: &str,
    namespace: &str,
    policy: &Policy,
) -> Result<(), Denial> {
    let parts: Vec<&str> = username.split(':').collect();
    let (sa_namespace, sa_name) = match parts.as_slice() {
        ["system", "serviceaccount", ns, name] => (*ns, *name),
        _ => {
            return Err(Denial::new(
                DenialClass::Requester,
                format!(
                    "spec.username: {username:?} is not a service account (system:serviceaccount:<namespace>:<name>)"
                ),
            ));
        }
    };
    let expected =
        SpiffeId::new(policy.trust_domain.clone(), sa_namespace, sa_name).map_err(|e| {
            Denial::new(
                DenialClass::Requester,
                format!("spec.username: {username:?} gives no valid SPIFFE ID ({e})"),
            )
        })?;
    if uri != expected.to_string() {
        return Err(Denial::new(
            DenialClass::SpiffeId,
            format!(
                "spec.request: unexpected SPIFFE ID requested, expected {:?} for spec.username {username:?}, got {uri:?}",
                expected.to_string()
            ),
        ));
    }
    if sa_namespace != namespace {
        return Err(Denial::new(
            DenialClass::Namespace,
            format!(
                "metadata.namespace: the request is in {namespace:?}, but its SPIFFE ID {uri:?} (spec.username {username:?}) is of namespace {sa_namespace:?}"
            ),
        ));
    }
    Ok(())
}

/// `--use-own-service-account`: the driver made the request; the URI is any service account's
/// SPIFFE ID in the trust domain (upstream checks the trust domain only), in the request's
/// namespace (the driver creates requests in the pod's namespace).
fn check_driver_identity(
    uri: &str,
    username: &str,
    namespace: &str,
    policy: &Policy,
) -> Result<(), Denial> {
    let id = SpiffeId::parse(uri).map_err(|e| {
        Denial::new(
            DenialClass::SpiffeId,
            format!("spec.request: URI {uri:?} is not a SPIFFE ID ({e})"),
        )
    })?;
    if id.trust_domain() != &policy.trust_domain {
        return Err(Denial::new(
            DenialClass::SpiffeId,
            format!(
                "spec.request: unexpected trust domain, expected {:?}, got {:?}",
                policy.trust_domain.as_str(),
                id.trust_domain().as_str()
            ),
        ));
    }
    let driver = policy.driver_service_account.as_deref().unwrap_or_default();
    if driver.is_empty() || username != driver {
        return Err(Denial::new(
            DenialClass::Requester,
            format!(
                "spec.username: the request must be made by the csi-driver-spiffe service account {driver:?}, was made by {username:?}"
            ),
        ));
    }
    if id.namespace() != namespace {
        return Err(Denial::new(
            DenialClass::Namespace,
            format!(
                "metadata.namespace: the request is in {namespace:?}, but its SPIFFE ID {uri:?} is of namespace {:?}",
                id.namespace()
            ),
        ));
    }
    Ok(())
}

fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests;
