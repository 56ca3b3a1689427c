//! Step 2 of a volume's path: the volume context kubelet sends → a validated [`VolumeAttributes`].
//!
//! Pure: no I/O. Every problem found is collected, so one `InvalidArgument` tells the user all
//! that is wrong with a volume at once, each problem naming the key and the bad value.

pub mod duration;
pub mod subject;
mod variables;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

pub use duration::{format_go_duration, parse_go_duration};
pub use subject::Subject;
pub use variables::{KNOWN_VARIABLES, expand};

/// Prefix of the attributes this driver reads.
pub const PREFIX: &str = "csi.cert-manager.io/";
/// Prefix of the keys kubelet adds (pod info, ephemeral flag, tokens).
pub const KUBELET_PREFIX: &str = "csi.storage.k8s.io/";

/// The keys kubelet adds to the volume context.
pub const KUBELET_KEYS: &[&str] = &[
    key::POD_NAME,
    key::POD_NAMESPACE,
    key::POD_UID,
    key::SERVICE_ACCOUNT_NAME,
    key::EPHEMERAL,
    key::SERVICE_ACCOUNT_TOKENS,
];

/// Attribute keys, spelled as upstream spells them.
pub mod key {
    pub const ISSUER_NAME: &str = "csi.cert-manager.io/issuer-name";
    pub const ISSUER_KIND: &str = "csi.cert-manager.io/issuer-kind";
    pub const ISSUER_GROUP: &str = "csi.cert-manager.io/issuer-group";
    pub const COMMON_NAME: &str = "csi.cert-manager.io/common-name";
    pub const DNS_NAMES: &str = "csi.cert-manager.io/dns-names";
    pub const IP_SANS: &str = "csi.cert-manager.io/ip-sans";
    pub const URI_SANS: &str = "csi.cert-manager.io/uri-sans";
    pub const DURATION: &str = "csi.cert-manager.io/duration";
    pub const RENEW_BEFORE: &str = "csi.cert-manager.io/renew-before";
    pub const IS_CA: &str = "csi.cert-manager.io/is-ca";
    pub const KEY_USAGES: &str = "csi.cert-manager.io/key-usages";
    pub const KEY_ALGORITHM: &str = "csi.cert-manager.io/key-algorithm";
    pub const KEY_SIZE: &str = "csi.cert-manager.io/key-size";
    pub const KEY_ENCODING: &str = "csi.cert-manager.io/key-encoding";
    pub const CERTIFICATE_FILE: &str = "csi.cert-manager.io/certificate-file";
    pub const PRIVATE_KEY_FILE: &str = "csi.cert-manager.io/privatekey-file";
    pub const CA_FILE: &str = "csi.cert-manager.io/ca-file";
    pub const FS_GROUP: &str = "csi.cert-manager.io/fs-group";
    pub const REUSE_PRIVATE_KEY: &str = "csi.cert-manager.io/reuse-private-key";
    pub const LITERAL_SUBJECT: &str = "csi.cert-manager.io/literal-subject";
    pub const ORGANIZATIONS: &str = "csi.cert-manager.io/organizations";
    pub const ORGANIZATIONAL_UNITS: &str = "csi.cert-manager.io/organizationalunits";
    pub const COUNTRIES: &str = "csi.cert-manager.io/countries";
    pub const PROVINCES: &str = "csi.cert-manager.io/provinces";
    pub const LOCALITIES: &str = "csi.cert-manager.io/localities";
    pub const STREET_ADDRESSES: &str = "csi.cert-manager.io/streetaddresses";
    pub const POSTAL_CODES: &str = "csi.cert-manager.io/postalcodes";
    pub const SERIAL_NUMBER: &str = "csi.cert-manager.io/serialnumber";
    pub const PKCS12_ENABLE: &str = "csi.cert-manager.io/pkcs12-enable";
    pub const PKCS12_FILENAME: &str = "csi.cert-manager.io/pkcs12-filename";
    pub const PKCS12_PASSWORD: &str = "csi.cert-manager.io/pkcs12-password";
    /// New in this driver: which PKCS#12 encryption profile to write.
    pub const PKCS12_PROFILE: &str = "csi.cert-manager.io/pkcs12-profile";

    pub const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
    pub const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
    pub const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
    pub const SERVICE_ACCOUNT_NAME: &str = "csi.storage.k8s.io/serviceAccount.name";
    pub const EPHEMERAL: &str = "csi.storage.k8s.io/ephemeral";
    pub const SERVICE_ACCOUNT_TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";
}

/// Context keys whose values are secrets: never printed, never logged.
pub const SECRET_KEYS: &[&str] = &[key::SERVICE_ACCOUNT_TOKENS, key::PKCS12_PASSWORD];

/// Whether a context key holds a secret: the listed ones, and anything that looks like a
/// password (old spellings, typos of the password key).
pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&key) || key.to_ascii_lowercase().contains("pass")
}

/// A volume context made safe to print: secret values replaced by `<redacted>`, keys sorted.
pub fn redacted_context<'a>(
    context: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> BTreeMap<&'a str, &'a str> {
    context
        .into_iter()
        .map(|(key, value)| {
            let shown = if is_secret_key(key) {
                "<redacted>"
            } else {
                value.as_str()
            };
            (key.as_str(), shown)
        })
        .collect()
}

/// The `csi.cert-manager.io/*` keys this driver reads: upstream's table plus `pkcs12-profile`.
pub const HANDLED_KEYS: &[&str] = &[
    key::ISSUER_NAME,
    key::ISSUER_KIND,
    key::ISSUER_GROUP,
    key::COMMON_NAME,
    key::DNS_NAMES,
    key::IP_SANS,
    key::URI_SANS,
    key::DURATION,
    key::RENEW_BEFORE,
    key::IS_CA,
    key::KEY_USAGES,
    key::KEY_ALGORITHM,
    key::KEY_SIZE,
    key::KEY_ENCODING,
    key::CERTIFICATE_FILE,
    key::PRIVATE_KEY_FILE,
    key::CA_FILE,
    key::FS_GROUP,
    key::REUSE_PRIVATE_KEY,
    key::LITERAL_SUBJECT,
    key::ORGANIZATIONS,
    key::ORGANIZATIONAL_UNITS,
    key::COUNTRIES,
    key::PROVINCES,
    key::LOCALITIES,
    key::STREET_ADDRESSES,
    key::POSTAL_CODES,
    key::SERIAL_NUMBER,
    key::PKCS12_ENABLE,
    key::PKCS12_FILENAME,
    key::PKCS12_PASSWORD,
    key::PKCS12_PROFILE,
];

/// Spellings of seed 001 (and older upstream docs) accepted with a warning: alias → key.
pub const ALIASES: &[(&str, &str)] = &[
    (
        "csi.cert-manager.io/keystore-pkcs12-enable",
        key::PKCS12_ENABLE,
    ),
    (
        "csi.cert-manager.io/keystore-pkcs12-filename",
        key::PKCS12_FILENAME,
    ),
    (
        "csi.cert-manager.io/keystore-pkcs12-password",
        key::PKCS12_PASSWORD,
    ),
];

/// The pod a volume belongs to, as kubelet describes it (`podInfoOnMount: true`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodInfo {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub service_account: Option<String>,
}

/// Which cert-manager issuer signs the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRef {
    pub name: String,
    pub kind: String,
    pub group: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa,
    Ecdsa,
    Ed25519,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::Rsa => "RSA",
            KeyAlgorithm::Ecdsa => "ECDSA",
            KeyAlgorithm::Ed25519 => "Ed25519",
        })
    }
}

/// PEM encoding of the private key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// `RSA PRIVATE KEY` (RSA only).
    Pkcs1,
    /// `PRIVATE KEY`.
    Pkcs8,
}

/// The private key a volume asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub algorithm: KeyAlgorithm,
    /// Bits for RSA, curve size for ECDSA, 0 for Ed25519.
    pub size: u32,
    pub encoding: KeyEncoding,
}

impl KeySpec {
    /// RSA 2048, PKCS#1: upstream's default.
    pub const DEFAULT: KeySpec = KeySpec {
        algorithm: KeyAlgorithm::Rsa,
        size: 2048,
        encoding: KeyEncoding::Pkcs1,
    };
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.algorithm {
            KeyAlgorithm::Rsa => write!(f, "RSA {}", self.size),
            KeyAlgorithm::Ecdsa => write!(f, "ECDSA P-{}", self.size),
            KeyAlgorithm::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// The usages cert-manager knows, by their cert-manager names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyUsage {
    Signing,
    DigitalSignature,
    ContentCommitment,
    KeyEncipherment,
    KeyAgreement,
    DataEncipherment,
    CertSign,
    CrlSign,
    EncipherOnly,
    DecipherOnly,
    Any,
    ServerAuth,
    ClientAuth,
    CodeSigning,
    EmailProtection,
    Smime,
    IpsecEndSystem,
    IpsecTunnel,
    IpsecUser,
    Timestamping,
    OcspSigning,
    MicrosoftSgc,
    NetscapeSgc,
}

impl KeyUsage {
    pub const ALL: [KeyUsage; 23] = [
        KeyUsage::Signing,
        KeyUsage::DigitalSignature,
        KeyUsage::ContentCommitment,
        KeyUsage::KeyEncipherment,
        KeyUsage::KeyAgreement,
        KeyUsage::DataEncipherment,
        KeyUsage::CertSign,
        KeyUsage::CrlSign,
        KeyUsage::EncipherOnly,
        KeyUsage::DecipherOnly,
        KeyUsage::Any,
        KeyUsage::ServerAuth,
        KeyUsage::ClientAuth,
        KeyUsage::CodeSigning,
        KeyUsage::EmailProtection,
        KeyUsage::Smime,
        KeyUsage::IpsecEndSystem,
        KeyUsage::IpsecTunnel,
        KeyUsage::IpsecUser,
        KeyUsage::Timestamping,
        KeyUsage::OcspSigning,
        KeyUsage::MicrosoftSgc,
        KeyUsage::NetscapeSgc,
    ];

    /// The name used in the attribute and in `CertificateRequest.spec.usages`.
    pub fn name(self) -> &'static str {
        match self {
            KeyUsage::Signing => "signing",
            KeyUsage::DigitalSignature => "digital signature",
            KeyUsage::ContentCommitment => "content commitment",
            KeyUsage::KeyEncipherment => "key encipherment",
            KeyUsage::KeyAgreement => "key agreement",
            KeyUsage::DataEncipherment => "data encipherment",
            KeyUsage::CertSign => "cert sign",
            KeyUsage::CrlSign => "crl sign",
            KeyUsage::EncipherOnly => "encipher only",
            KeyUsage::DecipherOnly => "decipher only",
            KeyUsage::Any => "any",
            KeyUsage::ServerAuth => "server auth",
            KeyUsage::ClientAuth => "client auth",
            KeyUsage::CodeSigning => "code signing",
            KeyUsage::EmailProtection => "email protection",
            KeyUsage::Smime => "s/mime",
            KeyUsage::IpsecEndSystem => "ipsec end system",
            KeyUsage::IpsecTunnel => "ipsec tunnel",
            KeyUsage::IpsecUser => "ipsec user",
            KeyUsage::Timestamping => "timestamping",
            KeyUsage::OcspSigning => "ocsp signing",
            KeyUsage::MicrosoftSgc => "microsoft sgc",
            KeyUsage::NetscapeSgc => "netscape sgc",
        }
    }

    pub fn from_name(name: &str) -> Option<KeyUsage> {
        KeyUsage::ALL.into_iter().find(|usage| usage.name() == name)
    }
}

/// File names inside the volume.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileNames {
    pub certificate: String,
    pub private_key: String,
    pub ca: String,
}

/// PKCS#12 encryption profiles, named as in cert-manager's Certificate API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkcs12Profile {
    /// RC2-40 for certificates, 3DES for the key, SHA-1 MAC: what upstream writes, and what old
    /// Java and Windows read.
    LegacyRc2,
    /// 3DES for certificates and key, SHA-1 MAC.
    LegacyDes,
    /// AES-256-CBC with PBKDF2-HMAC-SHA-256, SHA-256 MAC.
    Modern2023,
}

impl Pkcs12Profile {
    pub fn name(self) -> &'static str {
        match self {
            Pkcs12Profile::LegacyRc2 => "LegacyRC2",
            Pkcs12Profile::LegacyDes => "LegacyDES",
            Pkcs12Profile::Modern2023 => "Modern2023",
        }
    }
}

/// A keystore password: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The PKCS#12 keystore a volume asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs12Spec {
    pub file_name: String,
    pub password: Password,
    pub profile: Pkcs12Profile,
}

/// Everything a volume asks of its certificate, validated and with variables expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRequestSpec {
    pub issuer: IssuerRef,
    /// Subject in encoding order; from `literal-subject`, else from common-name and the
    /// per-field attributes.
    pub subject: Subject,
    pub dns_names: Vec<String>,
    pub ip_sans: Vec<IpAddr>,
    pub uri_sans: Vec<String>,
    pub duration: Duration,
    pub renew_before: Option<Duration>,
    pub is_ca: bool,
    pub usages: Vec<KeyUsage>,
    pub key: KeySpec,
    pub files: FileNames,
    pub fs_group: Option<u32>,
    pub reuse_private_key: bool,
    pub pkcs12: Option<Pkcs12Spec>,
    /// Attributes of other prefixes, passed on to the issuer as annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A parsed, valid volume context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeAttributes {
    pub pod: PodInfo,
    pub spec: CertRequestSpec,
    /// `csi.cert-manager.io/*` keys this driver does not read (likely typos).
    pub unknown_keys: Vec<String>,
    /// Things worth telling the user that do not make the volume invalid (typos with a "did you
    /// mean" hint, old spellings, attributes that another one overrides).
    pub warnings: Vec<String>,
}

/// The certificate lifetime a volume gets without a `duration` attribute: upstream's documented
/// 720h. (The Go driver's code actually leaves `duration` out of its request then, so cert-manager
/// applies its own 2160h; `--default-duration=2160h` reproduces that.)
pub const DEFAULT_DURATION: Duration = Duration::from_secs(720 * 3600);

/// How to read a volume context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Unknown `csi.cert-manager.io/*` keys are errors instead of warnings (`--strict-attributes`).
    pub strict: bool,
    /// The lifetime of a volume without a `duration` attribute (`--default-duration`).
    pub default_duration: Duration,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            strict: false,
            default_duration: DEFAULT_DURATION,
        }
    }
}

/// One problem with one attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeProblem {
    pub key: String,
    pub value: Option<String>,
    pub reason: String,
}

/// Values longer than this are shown cut short in messages (a 1 MB value must not make a 1 MB
/// error that kubelet then cuts off anyway).
const SHOWN_VALUE_CHARS: usize = 300;

impl fmt::Display for AttributeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) if value.chars().count() > SHOWN_VALUE_CHARS => {
                let start: String = value.chars().take(SHOWN_VALUE_CHARS).collect();
                write!(
                    f,
                    "{}={start:?}… ({} bytes) {}",
                    self.key,
                    value.len(),
                    self.reason
                )
            }
            Some(value) => write!(f, "{}={value:?} {}", self.key, self.reason),
            None => write!(f, "{} {}", self.key, self.reason),
        }
    }
}

/// Every problem found in a volume context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidAttributes(pub Vec<AttributeProblem>);

impl fmt::Display for InvalidAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid volume attributes: ")?;
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Collects problems while reading one context.
struct Reader<'a> {
    context: &'a HashMap<String, String>,
    problems: Vec<AttributeProblem>,
}

impl<'a> Reader<'a> {
    /// The value of `key`, or of its old spelling when only that is set.
    fn get(&self, key: &str) -> Option<&'a str> {
        self.context.get(key).map(String::as_str).or_else(|| {
            ALIASES
                .iter()
                .filter(|(_, canonical)| *canonical == key)
                .find_map(|(alias, _)| self.context.get(*alias).map(String::as_str))
        })
    }

    /// The key as the user wrote it: an old spelling when only that is set.
    fn spelled(&self, key: &str) -> String {
        if self.context.contains_key(key) {
            return key.to_string();
        }
        ALIASES
            .iter()
            .find(|(alias, canonical)| *canonical == key && self.context.contains_key(*alias))
            .map_or_else(|| key.to_string(), |(alias, _)| alias.to_string())
    }

    fn problem(&mut self, key: &str, value: Option<&str>, reason: impl Into<String>) {
        let key = self.spelled(key);
        self.problems.push(AttributeProblem {
            key,
            value: value.map(str::to_string),
            reason: reason.into(),
        });
    }

    /// A value with variables expanded; a bad variable is recorded as a problem.
    fn expanded(&mut self, key: &str, pod: &PodInfo) -> Option<String> {
        let raw = self.get(key)?;
        match expand(raw, pod) {
            Ok(value) => Some(value),
            Err(reason) => {
                self.problem(key, Some(raw), reason);
                None
            }
        }
    }

    fn boolean(&mut self, key: &str) -> bool {
        match self.get(key) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                self.problem(key, Some(other), "must be \"true\" or \"false\"");
                false
            }
        }
    }

    fn duration(&mut self, key: &str) -> Option<Duration> {
        let raw = self.get(key)?;
        match parse_go_duration(raw) {
            // Certificates carry whole seconds; anything shorter would be born expired and
            // renewed in a tight loop.
            Ok(value) if value < Duration::from_secs(1) => {
                self.problem(key, Some(raw), "must be at least 1s");
                None
            }
            Ok(value) => Some(value),
            Err(reason) => {
                self.problem(key, Some(raw), reason);
                None
            }
        }
    }

    fn file_name(&mut self, key: &str, default: &str) -> String {
        let name = self.get(key).unwrap_or(default);
        if let Err(reason) = check_file_name(name) {
            self.problem(key, Some(name), reason);
        }
        name.to_string()
    }
}

/// A plain decimal number (no sign, no spaces inside), as Kubernetes users write it.
fn parse_decimal(raw: &str) -> Result<u32, ()> {
    let digits = raw.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    digits.parse().map_err(|_| ())
}

/// Comma-separated list, entries trimmed, empty entries dropped.
fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_string)
        .collect()
}

/// A file name must stay inside the volume: a plain name, no directories, no `..` tricks.
pub fn check_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > 255 {
        return Err("must be at most 255 characters");
    }
    if name.starts_with('/') {
        return Err("must not be an absolute path");
    }
    if name.contains('/') {
        return Err("must be a plain file name without '/'");
    }
    if name.starts_with("..") {
        return Err("must not start with '..'");
    }
    if name == "." {
        return Err("must be a file name, not '.'");
    }
    if name.trim() != name {
        return Err("must not start or end with spaces");
    }
    if name.contains('\0') {
        return Err("must not contain NUL");
    }
    Ok(())
}

fn parse_key_spec(reader: &mut Reader<'_>) -> KeySpec {
    let algorithm_raw = reader.get(key::KEY_ALGORITHM);
    let algorithm = match algorithm_raw.map(str::to_ascii_lowercase).as_deref() {
        None | Some("rsa") => KeyAlgorithm::Rsa,
        Some("ecdsa") => KeyAlgorithm::Ecdsa,
        Some("ed25519") => KeyAlgorithm::Ed25519,
        Some(_) => {
            reader.problem(
                key::KEY_ALGORITHM,
                algorithm_raw,
                "must be one of RSA, ECDSA, Ed25519",
            );
            KeyAlgorithm::Rsa
        }
    };
    let size_raw = reader.get(key::KEY_SIZE);
    let size = match (algorithm, size_raw) {
        (KeyAlgorithm::Rsa, None) => 2048,
        (KeyAlgorithm::Ecdsa, None) => 256,
        (KeyAlgorithm::Ed25519, None) => 0,
        (KeyAlgorithm::Ed25519, Some(raw)) => {
            reader.problem(key::KEY_SIZE, Some(raw), "must not be set for Ed25519 keys");
            0
        }
        (algorithm, Some(raw)) => match parse_decimal(raw) {
            Ok(bits) if algorithm == KeyAlgorithm::Rsa && (2048..=8192).contains(&bits) => bits,
            Ok(bits) if algorithm == KeyAlgorithm::Ecdsa && [256, 384, 521].contains(&bits) => bits,
            _ if algorithm == KeyAlgorithm::Rsa => {
                reader.problem(
                    key::KEY_SIZE,
                    Some(raw),
                    "must be between 2048 and 8192 for RSA",
                );
                2048
            }
            _ => {
                reader.problem(
                    key::KEY_SIZE,
                    Some(raw),
                    "must be 256, 384 or 521 for ECDSA",
                );
                256
            }
        },
    };
    let encoding_raw = reader.get(key::KEY_ENCODING);
    let encoding = match encoding_raw.map(str::to_ascii_uppercase).as_deref() {
        None if algorithm == KeyAlgorithm::Rsa => KeyEncoding::Pkcs1,
        None => KeyEncoding::Pkcs8,
        Some("PKCS1") if algorithm == KeyAlgorithm::Rsa => KeyEncoding::Pkcs1,
        Some("PKCS1") => {
            reader.problem(
                key::KEY_ENCODING,
                encoding_raw,
                format!("PKCS1 is only valid for RSA keys, not {algorithm}; use PKCS8"),
            );
            KeyEncoding::Pkcs8
        }
        Some("PKCS8") => KeyEncoding::Pkcs8,
        Some(_) => {
            reader.problem(key::KEY_ENCODING, encoding_raw, "must be PKCS1 or PKCS8");
            KeyEncoding::Pkcs8
        }
    };
    KeySpec {
        algorithm,
        size,
        encoding,
    }
}

fn parse_usages(reader: &mut Reader<'_>) -> Vec<KeyUsage> {
    let Some(raw) = reader.get(key::KEY_USAGES) else {
        return vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];
    };
    let mut usages = Vec::new();
    for name in split_list(raw) {
        match KeyUsage::from_name(&name) {
            Some(usage) if !usages.contains(&usage) => usages.push(usage),
            Some(_) => {}
            None => reader.problem(
                key::KEY_USAGES,
                Some(raw),
                format!(
                    "contains unknown usage {name:?}; known usages: {}",
                    KeyUsage::ALL.map(KeyUsage::name).join(", ")
                ),
            ),
        }
    }
    if usages.is_empty() {
        reader.problem(key::KEY_USAGES, Some(raw), "must name at least one usage");
    }
    usages
}

fn parse_pod(reader: &mut Reader<'_>) -> PodInfo {
    let mut required = |key: &str| match reader.get(key) {
        Some(value) if !value.is_empty() => value.to_string(),
        _ => {
            reader.problem(
                key,
                None,
                "is missing: kubelet must pass pod info (podInfoOnMount: true on the CSIDriver)",
            );
            String::new()
        }
    };
    PodInfo {
        name: required(key::POD_NAME),
        namespace: required(key::POD_NAMESPACE),
        uid: required(key::POD_UID),
        service_account: reader
            .get(key::SERVICE_ACCOUNT_NAME)
            .filter(|name| !name.is_empty())
            .map(str::to_string),
    }
}

/// `namespace/name`, as logs and messages name a pod (`?` for a part kubelet did not send).
impl fmt::Display for PodInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_unknown = |part: &str| if part.is_empty() { "?" } else { part }.to_string();
        write!(
            f,
            "{}/{}",
            or_unknown(&self.namespace),
            or_unknown(&self.name)
        )
    }
}

impl PodInfo {
    /// The pod info kubelet passed, as far as it is there, without judging anything else: for
    /// naming the pod of a volume whose attributes are rejected (Events, logs, status).
    pub fn read_from(context: &HashMap<String, String>) -> PodInfo {
        let mut reader = Reader {
            context,
            problems: Vec::new(),
        };
        parse_pod(&mut reader)
    }
}

/// Reads and validates a volume context as kubelet sends it in `NodePublishVolume`.
pub fn parse_volume_context(
    context: &HashMap<String, String>,
) -> Result<VolumeAttributes, InvalidAttributes> {
    parse_volume_context_with(context, ParseOptions::default())
}

/// [`parse_volume_context`] with options.
pub fn parse_volume_context_with(
    context: &HashMap<String, String>,
    options: ParseOptions,
) -> Result<VolumeAttributes, InvalidAttributes> {
    let mut reader = Reader {
        context,
        problems: Vec::new(),
    };

    match reader.get(key::EPHEMERAL) {
        Some("true") => {}
        other => reader.problem(
            key::EPHEMERAL,
            other,
            "must be \"true\": this driver only serves CSI ephemeral inline volumes",
        ),
    }
    let pod = parse_pod(&mut reader);

    let issuer_name = match reader.get(key::ISSUER_NAME) {
        Some(name) if !name.trim().is_empty() => name.trim().to_string(),
        raw => {
            reader.problem(key::ISSUER_NAME, raw, "is required and must not be empty");
            String::new()
        }
    };
    let mut non_empty = |key: &str, default: &str| match reader.get(key) {
        None => default.to_string(),
        Some(value) if !value.trim().is_empty() => value.trim().to_string(),
        Some(value) => {
            reader.problem(key, Some(value), "must not be empty");
            default.to_string()
        }
    };
    let issuer = IssuerRef {
        name: issuer_name,
        kind: non_empty(key::ISSUER_KIND, "Issuer"),
        group: non_empty(key::ISSUER_GROUP, "cert-manager.io"),
    };

    let mut warnings = Vec::new();
    let subject = parse_subject(&mut reader, &pod, &mut warnings);
    let dns_names = reader
        .expanded(key::DNS_NAMES, &pod)
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
    let mut uri_sans = Vec::new();
    if let Some(expanded) = reader.expanded(key::URI_SANS, &pod) {
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
    // Something must name the certificate, as cert-manager requires: a common name (from
    // common-name or inside literal-subject) or at least one SAN. Checked on the parsed values,
    // so `dns-names: ","` does not count.
    if subject.common_name().is_none()
        && dns_names.is_empty()
        && ip_sans.is_empty()
        && uri_sans.is_empty()
    {
        reader.problem(
            key::DNS_NAMES,
            reader.get(key::DNS_NAMES),
            "names nothing: set common-name (or a CN in literal-subject), dns-names, ip-sans or uri-sans",
        );
    }

    let duration = reader
        .duration(key::DURATION)
        .unwrap_or(options.default_duration);
    let renew_before = reader.duration(key::RENEW_BEFORE);
    let is_ca = reader.boolean(key::IS_CA);
    let usages = parse_usages(&mut reader);
    let key_spec = parse_key_spec(&mut reader);

    let files = FileNames {
        certificate: reader.file_name(key::CERTIFICATE_FILE, "tls.crt"),
        private_key: reader.file_name(key::PRIVATE_KEY_FILE, "tls.key"),
        ca: reader.file_name(key::CA_FILE, "ca.crt"),
    };
    let pkcs12 = parse_pkcs12(&mut reader);
    let mut file_keys = vec![
        (key::CERTIFICATE_FILE, &files.certificate),
        (key::PRIVATE_KEY_FILE, &files.private_key),
        (key::CA_FILE, &files.ca),
    ];
    if let Some(keystore) = &pkcs12 {
        file_keys.push((key::PKCS12_FILENAME, &keystore.file_name));
    }
    // Blame a collision on an attribute the user set, not on one that kept its default.
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (file_key, name) in file_keys {
        match seen.get(name.as_str()) {
            Some(first_key) => {
                let blamed = if reader.get(file_key).is_some() {
                    file_key
                } else {
                    *first_key
                };
                reader.problem(
                    blamed,
                    Some(name),
                    "names the same file as another file attribute; file names must be distinct",
                );
            }
            None => {
                seen.insert(name.as_str(), file_key);
            }
        }
    }

    let fs_group = reader
        .get(key::FS_GROUP)
        .and_then(|raw| match parse_decimal(raw) {
            Ok(gid) if gid > 0 => Some(gid),
            _ => {
                reader.problem(
                    key::FS_GROUP,
                    Some(raw),
                    "must be an integer from 1 to 4294967295",
                );
                None
            }
        });
    let reuse_private_key = reader.boolean(key::REUSE_PRIVATE_KEY);

    let mut unknown_keys = Vec::new();
    let mut annotations = BTreeMap::new();
    for (key, value) in context {
        if key.starts_with(PREFIX) {
            if HANDLED_KEYS.contains(&key.as_str()) {
                continue;
            }
            if let Some((_, canonical)) = ALIASES.iter().find(|(alias, _)| *alias == key) {
                warnings.push(if context.contains_key(*canonical) {
                    format!("{key} is ignored because {canonical} is also set")
                } else {
                    format!("{key} is an old spelling; use {canonical}")
                });
                continue;
            }
            unknown_keys.push(key.clone());
        } else if key.contains('/') && !key.starts_with(KUBELET_PREFIX) {
            annotations.insert(key.clone(), value.clone());
        }
    }
    unknown_keys.sort();
    for unknown in &unknown_keys {
        let hint = match closest_known_key(unknown) {
            Some(known) => format!("unknown attribute {unknown} (did you mean {known}?)"),
            None => format!("unknown attribute {unknown}"),
        };
        if options.strict {
            // The value is not shown: an unknown key may be a misspelt secret.
            reader.problem(
                unknown,
                None,
                format!(
                    "is not a known attribute{}",
                    closest_known_key(unknown)
                        .map(|known| format!(" (did you mean {known}?)"))
                        .unwrap_or_default()
                ),
            );
        } else {
            warnings.push(hint);
        }
    }
    warnings.sort();

    if !reader.problems.is_empty() {
        return Err(InvalidAttributes(reader.problems));
    }
    Ok(VolumeAttributes {
        pod,
        spec: CertRequestSpec {
            issuer,
            subject,
            dns_names,
            ip_sans,
            uri_sans,
            duration,
            renew_before,
            is_ca,
            usages,
            key: key_spec,
            files,
            fs_group,
            reuse_private_key,
            pkcs12,
            annotations,
        },
        unknown_keys,
        warnings,
    })
}

/// Subject from `literal-subject` (which wins), else from common-name and the per-field lists, in
/// the order Go's `pkix.Name` encodes them (what cert-manager produces).
fn parse_subject(reader: &mut Reader<'_>, pod: &PodInfo, warnings: &mut Vec<String>) -> Subject {
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

/// The keystore attributes: `pkcs12-enable: "true"` needs a password; the file name has a
/// default and the same rules as every other file name.
fn parse_pkcs12(reader: &mut Reader<'_>) -> Option<Pkcs12Spec> {
    if !reader.boolean(key::PKCS12_ENABLE) {
        return None;
    }
    let file_name = reader.file_name(key::PKCS12_FILENAME, "keystore.p12");
    let password = match reader.get(key::PKCS12_PASSWORD) {
        Some(password) if !password.is_empty() => password.to_string(),
        _ => {
            reader.problem(
                key::PKCS12_PASSWORD,
                None,
                "is required when csi.cert-manager.io/pkcs12-enable is \"true\"",
            );
            String::new()
        }
    };
    let profile_raw = reader.get(key::PKCS12_PROFILE);
    let profile = match profile_raw.map(str::to_ascii_lowercase).as_deref() {
        None | Some("legacyrc2") => Pkcs12Profile::LegacyRc2,
        Some("legacydes") => Pkcs12Profile::LegacyDes,
        Some("modern2023") => Pkcs12Profile::Modern2023,
        Some(_) => {
            reader.problem(
                key::PKCS12_PROFILE,
                profile_raw,
                "must be one of LegacyRC2, LegacyDES, Modern2023",
            );
            Pkcs12Profile::LegacyRc2
        }
    };
    Some(Pkcs12Spec {
        file_name,
        password: Password(password),
        profile,
    })
}

/// Edit distance between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The known key an unknown one most likely meant: close in spelling, or the same words in
/// another order or with other separators (`dns-name`, `dnsnames`, `private-key-file`).
pub fn closest_known_key(unknown: &str) -> Option<&'static str> {
    let squash = |k: &str| -> String {
        k.trim_start_matches(PREFIX)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let wanted = squash(unknown);
    HANDLED_KEYS
        .iter()
        .enumerate()
        .filter_map(|(order, known)| {
            let candidate = squash(known);
            let distance = edit_distance(&wanted, &candidate);
            let close = distance <= 2.max(candidate.len() / 4);
            // `issuer` for `issuer-name`, `organization` for `organizations`.
            let contained = wanted.len() >= 5
                && (candidate.starts_with(&wanted) || wanted.starts_with(&candidate));
            (close || contained).then_some((distance, order, *known))
        })
        .min()
        .map(|(_, _, known)| known)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn context(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut map: HashMap<String, String> = [
            (key::EPHEMERAL, "true"),
            (key::POD_NAME, "my-csi-app"),
            (key::POD_NAMESPACE, "sandbox"),
            (key::POD_UID, "c0ffee"),
            (key::SERVICE_ACCOUNT_NAME, "default"),
            (key::ISSUER_NAME, "ca-issuer"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            map.insert(k.to_string(), v.to_string());
        }
        map
    }

    fn problems(extra: &[(&str, &str)]) -> InvalidAttributes {
        parse_volume_context(&context(extra)).expect_err("must be rejected")
    }

    #[test]
    fn x509_upper_bounds_are_validation_rules() {
        let cn_64 = "c".repeat(64);
        assert!(parse_volume_context(&context(&[(key::COMMON_NAME, &cn_64)])).is_ok());
        for (attribute, value, bound, source) in [
            (key::COMMON_NAME, "c".repeat(65), "64", "ub-common-name"),
            (
                key::ORGANIZATIONS,
                "o".repeat(65),
                "64",
                "ub-organization-name",
            ),
            (
                key::ORGANIZATIONAL_UNITS,
                "u".repeat(65),
                "64",
                "ub-organizational-unit-name",
            ),
            (key::LOCALITIES, "l".repeat(129), "128", "ub-locality-name"),
            (key::PROVINCES, "p".repeat(129), "128", "ub-state-name"),
            (
                key::COUNTRIES,
                "GBR".to_string(),
                "2",
                "ub-country-name-alpha-length",
            ),
            (key::POSTAL_CODES, "9".repeat(41), "40", "ub-postal-code"),
            (
                key::STREET_ADDRESSES,
                "s".repeat(129),
                "128",
                "ub-street-address",
            ),
            (key::SERIAL_NUMBER, "1".repeat(65), "64", "ub-serial-number"),
            (
                key::LITERAL_SUBJECT,
                format!("CN={}", "c".repeat(65)),
                "64",
                "ub-common-name",
            ),
        ] {
            let message =
                problems(&[(key::DNS_NAMES, "a.example.com"), (attribute, &value)]).to_string();
            assert!(
                message.contains(attribute)
                    && message.contains(&format!("at most {bound}"))
                    && message.contains(source),
                "{attribute}: {message}"
            );
        }
        // A 1 MB common name: named with its bound, and the message stays short.
        let huge = "x".repeat(1_000_000);
        let message = problems(&[(key::COMMON_NAME, &huge)]).to_string();
        assert!(
            message.contains("1000000 characters"),
            "{}",
            &message[..200]
        );
        assert!(message.len() < 1000, "{} bytes", message.len());
        // DNS labels: 63 at most (RFC 1035).
        let label = format!("{}.example.com", "d".repeat(64));
        assert!(
            problems(&[(key::DNS_NAMES, &label)])
                .to_string()
                .contains("63 per")
        );
    }

    #[test]
    fn readme_example_gets_upstream_defaults() {
        let request = parse_volume_context(&context(&[(
            key::DNS_NAMES,
            "${POD_NAME}.${POD_NAMESPACE}.svc.cluster.local",
        )]))
        .unwrap();
        let spec = request.spec;
        assert_eq!(spec.dns_names, ["my-csi-app.sandbox.svc.cluster.local"]);
        assert_eq!(spec.issuer.kind, "Issuer");
        assert_eq!(spec.issuer.group, "cert-manager.io");
        assert_eq!(spec.duration, Duration::from_secs(720 * 3600));
        assert_eq!(spec.renew_before, None);
        assert_eq!(
            spec.usages,
            [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment]
        );
        assert_eq!(spec.key, KeySpec::DEFAULT);
        assert_eq!(spec.files.certificate, "tls.crt");
        assert_eq!(spec.files.private_key, "tls.key");
        assert_eq!(spec.files.ca, "ca.crt");
        assert!(!spec.is_ca && !spec.reuse_private_key);
        assert_eq!(request.pod.name, "my-csi-app");
    }

    #[test]
    fn missing_issuer_name_is_named() {
        let mut ctx = context(&[(key::DNS_NAMES, "a.example.com")]);
        ctx.remove(key::ISSUER_NAME);
        let error = parse_volume_context(&ctx).unwrap_err();
        assert!(error.to_string().contains(key::ISSUER_NAME), "{error}");
    }

    #[test]
    fn every_problem_is_reported_at_once_with_key_and_value() {
        let error = problems(&[
            (key::DURATION, "90d"),
            (key::IS_CA, "yes"),
            (key::IP_SANS, "10.0.0.1,not-an-ip"),
            (key::CERTIFICATE_FILE, "../escape"),
            (key::KEY_USAGES, "server auth,flying"),
        ]);
        let message = error.to_string();
        for expected in [
            "csi.cert-manager.io/duration=\"90d\"",
            "csi.cert-manager.io/is-ca=\"yes\"",
            "\"not-an-ip\"",
            "csi.cert-manager.io/certificate-file=\"../escape\"",
            "\"flying\"",
        ] {
            assert!(
                message.contains(expected),
                "{expected} missing from: {message}"
            );
        }
        assert_eq!(error.0.len(), 5);
    }

    #[test]
    fn file_names_cannot_escape_the_volume() {
        for bad in [
            "/etc/passwd",
            "a/b",
            "..data",
            "..",
            " tls.crt",
            "tls.crt ",
            "",
            ".",
        ] {
            let error = problems(&[(key::DNS_NAMES, "a"), (key::PRIVATE_KEY_FILE, bad)]);
            assert!(
                error.to_string().contains(key::PRIVATE_KEY_FILE),
                "{bad:?}: {error}"
            );
        }
        let long = "x".repeat(256);
        assert!(
            problems(&[(key::DNS_NAMES, "a"), (key::CA_FILE, &long)])
                .0
                .len()
                == 1
        );
        assert!(
            parse_volume_context(&context(&[(key::DNS_NAMES, "a"), (key::CA_FILE, "...ca")]))
                .is_err()
        );
    }

    #[test]
    fn file_names_must_be_distinct() {
        let error = problems(&[(key::DNS_NAMES, "a"), (key::CA_FILE, "tls.crt")]);
        assert!(error.to_string().contains("distinct"), "{error}");
    }

    #[test]
    fn non_ephemeral_and_missing_pod_info_are_rejected() {
        let mut ctx = context(&[(key::DNS_NAMES, "a")]);
        ctx.remove(key::EPHEMERAL);
        ctx.remove(key::POD_NAMESPACE);
        let message = parse_volume_context(&ctx).unwrap_err().to_string();
        assert!(message.contains(key::EPHEMERAL), "{message}");
        assert!(message.contains(key::POD_NAMESPACE), "{message}");
    }

    #[test]
    fn key_rules() {
        let ok = |pairs: &[(&str, &str)]| {
            let mut all = vec![(key::DNS_NAMES, "a")];
            all.extend_from_slice(pairs);
            parse_volume_context(&context(&all)).map(|r| r.spec.key)
        };
        assert_eq!(
            ok(&[(key::KEY_ALGORITHM, "ecdsa")]).unwrap(),
            KeySpec {
                algorithm: KeyAlgorithm::Ecdsa,
                size: 256,
                encoding: KeyEncoding::Pkcs8
            }
        );
        assert_eq!(ok(&[(key::KEY_ALGORITHM, "Ed25519")]).unwrap().size, 0);
        assert_eq!(ok(&[(key::KEY_SIZE, "4096")]).unwrap().size, 4096);
        assert!(ok(&[(key::KEY_SIZE, "1024")]).is_err());
        assert!(ok(&[(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "2048")]).is_err());
        assert!(ok(&[(key::KEY_ALGORITHM, "Ed25519"), (key::KEY_SIZE, "256")]).is_err());
        assert!(ok(&[(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_ENCODING, "PKCS1")]).is_err());
        assert!(ok(&[(key::KEY_ALGORITHM, "DSA")]).is_err());
    }

    #[test]
    fn unknown_keys_get_a_hint_and_other_prefixes_become_annotations() {
        let request = parse_volume_context(&context(&[
            (key::DNS_NAMES, "a"),
            ("csi.cert-manager.io/dns-name", "b"),
            ("csi.cert-manager.io/private-key-file", "x.key"),
            ("csi.cert-manager.io/zzz", "1"),
            ("venafi.cert-manager.io/custom-fields", "[]"),
            ("plain-key", "ignored"),
        ]))
        .unwrap();
        assert_eq!(
            request.unknown_keys,
            [
                "csi.cert-manager.io/dns-name",
                "csi.cert-manager.io/private-key-file",
                "csi.cert-manager.io/zzz"
            ]
        );
        let warnings = request.warnings.join("\n");
        assert!(
            warnings.contains(
                "csi.cert-manager.io/dns-name (did you mean csi.cert-manager.io/dns-names?)"
            ),
            "{warnings}"
        );
        assert!(
            warnings.contains("did you mean csi.cert-manager.io/privatekey-file?"),
            "{warnings}"
        );
        assert!(
            warnings.contains("unknown attribute csi.cert-manager.io/zzz\n")
                || warnings.ends_with("unknown attribute csi.cert-manager.io/zzz"),
            "{warnings}"
        );
        assert_eq!(
            request.spec.annotations.keys().collect::<Vec<_>>(),
            ["venafi.cert-manager.io/custom-fields"]
        );
    }

    #[test]
    fn strict_mode_makes_unknown_keys_errors() {
        let strict = ParseOptions {
            strict: true,
            ..ParseOptions::default()
        };
        let error = parse_volume_context_with(
            &context(&[(key::DNS_NAMES, "a"), ("csi.cert-manager.io/dns-name", "b")]),
            strict,
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("csi.cert-manager.io/dns-name is not a known attribute (did you mean csi.cert-manager.io/dns-names?)"), "{message}");
        assert!(
            !message.contains("\"b\""),
            "values of unknown keys are never shown: {message}"
        );
    }

    #[test]
    fn seed_001_keystore_spelling_is_an_alias() {
        let request = parse_volume_context(&context(&[
            (key::DNS_NAMES, "a"),
            ("csi.cert-manager.io/keystore-pkcs12-enable", "true"),
            ("csi.cert-manager.io/keystore-pkcs12-password", "changeit"),
        ]))
        .unwrap();
        let keystore = request
            .spec
            .pkcs12
            .expect("keystore enabled through the alias");
        assert_eq!(keystore.file_name, "keystore.p12");
        assert_eq!(keystore.password.0, "changeit");
        assert_eq!(keystore.profile, Pkcs12Profile::LegacyRc2);
        assert!(request.unknown_keys.is_empty());
        assert!(
            request.warnings.iter().any(|w| w.contains("old spelling")),
            "{:?}",
            request.warnings
        );
    }

    #[test]
    fn sans_are_parsed() {
        let request = parse_volume_context(&context(&[
            (key::DNS_NAMES, " a.example.com , b.example.com,"),
            (key::IP_SANS, "10.0.0.1,::1"),
            (
                key::URI_SANS,
                "spiffe://cluster.local/ns/${POD_NAMESPACE}/pod/${POD_NAME}",
            ),
        ]))
        .unwrap();
        assert_eq!(request.spec.dns_names, ["a.example.com", "b.example.com"]);
        assert_eq!(request.spec.ip_sans.len(), 2);
        assert_eq!(
            request.spec.uri_sans,
            ["spiffe://cluster.local/ns/sandbox/pod/my-csi-app"]
        );
        assert!(
            problems(&[(key::URI_SANS, "not a uri")])
                .to_string()
                .contains("absolute URI")
        );
    }

    #[test]
    fn a_volume_without_any_name_is_rejected() {
        for nameless in [
            vec![],
            vec![(key::DNS_NAMES, ",")],
            vec![(key::ORGANIZATIONS, "Only An Org")],
            vec![(key::LITERAL_SUBJECT, "O=Example")],
        ] {
            let error = problems(&nameless);
            assert!(
                error.to_string().contains("names nothing"),
                "{nameless:?}: {error}"
            );
        }
        // A CN inside literal-subject is a name.
        assert!(
            parse_volume_context(&context(&[(key::LITERAL_SUBJECT, "CN=x,O=Example")])).is_ok()
        );
    }

    /// Every rule, one row each: the volume is rejected and the message names the key and the
    /// value as written.
    #[test]
    fn each_invalid_value_is_rejected_naming_key_and_value() {
        let long_name = "x".repeat(256);
        let cases: Vec<(&str, &str)> = vec![
            (key::ISSUER_NAME, "  "),
            (key::LITERAL_SUBJECT, "CN"),
            (key::LITERAL_SUBJECT, "FOO=bar"),
            (key::LITERAL_SUBJECT, "CN=#04020102"),
            (key::SERIAL_NUMBER, " "),
            (key::COMMON_NAME, "${POD_IP}"),
            (key::ORGANIZATIONS, "${UNKNOWN}"),
            (key::DNS_NAMES, "has space.example.com"),
            (key::DNS_NAMES, "bücher.example"),
            (key::IP_SANS, "300.1.1.1"),
            (key::IP_SANS, "10.0.0.1/24"),
            (key::URI_SANS, "no-scheme"),
            (key::DURATION, "90d"),
            (key::DURATION, "0s"),
            (key::DURATION, "-1h"),
            (key::RENEW_BEFORE, "1y"),
            (key::IS_CA, "True"),
            (key::REUSE_PRIVATE_KEY, "1"),
            (key::KEY_USAGES, "server auth,flying"),
            (key::KEY_USAGES, ","),
            (key::KEY_ALGORITHM, "DSA"),
            (key::KEY_SIZE, "1024"),
            (key::KEY_SIZE, "8193"),
            (key::KEY_SIZE, "big"),
            (key::KEY_ENCODING, "PKCS7"),
            (key::CERTIFICATE_FILE, "/etc/tls.crt"),
            (key::PRIVATE_KEY_FILE, "keys/tls.key"),
            (key::CA_FILE, "..ca.crt"),
            (key::CA_FILE, " ca.crt"),
            (key::CA_FILE, &long_name),
            (key::FS_GROUP, "0"),
            (key::FS_GROUP, "-1"),
            (key::FS_GROUP, "4294967296"),
            (key::FS_GROUP, "staff"),
            (key::PKCS12_ENABLE, "yes"),
        ];
        for (bad_key, bad_value) in cases {
            let error = problems(&[(key::DNS_NAMES, "a.example.com"), (bad_key, bad_value)]);
            let message = error.to_string();
            let shown = if bad_key == key::DNS_NAMES {
                // The list is reported entry by entry.
                format!("{bad_key}={:?}", bad_value)
            } else {
                format!("{bad_key}={bad_value:?}")
            };
            assert!(message.contains(&shown), "{shown} not in: {message}");
        }
        // Cross rules.
        for (pairs, named) in [
            (
                vec![(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "2048")],
                key::KEY_SIZE,
            ),
            (
                vec![(key::KEY_ALGORITHM, "Ed25519"), (key::KEY_SIZE, "256")],
                key::KEY_SIZE,
            ),
            (
                vec![(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_ENCODING, "PKCS1")],
                key::KEY_ENCODING,
            ),
            (vec![(key::PKCS12_ENABLE, "true")], key::PKCS12_PASSWORD),
            (
                vec![
                    (key::PKCS12_ENABLE, "true"),
                    (key::PKCS12_PASSWORD, "p"),
                    (key::PKCS12_PROFILE, "Modern2024"),
                ],
                key::PKCS12_PROFILE,
            ),
            (
                vec![
                    (key::PKCS12_ENABLE, "true"),
                    (key::PKCS12_PASSWORD, "p"),
                    (key::PKCS12_FILENAME, "tls.key"),
                ],
                key::PKCS12_FILENAME,
            ),
        ] {
            let mut all = vec![(key::DNS_NAMES, "a.example.com")];
            all.extend(pairs);
            let message = problems(&all).to_string();
            assert!(message.contains(named), "{named} not in: {message}");
        }
    }

    #[test]
    fn valid_values_are_read() {
        let request = parse_volume_context(&context(&[
            (key::DNS_NAMES, "a.example.com"),
            (key::ORGANIZATIONS, r"Example\, Inc.,${POD_NAMESPACE}"),
            (key::COUNTRIES, "GB"),
            (key::SERIAL_NUMBER, "42"),
            (key::COMMON_NAME, "${POD_NAME}"),
            (key::DURATION, "1h30m"),
            (key::RENEW_BEFORE, "90s"),
            (key::IS_CA, "true"),
            (key::KEY_USAGES, "cert sign, crl sign"),
            (key::KEY_ALGORITHM, "ecdsa"),
            (key::KEY_SIZE, "521"),
            (key::FS_GROUP, "2000"),
            (key::REUSE_PRIVATE_KEY, "true"),
            (key::PKCS12_ENABLE, "true"),
            (key::PKCS12_PASSWORD, "changeit"),
            (key::PKCS12_PROFILE, "modern2023"),
            (key::IP_SANS, "10.0.0.1, ::1"),
        ]))
        .unwrap();
        let spec = request.spec;
        assert_eq!(
            spec.subject.to_string(),
            r"SERIALNUMBER=42,CN=my-csi-app,O=sandbox,O=Example\, Inc.,C=GB"
        );
        assert_eq!(spec.duration, Duration::from_secs(5400));
        assert_eq!(spec.renew_before, Some(Duration::from_secs(90)));
        assert!(spec.is_ca && spec.reuse_private_key);
        assert_eq!(spec.usages, [KeyUsage::CertSign, KeyUsage::CrlSign]);
        assert_eq!(spec.key.size, 521);
        assert_eq!(spec.fs_group, Some(2000));
        let keystore = spec.pkcs12.unwrap();
        assert_eq!(keystore.profile, Pkcs12Profile::Modern2023);
        assert_eq!(format!("{:?}", keystore.password), "<redacted>");
        assert_eq!(spec.ip_sans.len(), 2);
    }

    #[test]
    fn literal_subject_overrides_the_other_subject_keys_with_a_warning() {
        let request = parse_volume_context(&context(&[
            (key::LITERAL_SUBJECT, "CN=${POD_NAME},O=Lit"),
            (key::ORGANIZATIONS, "Ignored"),
            (key::COMMON_NAME, "ignored"),
        ]))
        .unwrap();
        assert_eq!(request.spec.subject.to_string(), "CN=my-csi-app,O=Lit");
        assert!(
            request
                .warnings
                .iter()
                .any(|w| w.contains("organizations") && w.contains("common-name")),
            "{:?}",
            request.warnings
        );
    }

    #[test]
    fn hints_find_the_intended_key() {
        assert_eq!(
            closest_known_key("csi.cert-manager.io/dnsnames"),
            Some(key::DNS_NAMES)
        );
        assert_eq!(
            closest_known_key("csi.cert-manager.io/issuer"),
            Some(key::ISSUER_NAME)
        );
        assert_eq!(
            closest_known_key("csi.cert-manager.io/renewbefore"),
            Some(key::RENEW_BEFORE)
        );
        assert_eq!(
            closest_known_key("csi.cert-manager.io/organization"),
            Some(key::ORGANIZATIONS)
        );
        assert_eq!(
            closest_known_key("csi.cert-manager.io/something-else-entirely"),
            None
        );
    }
}
