//! The one table of volume-context keys this driver knows. Every list of keys (the `key`
//! constants, the keys it reads, the kubelet keys, the secrets, the keys whose empty value means
//! "unset") is derived from it, so adding an attribute is one row here and the code that reads it
//! in its part's parser.

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
    /// An empty value counts as unset and gets the default, as the Go driver's
    /// `setDefaultIfEmpty` does (it tests `len(value) == 0`, so `" "` is not empty).
    pub empty_is_unset: bool,
}

/// Builds the `key` constants and [`ATTRIBUTES`] from one list of rows:
/// `NAME = "full key", Part, plain|secret [, empty_is_unset];`
macro_rules! attribute_table {
    ($(
        $(#[$doc:meta])*
        $name:ident = $key:literal, $part:ident, $secrecy:ident $(, $empty:ident)?;
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
                empty_is_unset: attribute_table!(@empty $($empty)?),
            },)+
        ];
    };
    (@secret plain) => { false };
    (@secret secret) => { true };
    (@empty) => { false };
    (@empty empty_is_unset) => { true };
}

attribute_table! {
    ISSUER_NAME = "csi.cert-manager.io/issuer-name", Issuer, plain;
    ISSUER_KIND = "csi.cert-manager.io/issuer-kind", Issuer, plain, empty_is_unset;
    ISSUER_GROUP = "csi.cert-manager.io/issuer-group", Issuer, plain, empty_is_unset;
    COMMON_NAME = "csi.cert-manager.io/common-name", Subject, plain;
    DNS_NAMES = "csi.cert-manager.io/dns-names", Sans, plain;
    IP_SANS = "csi.cert-manager.io/ip-sans", Sans, plain;
    URI_SANS = "csi.cert-manager.io/uri-sans", Sans, plain;
    DURATION = "csi.cert-manager.io/duration", Certificate, plain, empty_is_unset;
    RENEW_BEFORE = "csi.cert-manager.io/renew-before", Certificate, plain;
    IS_CA = "csi.cert-manager.io/is-ca", Certificate, plain, empty_is_unset;
    KEY_USAGES = "csi.cert-manager.io/key-usages", Certificate, plain, empty_is_unset;
    KEY_ALGORITHM = "csi.cert-manager.io/key-algorithm", Key, plain, empty_is_unset;
    KEY_SIZE = "csi.cert-manager.io/key-size", Key, plain, empty_is_unset;
    KEY_ENCODING = "csi.cert-manager.io/key-encoding", Key, plain, empty_is_unset;
    CERTIFICATE_FILE = "csi.cert-manager.io/certificate-file", Files, plain, empty_is_unset;
    PRIVATE_KEY_FILE = "csi.cert-manager.io/privatekey-file", Files, plain, empty_is_unset;
    CA_FILE = "csi.cert-manager.io/ca-file", Files, plain, empty_is_unset;
    FS_GROUP = "csi.cert-manager.io/fs-group", Files, plain;
    REUSE_PRIVATE_KEY = "csi.cert-manager.io/reuse-private-key", Key, plain, empty_is_unset;
    LITERAL_SUBJECT = "csi.cert-manager.io/literal-subject", Subject, plain, empty_is_unset;
    ORGANIZATIONS = "csi.cert-manager.io/organizations", Subject, plain;
    ORGANIZATIONAL_UNITS = "csi.cert-manager.io/organizationalunits", Subject, plain;
    COUNTRIES = "csi.cert-manager.io/countries", Subject, plain;
    PROVINCES = "csi.cert-manager.io/provinces", Subject, plain;
    LOCALITIES = "csi.cert-manager.io/localities", Subject, plain;
    STREET_ADDRESSES = "csi.cert-manager.io/streetaddresses", Subject, plain;
    POSTAL_CODES = "csi.cert-manager.io/postalcodes", Subject, plain;
    SERIAL_NUMBER = "csi.cert-manager.io/serialnumber", Subject, plain, empty_is_unset;
    PKCS12_ENABLE = "csi.cert-manager.io/pkcs12-enable", Keystore, plain;
    /// Empty means `keystore.p12` when `pkcs12-enable` is set; without it, even an empty one is
    /// refused (`keystore.rs` reads it as sent for that).
    PKCS12_FILENAME = "csi.cert-manager.io/pkcs12-filename", Keystore, plain, empty_is_unset;
    PKCS12_PASSWORD = "csi.cert-manager.io/pkcs12-password", Keystore, secret;
    /// New in this driver: which PKCS#12 encryption profile to write.
    PKCS12_PROFILE = "csi.cert-manager.io/pkcs12-profile", Keystore, plain;
    /// New in this driver: also write a PKCS#12 truststore (the CA certificates).
    PKCS12_TRUSTSTORE_ENABLE = "csi.cert-manager.io/pkcs12-truststore-enable", Keystore, plain;
    PKCS12_TRUSTSTORE_FILENAME = "csi.cert-manager.io/pkcs12-truststore-filename", Keystore, plain, empty_is_unset;
    /// New in this driver: a Java KeyStore, as cert-manager's `keystores.jks`.
    JKS_ENABLE = "csi.cert-manager.io/jks-enable", Keystore, plain;
    JKS_FILENAME = "csi.cert-manager.io/jks-filename", Keystore, plain, empty_is_unset;
    JKS_PASSWORD = "csi.cert-manager.io/jks-password", Keystore, secret;
    JKS_ALIAS = "csi.cert-manager.io/jks-alias", Keystore, plain;
    JKS_TRUSTSTORE_ENABLE = "csi.cert-manager.io/jks-truststore-enable", Keystore, plain;
    JKS_TRUSTSTORE_FILENAME = "csi.cert-manager.io/jks-truststore-filename", Keystore, plain, empty_is_unset;

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

/// Whether a context key holds a secret: a secret row, and anything that looks like a password
/// (typos of the password key must not leak it either: one containing "pass", like the old
/// `keystore-pkcs12-password`, or one whose "did you mean" is a secret row, like `jks-pasword`).
pub fn is_secret_key(key: &str) -> bool {
    let row = attribute(key);
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
    }
}
