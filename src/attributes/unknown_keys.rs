//! Keys the driver does not read: a `csi.cert-manager.io/*` key it does not know (a typo, an old
//! spelling such as `keystore-pkcs12-enable`, a key of another release: the Go driver ignores
//! them all) is a warning with a "did you mean", or an error with `--strict-attributes`; an
//! attribute of another prefix is passed on to the issuer as an annotation.

use std::collections::BTreeMap;

use super::reader::Reader;
use super::table::{self, KUBELET_PREFIX, PREFIX};

/// What the keys outside the table are.
pub(super) struct OtherKeys {
    /// `csi.cert-manager.io/*` keys this driver does not read, sorted.
    pub unknown: Vec<String>,
    /// Attributes of other prefixes, for the issuer.
    pub annotations: BTreeMap<String, String>,
}

/// Sorts the keys outside the table; warnings go to `warnings`, and with `strict` an unknown key
/// is a problem.
pub(super) fn read(reader: &mut Reader<'_>, strict: bool, warnings: &mut Vec<String>) -> OtherKeys {
    let context = reader.context();
    let mut unknown = Vec::new();
    let mut annotations = BTreeMap::new();
    for (key, value) in context {
        if key.starts_with(PREFIX) {
            if table::attribute(key).is_none() {
                unknown.push(key.clone());
            }
        } else if key.contains('/') && !key.starts_with(KUBELET_PREFIX) {
            annotations.insert(key.clone(), value.clone());
        }
    }
    unknown.sort();
    for key in &unknown {
        let hint = closest_known_key(key)
            .map(|known| format!(" (did you mean {known}?)"))
            .unwrap_or_default();
        if strict {
            // The value is not shown: an unknown key may be a misspelt secret.
            reader.problem(key, None, format!("is not a known attribute{hint}"));
        } else {
            warnings.push(format!("unknown attribute {key}{hint}"));
        }
    }
    OtherKeys {
        unknown,
        annotations,
    }
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
    table::handled_keys()
        .enumerate()
        .filter_map(|(order, known)| {
            let candidate = squash(known);
            let distance = edit_distance(&wanted, &candidate);
            let close = distance <= 2.max(candidate.len() / 4);
            // `issuer` for `issuer-name`, `organization` for `organizations`, and a key with a
            // prefix word: `keystore-pkcs12-enable` (seed 001's spelling) for `pkcs12-enable`.
            let contained = (wanted.len() >= 5
                && (candidate.starts_with(&wanted) || wanted.starts_with(&candidate)))
                || (candidate.len() >= 5 && wanted.ends_with(&candidate));
            (close || contained).then_some((distance, order, known))
        })
        .min()
        .map(|(_, _, known)| known)
}
