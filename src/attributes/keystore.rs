//! The PKCS#12 keystore: written only when enabled, which then needs a password; the file name
//! has a default and the same rules as every other file name.

use super::reader::Reader;
use super::spec::{Password, Pkcs12Profile, Pkcs12Spec};
use super::table::{Part, key};

pub(super) fn read(reader: &mut Reader<'_>) -> Option<Pkcs12Spec> {
    let reader = reader.part(Part::Keystore);
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
