//! The keystores: PKCS#12 and JKS, each written only when enabled, which then needs a password;
//! each with an optional truststore (the CA certificates alone, under the same password). File
//! names have cert-manager's defaults and the same rules as every other file name.

use super::reader::Reader;
use super::spec::{JksSpec, Password, Pkcs12Profile, Pkcs12Spec};
use super::table::{Part, key};
use crate::keys::jks;

pub(super) fn read(reader: &mut Reader<'_>) -> Option<Pkcs12Spec> {
    let reader = reader.part(Part::Keystore);
    if !reader.boolean(key::PKCS12_ENABLE) {
        return None;
    }
    let file_name = reader.file_name(key::PKCS12_FILENAME, "keystore.p12");
    let password = required_password(reader, key::PKCS12_PASSWORD, key::PKCS12_ENABLE);
    let profile_raw = reader.get(key::PKCS12_PROFILE);
    let profile = match profile_raw.map(str::to_ascii_lowercase).as_deref() {
        None | Some("legacyrc2") => Pkcs12Profile::LegacyRc2,
        Some("legacydes") => Pkcs12Profile::LegacyDes,
        Some("modern2023") => Pkcs12Profile::Modern2023,
        Some("modern2026") => Pkcs12Profile::Modern2026,
        Some(_) => {
            reader.problem(
                key::PKCS12_PROFILE,
                profile_raw,
                "must be one of LegacyRC2, LegacyDES, Modern2023, Modern2026",
            );
            Pkcs12Profile::LegacyRc2
        }
    };
    // Off by default, unlike cert-manager's: the Go driver never wrote it, and a volume it
    // serves must keep exactly its files (a new default name could even collide with one).
    let truststore = reader
        .boolean(key::PKCS12_TRUSTSTORE_ENABLE)
        .then(|| reader.file_name(key::PKCS12_TRUSTSTORE_FILENAME, "truststore.p12"));
    Some(Pkcs12Spec {
        file_name,
        password,
        profile,
        truststore,
    })
}

/// The JKS keystore, as cert-manager's `keystores.jks`: `keystore.jks`, alias `certificate`, and
/// (on by default, as cert-manager writes it) `truststore.jks`. Any key algorithm: a JKS key
/// entry is PKCS#8, and Java 17's keytool reads RSA, ECDSA and Ed25519 ones (Ed25519 needs
/// Java 15 or newer, as it does in any keystore).
pub(super) fn read_jks(reader: &mut Reader<'_>) -> Option<JksSpec> {
    let reader = reader.part(Part::Keystore);
    if !reader.boolean(key::JKS_ENABLE) {
        return None;
    }
    let file_name = reader.file_name(key::JKS_FILENAME, "keystore.jks");
    let password = required_password(reader, key::JKS_PASSWORD, key::JKS_ENABLE);
    let alias = reader.get(key::JKS_ALIAS).unwrap_or("certificate");
    if let Err(reason) = check_alias(alias) {
        reader.problem(key::JKS_ALIAS, Some(alias), reason);
    }
    let truststore = match reader.get(key::JKS_TRUSTSTORE_ENABLE) {
        None => true,
        Some(_) => reader.boolean(key::JKS_TRUSTSTORE_ENABLE),
    }
    .then(|| reader.file_name(key::JKS_TRUSTSTORE_FILENAME, "truststore.jks"));
    Some(JksSpec {
        file_name,
        password,
        alias: alias.to_string(),
        truststore,
    })
}

fn required_password(reader: &mut Reader<'_>, password_key: &str, enable_key: &str) -> Password {
    match reader.get(password_key) {
        Some(password) if !password.is_empty() => Password(password.to_string().into()),
        _ => {
            reader.problem(
                password_key,
                None,
                format!("is required when {enable_key} is \"true\""),
            );
            Password(String::new().into())
        }
    }
}

/// A JKS alias: something Java reads back as the same name, and not one the CA entries take.
fn check_alias(alias: &str) -> Result<(), &'static str> {
    if alias.trim().is_empty() {
        return Err("must not be empty");
    }
    if alias.trim() != alias {
        return Err("must not start or end with spaces");
    }
    if alias.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    if jks::modified_utf8_len(alias) > jks::MAX_ALIAS_BYTES {
        return Err("must be at most 65535 bytes long");
    }
    if jks::is_ca_alias(alias) {
        return Err("is taken by the CA entries (ca, ca-1, ca-2, ...); JKS aliases ignore case");
    }
    Ok(())
}
