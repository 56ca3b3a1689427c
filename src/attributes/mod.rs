//! Step 2 of a volume's path: the volume context kubelet sends → validated [`VolumeAttributes`].
//!
//! Pure: no I/O. Every problem found is collected, so one `InvalidArgument` tells the user all
//! that is wrong with a volume at once, each problem naming the key and the bad value.
//!
//! Where things are: [`table`] lists every key (adding an attribute is a row there and the code
//! that reads it in its part's file); [`spec`] is what a context becomes; `reader.rs` reads values
//! and collects problems; one file per part of the spec (`pod.rs`, `issuer.rs`,
//! `subject_fields.rs`, `sans.rs`, `certificate.rs`, `key_spec.rs`, `files.rs`, `keystore.rs`,
//! `unknown_keys.rs`); [`subject`], [`duration`] and `variables.rs` are the value syntaxes.

mod certificate;
pub mod duration;
mod files;
mod issuer;
mod key_spec;
mod keystore;
mod pod;
mod problems;
mod reader;
mod sans;
pub mod spec;
pub mod subject;
mod subject_fields;
pub mod table;
mod unknown_keys;
mod variables;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

pub use duration::{format_go_duration, parse_go_duration};
pub use files::check_file_name;
pub use problems::{AttributeProblem, InvalidAttributes};
pub use spec::{
    CertRequestSpec, DEFAULT_DURATION, FileNames, IssuerRef, JksSpec, KeyAlgorithm, KeyEncoding,
    KeySpec, KeyUsage, ParseOptions, Password, Pkcs12Profile, Pkcs12Spec, PodInfo, PodIpSans,
    PodIpWait, VolumeAttributes,
};
pub use subject::Subject;
pub use table::{
    ATTRIBUTES, Attribute, KUBELET_PREFIX, PREFIX, Part, is_secret_key, key, redacted_context,
};
pub use unknown_keys::closest_known_key;
pub use variables::{KNOWN_VARIABLES, expand};

use reader::Reader;

/// Reads and validates a volume context as kubelet sends it in `NodePublishVolume`.
pub fn parse_volume_context(
    context: &HashMap<String, String>,
) -> Result<VolumeAttributes, InvalidAttributes> {
    parse_volume_context_with(context, ParseOptions::default())
}

/// [`parse_volume_context`] with options. The steps run in a fixed order, which is the order the
/// problems are listed in.
pub fn parse_volume_context_with(
    context: &HashMap<String, String>,
    options: ParseOptions,
) -> Result<VolumeAttributes, InvalidAttributes> {
    parse(&mut Reader::new(context), options)
}

fn parse(
    reader: &mut Reader<'_>,
    options: ParseOptions,
) -> Result<VolumeAttributes, InvalidAttributes> {
    let mut warnings = Vec::new();

    pod::check_ephemeral(reader);
    let pod = pod::read(reader);
    let issuer = issuer::read(reader);
    let subject = subject_fields::read(reader, &pod, &mut warnings);
    let sans = sans::read(reader, &pod, options, &mut warnings);
    sans::warn_if_nothing_is_named(&subject, &sans, &mut warnings);
    let terms = certificate::read(reader, options.default_duration, &mut warnings);
    let key = key_spec::read(reader);
    let files = files::read_names(reader);
    let pkcs12 = keystore::read(reader);
    let jks = keystore::read_jks(reader);
    let store_files = [pkcs12.file_names, jks.file_names].concat();
    files::check_distinct(reader, &files, &store_files);
    let (pkcs12, jks) = (pkcs12.written, jks.written);
    let fs_group = files::read_group(reader);
    let reuse_private_key = key_spec::reuse(reader);
    let other_keys = unknown_keys::read(reader, options.strict, &mut warnings);
    warnings.sort();

    if !reader.problems.is_empty() {
        return Err(InvalidAttributes(std::mem::take(&mut reader.problems)));
    }
    Ok(VolumeAttributes {
        pod,
        spec: CertRequestSpec {
            issuer,
            subject,
            dns_names: sans.dns_names,
            ip_sans: sans.ip_sans,
            pod_ip_sans: sans.pod_ip_sans,
            uri_sans: sans.uri_sans,
            duration: terms.duration,
            renew_before: terms.renew_before,
            is_ca: terms.is_ca,
            usages: terms.usages,
            key,
            files,
            fs_group,
            reuse_private_key,
            pkcs12,
            jks,
            annotations: other_keys.annotations,
        },
        unknown_keys: other_keys.unknown,
        warnings,
    })
}
