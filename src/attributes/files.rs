//! The files inside the volume: their names (which can never leave the volume, and must be
//! distinct) and the group that owns them.

use std::collections::HashMap;

use super::reader::{Reader, parse_go_int};
use super::spec::FileNames;
use super::table::{Part, key};

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

/// The certificate, key and CA file names (upstream's defaults: `tls.crt`, `tls.key`, `ca.crt`).
pub(super) fn read_names(reader: &mut Reader<'_>) -> FileNames {
    let reader = reader.part(Part::Files);
    FileNames {
        certificate: reader.file_name(key::CERTIFICATE_FILE, FileNames::CERTIFICATE),
        private_key: reader.file_name(key::PRIVATE_KEY_FILE, FileNames::PRIVATE_KEY),
        ca: reader.file_name(key::CA_FILE, FileNames::CA),
    }
}

impl FileNames {
    pub const CERTIFICATE: &'static str = "tls.crt";
    pub const PRIVATE_KEY: &'static str = "tls.key";
    pub const CA: &'static str = "ca.crt";

    /// `tls.crt`, `tls.key`, `ca.crt`.
    pub fn usual() -> FileNames {
        FileNames {
            certificate: FileNames::CERTIFICATE.into(),
            private_key: FileNames::PRIVATE_KEY.into(),
            ca: FileNames::CA.into(),
        }
    }
}

/// No two files may share a name: the certificate, key and CA files and the names the keystores
/// take (`stores`, whether written or not, as the Go driver's `pkcs12-filename`). A collision is
/// blamed on an attribute the user set, not on one that kept its default.
pub(super) fn check_distinct(
    reader: &mut Reader<'_>,
    files: &FileNames,
    stores: &[(&'static str, String)],
) {
    let reader = reader.part(Part::Files);
    let file_keys = [
        (key::CERTIFICATE_FILE, &files.certificate),
        (key::PRIVATE_KEY_FILE, &files.private_key),
        (key::CA_FILE, &files.ca),
    ]
    .into_iter()
    .chain(stores.iter().map(|(file_key, name)| (*file_key, name)));
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
}

/// `fs-group`: the group that owns the files (else the pod's fsGroup, decided at publish).
pub(super) fn read_group(reader: &mut Reader<'_>) -> Option<u32> {
    let reader = reader.part(Part::Files);
    let raw = reader.get(key::FS_GROUP)?;
    // Go's `strconv.ParseInt`: `+1000` is 1000, `" 1000"` is not a number.
    match parse_go_int(raw).map(u32::try_from) {
        Ok(Ok(gid)) if gid > 0 => Some(gid),
        _ => {
            reader.problem(
                key::FS_GROUP,
                Some(raw),
                "must be an integer from 1 to 4294967295",
            );
            None
        }
    }
}
