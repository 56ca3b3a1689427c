//! The one table of volume-context keys this driver knows. Every list of keys (the `key`
//! constants, the keys it reads, the kubelet keys, the old spellings, the secrets) is derived from
//! it, so adding an attribute is one row here and the code that reads it in its part's parser.

use std::collections::BTreeMap;

/// Prefix of the attributes this driver reads.
pub const PREFIX: &str = "csi.cert-manager.io/";
/// Prefix of the keys kubelet adds (pod info, ephemeral flag, tokens).
pub const KUBELET_PREFIX: &str = "csi.storage.k8s.io/";

/// Which parser reads a key: the module of [`crate::attributes`] that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `pod.rs`: who the volume belongs to, and that it is an inline ephemeral volume.
    Pod,
    /// `issuer.rs`: which issuer signs.
    Issuer,
    /// `subject_fields.rs`: the certificate's subject.
    Subject,
    /// `sans.rs`: DNS names, IP addresses and URIs.
    Sans,
    /// `certificate.rs`: lifetime, CA flag, usages.
    Certificate,
    /// `key_spec.rs`: the private key.
    Key,
    /// `files.rs`: file names and their group.
    Files,
    /// `keystore.rs`: the PKCS#12 and JKS keystores and truststores.
    Keystore,
    /// Not read by the attribute parser: the pod's tokens, read by `kubernetes::token`.
    Token,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute {
    /// The key, as upstream spells it.
    pub key: &'static str,
    pub part: Part,
    /// Its value is never printed or logged.
    pub secret: bool,
    /// Older spellings accepted with a warning (seed 001 and older upstream docs).
    pub aliases: &'static [&'static str],
}

/// Builds the `key` constants and [`ATTRIBUTES`] from one list of rows:
/// `NAME = "full key", Part, plain|secret [, aliases ["old key", ...]];`
macro_rules! attribute_table {
    ($(
        $(#[$doc:meta])*
        $name:ident = $key:literal, $part:ident, $secrecy:ident $(, aliases [$($alias:literal),+ $(,)?])?;
    )+) => {
        /// Volume-context keys, spelled as upstream spells them.
        pub mod key {
            $( $(#[$doc])* pub const $name: &str = $key; )+
        }

        /// Every key of the volume context this driver knows, one row each (in upstream's order, which
        /// also breaks ties between "did you mean" candidates).
        pub const ATTRIBUTES: &[Attribute] = &[
            $(Attribute {
                key: key::$name,
                part: Part::$part,
                secret: attribute_table!(@secret $secrecy),
                aliases: &[$($($alias),+)?],
            },)+
        ];
    };
    (@secret plain) => { false };
    (@secret secret) => { true };
}

attribute_table! {
    ISSUER_NAME = "csi.cert-manager.io/issuer-name", Issuer, plain;
    ISSUER_KIND = "csi.cert-manager.io/issuer-kind", Issuer, plain;
    ISSUER_GROUP = "csi.cert-manager.io/issuer-group", Issuer, plain;
    COMMON_NAME = "csi.cert-manager.io/common-name", Subject, plain;
    DNS_NAMES = "csi.cert-manager.io/dns-names", Sans, plain;
    IP_SANS = "csi.cert-manager.io/ip-sans", Sans, plain;
    URI_SANS = "csi.cert-manager.io/uri-sans", Sans, plain;
    DURATION = "csi.cert-manager.io/duration", Certificate, plain;
    RENEW_BEFORE = "csi.cert-manager.io/renew-before", Certificate, plain;
    IS_CA = "csi.cert-manager.io/is-ca", Certificate, plain;
    KEY_USAGES = "csi.cert-manager.io/key-usages", Certificate, plain;
    KEY_ALGORITHM = "csi.cert-manager.io/key-algorithm", Key, plain;
    KEY_SIZE = "csi.cert-manager.io/key-size", Key, plain;
    KEY_ENCODING = "csi.cert-manager.io/key-encoding", Key, plain;
    CERTIFICATE_FILE = "csi.cert-manager.io/certificate-file", Files, plain;
    PRIVATE_KEY_FILE = "csi.cert-manager.io/privatekey-file", Files, plain;
    CA_FILE = "csi.cert-manager.io/ca-file", Files, plain;
    FS_GROUP = "csi.cert-manager.io/fs-group", Files, plain;
    REUSE_PRIVATE_KEY = "csi.cert-manager.io/reuse-private-key", Key, plain;
    LITERAL_SUBJECT = "csi.cert-manager.io/literal-subject", Subject, plain;
    ORGANIZATIONS = "csi.cert-manager.io/organizations", Subject, plain;
    ORGANIZATIONAL_UNITS = "csi.cert-manager.io/organizationalunits", Subject, plain;
    COUNTRIES = "csi.cert-manager.io/countries", Subject, plain;
    PROVINCES = "csi.cert-manager.io/provinces", Subject, plain;
    LOCALITIES = "csi.cert-manager.io/localities", Subject, plain;
    STREET_ADDRESSES = "csi.cert-manager.io/streetaddresses", Subject, plain;
    POSTAL_CODES = "csi.cert-manager.io/postalcodes", Subject, plain;
    SERIAL_NUMBER = "csi.cert-manager.io/serialnumber", Subject, plain;
    PKCS12_ENABLE = "csi.cert-manager.io/pkcs12-enable", Keystore, plain,
        aliases ["csi.cert-manager.io/keystore-pkcs12-enable"];
    PKCS12_FILENAME = "csi.cert-manager.io/pkcs12-filename", Keystore, plain,
        aliases ["csi.cert-manager.io/keystore-pkcs12-filename"];
    PKCS12_PASSWORD = "csi.cert-manager.io/pkcs12-password", Keystore, secret,
        aliases ["csi.cert-manager.io/keystore-pkcs12-password"];
    /// New in this driver: which PKCS#12 encryption profile to write.
    PKCS12_PROFILE = "csi.cert-manager.io/pkcs12-profile", Keystore, plain;
    /// New in this driver: also write a PKCS#12 truststore (the CA certificates).
    PKCS12_TRUSTSTORE_ENABLE = "csi.cert-manager.io/pkcs12-truststore-enable", Keystore, plain;
    PKCS12_TRUSTSTORE_FILENAME = "csi.cert-manager.io/pkcs12-truststore-filename", Keystore, plain;
    /// New in this driver: a Java KeyStore, as cert-manager's `keystores.jks`.
    JKS_ENABLE = "csi.cert-manager.io/jks-enable", Keystore, plain;
    JKS_FILENAME = "csi.cert-manager.io/jks-filename", Keystore, plain;
    JKS_PASSWORD = "csi.cert-manager.io/jks-password", Keystore, secret;
    JKS_ALIAS = "csi.cert-manager.io/jks-alias", Keystore, plain;
    JKS_TRUSTSTORE_ENABLE = "csi.cert-manager.io/jks-truststore-enable", Keystore, plain;
    JKS_TRUSTSTORE_FILENAME = "csi.cert-manager.io/jks-truststore-filename", Keystore, plain;

    POD_NAME = "csi.storage.k8s.io/pod.name", Pod, plain;
    POD_NAMESPACE = "csi.storage.k8s.io/pod.namespace", Pod, plain;
    POD_UID = "csi.storage.k8s.io/pod.uid", Pod, plain;
    SERVICE_ACCOUNT_NAME = "csi.storage.k8s.io/serviceAccount.name", Pod, plain;
    EPHEMERAL = "csi.storage.k8s.io/ephemeral", Pod, plain;
    SERVICE_ACCOUNT_TOKENS = "csi.storage.k8s.io/serviceAccount.tokens", Token, secret;
}

/// The row of a key (not of an old spelling).
pub fn attribute(key: &str) -> Option<&'static Attribute> {
    ATTRIBUTES.iter().find(|row| row.key == key)
}

/// The `csi.cert-manager.io/*` keys this driver reads: upstream's table plus its own
/// (`pkcs12-profile`, the truststores, JKS).
pub fn handled_keys() -> impl Iterator<Item = &'static str> {
    ATTRIBUTES
        .iter()
        .map(|row| row.key)
        .filter(|key| key.starts_with(PREFIX))
}

/// Every old spelling, with the key it stands for: `(alias, key)`.
pub fn aliases() -> impl Iterator<Item = (&'static str, &'static str)> {
    ATTRIBUTES
        .iter()
        .flat_map(|row| row.aliases.iter().map(|alias| (*alias, row.key)))
}

/// The key an old spelling stands for.
pub fn canonical_key_of_alias(alias: &str) -> Option<&'static str> {
    aliases().find_map(|(old, key)| (old == alias).then_some(key))
}

/// Whether a context key holds a secret: a secret row or its old spelling, and anything that
/// looks like a password (typos of the password key must not leak it either: one containing
/// "pass", or one whose "did you mean" is a secret row, like `jks-pasword`).
pub fn is_secret_key(key: &str) -> bool {
    let row = attribute(key).or_else(|| canonical_key_of_alias(key).and_then(attribute));
    let secret = |row: &Attribute| row.secret;
    row.is_some_and(secret)
        || key.to_ascii_lowercase().contains("pass")
        || (row.is_none()
            && key.starts_with(PREFIX)
            // Typos are short; the hint's edit distance is not worth computing on anything else.
            && key.len() <= 2 * PREFIX.len() + 64
            && super::closest_known_key(key)
                .and_then(attribute)
                .is_some_and(secret))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_one_row_under_its_prefix() {
        for (index, row) in ATTRIBUTES.iter().enumerate() {
            let expected_prefix = match row.part {
                Part::Pod | Part::Token => KUBELET_PREFIX,
                _ => PREFIX,
            };
            assert!(row.key.starts_with(expected_prefix), "{}", row.key);
            assert!(
                ATTRIBUTES[index + 1..]
                    .iter()
                    .all(|other| other.key != row.key),
                "{} appears twice",
                row.key
            );
            for alias in row.aliases {
                assert!(alias.starts_with(PREFIX) && attribute(alias).is_none());
            }
        }
    }

    #[test]
    fn secrets_are_the_marked_rows_their_old_spellings_and_lookalikes() {
        let secrets: Vec<&str> = ATTRIBUTES
            .iter()
            .filter(|row| row.secret)
            .map(|row| row.key)
            .collect();
        assert_eq!(
            secrets,
            [
                key::PKCS12_PASSWORD,
                key::JKS_PASSWORD,
                key::SERVICE_ACCOUNT_TOKENS
            ]
        );
        assert!(is_secret_key("csi.cert-manager.io/jks-pasword"));
        assert!(is_secret_key(
            "csi.cert-manager.io/keystore-pkcs12-password"
        ));
        assert!(is_secret_key("csi.cert-manager.io/pkcs12-passwd"));
        assert!(!is_secret_key(key::PKCS12_FILENAME));
        assert_eq!(
            canonical_key_of_alias("csi.cert-manager.io/keystore-pkcs12-enable"),
            Some(key::PKCS12_ENABLE)
        );
    }
}
