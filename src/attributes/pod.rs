//! Who the volume belongs to (kubelet's pod info, `podInfoOnMount: true`), and that it is a CSI
//! ephemeral inline volume: the only kind this driver serves.

use std::collections::HashMap;
use std::fmt;

use super::reader::Reader;
use super::spec::PodInfo;
use super::table::{Part, key};

/// The volume must be inline ephemeral.
pub(super) fn check_ephemeral(reader: &mut Reader<'_>) {
    match reader.part(Part::Pod).get(key::EPHEMERAL) {
        Some("true") => {}
        other => reader.problem(
            key::EPHEMERAL,
            other,
            "must be \"true\": this driver only serves CSI ephemeral inline volumes",
        ),
    }
}

/// The pod's name, namespace and UID (all required) and service account.
pub(super) fn read(reader: &mut Reader<'_>) -> PodInfo {
    let reader = reader.part(Part::Pod);
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
        read(&mut Reader::new(context))
    }
}
