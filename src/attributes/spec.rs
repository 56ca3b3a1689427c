//! What a parsed volume context becomes: the pod, the certificate spec and its parts. Plain data;
//! the parsers next to this file fill it in.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::Subject;

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
    /// Modern2023's encryption with a PBMAC1 MAC (RFC 9579: PBKDF2-HMAC-SHA-256 and
    /// HMAC-SHA-256) instead of the PKCS#12 KDF, FIPS 140-3 friendly; read by OpenSSL 3.4+ and
    /// Java 26+ only.
    Modern2026,
}

impl Pkcs12Profile {
    pub fn name(self) -> &'static str {
        match self {
            Pkcs12Profile::LegacyRc2 => "LegacyRC2",
            Pkcs12Profile::LegacyDes => "LegacyDES",
            Pkcs12Profile::Modern2023 => "Modern2023",
            Pkcs12Profile::Modern2026 => "Modern2026",
        }
    }
}

/// A keystore password: never printed, wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub zeroize::Zeroizing<String>);

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
    /// The truststore's file name, when one is asked for (written only when the CA is known).
    pub truststore: Option<String>,
}

/// The Java KeyStore (JKS) a volume asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JksSpec {
    pub file_name: String,
    /// Protects the file and the key entry alike.
    pub password: Password,
    /// The alias of the private-key entry.
    pub alias: String,
    /// The truststore's file name, when one is asked for (written only when the CA is known).
    pub truststore: Option<String>,
}

/// Everything a volume asks of its certificate, validated and with variables expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRequestSpec {
    pub issuer: IssuerRef,
    /// Subject in encoding order; from `literal-subject`, else from common-name and the
    /// per-field attributes.
    pub subject: Subject,
    pub dns_names: Vec<String>,
    /// The addresses written in `ip-sans`; the pod's own come on top ([`Self::pod_ip_sans`]).
    pub ip_sans: Vec<IpAddr>,
    /// The pod's own addresses asked for in `ip-sans`: put first, before the written ones, once
    /// known ([`CertRequestSpec::with_pod_ips`]).
    pub pod_ip_sans: PodIpSans,
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
    pub jks: Option<JksSpec>,
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
    /// mean" hint, attributes that another one overrides, a certificate that names nothing, DNS
    /// names longer than DNS allows).
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
    /// What the driver can do to learn a pod's addresses, for `${POD_IP}` and `${POD_IPS}`.
    pub pod_ip_wait: PodIpWait,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            strict: false,
            default_duration: DEFAULT_DURATION,
            pod_ip_wait: PodIpWait::default(),
        }
    }
}

/// A pod has no address when kubelet publishes its volumes, so a certificate naming it can only
/// be issued by a driver that may answer before issuing and that waits for the address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodIpWait {
    /// `--continue-on-not-ready=true`.
    pub continue_on_not_ready: bool,
    /// A `--pod-readiness-gate=pod-ip:…`.
    pub pod_ip_gate: bool,
}

impl PodIpWait {
    /// The driver can wait for a pod's address (both flags given); also how a volume the driver
    /// already accepted is read back, whatever the flags are now.
    pub const AVAILABLE: PodIpWait = PodIpWait {
        continue_on_not_ready: true,
        pod_ip_gate: true,
    };

    /// What is missing for `${POD_IP}`, as the flags to add; `None` when nothing is.
    pub fn missing(self) -> Option<&'static str> {
        match (self.continue_on_not_ready, self.pod_ip_gate) {
            (true, true) => None,
            (true, false) => Some("--pod-readiness-gate=pod-ip:any (or ipv4/ipv6)"),
            (false, true) => Some("--continue-on-not-ready=true"),
            (false, false) => Some(
                "--continue-on-not-ready=true and --pod-readiness-gate=pod-ip:any (or ipv4/ipv6)",
            ),
        }
    }
}

/// Which of the pod's own addresses a certificate carries (`${POD_IP}` / `${POD_IPS}` in
/// `ip-sans`), resolved when the certificate is issued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum PodIpSans {
    #[default]
    None,
    /// `${POD_IP}`: the first address of `status.podIPs`.
    Primary,
    /// `${POD_IPS}`: every address of `status.podIPs`.
    All,
}

impl CertRequestSpec {
    /// The spec with the pod's current addresses in its IP SANs (`pod_ips` in `status.podIPs`
    /// order): what a certificate is issued for. Without `${POD_IP}`/`${POD_IPS}` it is unchanged.
    pub fn with_pod_ips(&self, pod_ips: &[IpAddr]) -> CertRequestSpec {
        let own: &[IpAddr] = match self.pod_ip_sans {
            PodIpSans::None => &[],
            PodIpSans::Primary => &pod_ips[..pod_ips.len().min(1)],
            PodIpSans::All => pod_ips,
        };
        let mut spec = self.clone();
        spec.ip_sans = own.to_vec();
        for ip in &self.ip_sans {
            if !spec.ip_sans.contains(ip) {
                spec.ip_sans.push(*ip);
            }
        }
        spec
    }
}
