//! The keystores: PKCS#12 and JKS, each switched by its `*-enable` attribute as the Go driver's
//! `pkcs12Values` switches PKCS#12: `"true"` writes the store; `"false"` writes nothing but still
//! needs the password and checks the file name (and takes it, so no other file may have it);
//! without the switch, the store's other attributes are refused. Each store has an optional
//! truststore (the CA certificates alone, under the same password). File names have
//! cert-manager's defaults (also for an empty value) and the same rules as every other file name.

use super::reader::Reader;
use super::spec::{JksSpec, Password, Pkcs12Profile, Pkcs12Spec};
use super::table::{Part, is_secret_key, key};
use crate::keys::jks;

/// One keystore: what to write (when enabled with `"true"`), and the file names it takes.
pub(super) struct Store<T> {
    pub written: Option<T>,
    pub file_names: Vec<(&'static str, String)>,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store {
            written: None,
            file_names: Vec::new(),
        }
    }
}

/// What an `*-enable` attribute says: `Some(true)` / `Some(false)`, or `None` when unset or
/// invalid (a problem then). When unset, each of `dependents` that is set, even to `""`, is a
/// problem, with the Go driver's message.
fn switch(reader: &mut Reader<'_>, enable_key: &str, dependents: &[&str]) -> Option<bool> {
    match reader.present(enable_key) {
        None => {
            for dependent in dependents {
                if let Some(value) = reader.present(dependent) {
                    let shown = if is_secret_key(dependent) {
                        "<redacted>"
                    } else {
                        value
                    };
                    reader.problem(
                        dependent,
                        Some(shown),
                        format!(
                            "cannot use attribute without \"{enable_key}\" set to \"true\" or \
                             \"false\""
                        ),
                    );
                }
            }
            None
        }
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            reader.problem(enable_key, Some(other), "must be \"true\" or \"false\"");
            None
        }
    }
}

pub(super) fn read(reader: &mut Reader<'_>) -> Store<Pkcs12Spec> {
    let reader = reader.part(Part::Keystore);
    let dependents = [
        key::PKCS12_FILENAME,
        key::PKCS12_PASSWORD,
        key::PKCS12_PROFILE,
        key::PKCS12_TRUSTSTORE_ENABLE,
        key::PKCS12_TRUSTSTORE_FILENAME,
    ];
    let Some(write) = switch(reader, key::PKCS12_ENABLE, &dependents) else {
        return Store::default();
    };
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
    let truststore = switch(
        reader,
        key::PKCS12_TRUSTSTORE_ENABLE,
        &[key::PKCS12_TRUSTSTORE_FILENAME],
    )
    .map(|on| {
        let name = reader.file_name(key::PKCS12_TRUSTSTORE_FILENAME, "truststore.p12");
        (on, name)
    });
    let mut file_names = vec![(key::PKCS12_FILENAME, file_name.clone())];
    let truststore = match truststore {
        Some((true, name)) if write => {
            file_names.push((key::PKCS12_TRUSTSTORE_FILENAME, name.clone()));
            Some(name)
        }
        _ => None,
    };
    Store {
        written: write.then_some(Pkcs12Spec {
            file_name,
            password,
            profile,
            truststore,
        }),
        file_names,
    }
}

/// The JKS keystore, as cert-manager's `keystores.jks`: `keystore.jks`, alias `certificate`, and
/// (on by default, as cert-manager writes it) `truststore.jks`. Any key algorithm: a JKS key
/// entry is PKCS#8, and Java 17's keytool reads RSA, ECDSA and Ed25519 ones (Ed25519 needs
/// Java 15 or newer, as it does in any keystore).
pub(super) fn read_jks(reader: &mut Reader<'_>) -> Store<JksSpec> {
    let reader = reader.part(Part::Keystore);
    let dependents = [
        key::JKS_FILENAME,
        key::JKS_PASSWORD,
        key::JKS_ALIAS,
        key::JKS_TRUSTSTORE_ENABLE,
        key::JKS_TRUSTSTORE_FILENAME,
    ];
    let Some(write) = switch(reader, key::JKS_ENABLE, &dependents) else {
        return Store::default();
    };
    let file_name = reader.file_name(key::JKS_FILENAME, "keystore.jks");
    let password = required_password(reader, key::JKS_PASSWORD, key::JKS_ENABLE);
    let alias = reader.get(key::JKS_ALIAS).unwrap_or("certificate");
    if let Err(reason) = check_alias(alias) {
        reader.problem(key::JKS_ALIAS, Some(alias), reason);
    }
    let truststore_on = match reader.get(key::JKS_TRUSTSTORE_ENABLE) {
        None => true,
        Some(_) => reader.boolean(key::JKS_TRUSTSTORE_ENABLE),
    };
    let truststore_name = reader.file_name(key::JKS_TRUSTSTORE_FILENAME, "truststore.jks");
    let mut file_names = vec![(key::JKS_FILENAME, file_name.clone())];
    let truststore = (write && truststore_on).then(|| {
        file_names.push((key::JKS_TRUSTSTORE_FILENAME, truststore_name.clone()));
        truststore_name
    });
    Store {
        written: write.then(|| JksSpec {
            file_name,
            password,
            alias: alias.to_string(),
            truststore,
        }),
        file_names,
    }
}

/// The store's password, needed whenever its switch is set (to `"true"` or `"false"`).
fn required_password(reader: &mut Reader<'_>, password_key: &str, enable_key: &str) -> Password {
    match reader.get(password_key) {
        Some(password) if !password.is_empty() => Password(password.to_string().into()),
        _ => {
            reader.problem(
                password_key,
                None,
                format!("is required when {enable_key} is set (to \"true\" or \"false\")"),
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
