//! Size and shape limits on what a caller sends, checked before anything is written: a value over
//! a limit is `InvalidArgument` naming the field and the limit, never an `Internal` error from a
//! file system that could not take it.
//!
//! The CSI spec's size limits are the rule: strings 128 bytes (what `volume_id` is held to). Paths
//! are held to what Linux accepts (4096 bytes, 255 per component). (The volume context's limit is
//! checked by the volume manager after its attributes, so that an over-long attribute is named
//! with its own bound.)

use std::path::{Component, Path};

use tonic::Status;

use crate::volume::VolumeId;
pub use crate::volume::id::MAX_VOLUME_ID_BYTES as MAX_ID_BYTES;
/// Linux's `PATH_MAX`.
pub const MAX_PATH_BYTES: usize = 4096;
/// Linux's `NAME_MAX`.
pub const MAX_NAME_BYTES: usize = 255;

/// A volume ID: non-empty, at most 128 bytes, no NUL.
pub fn volume_id(value: &str) -> Result<VolumeId, Status> {
    VolumeId::new(value).map_err(Status::invalid_argument)
}

/// A path kubelet hands over (`target_path`, `volume_path`): absolute, within Linux's limits.
pub fn path(value: &str, field: &str) -> Result<(), Status> {
    required(value, field)?;
    no_nul(value, field)?;
    if value.len() > MAX_PATH_BYTES {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes; a path may have at most {MAX_PATH_BYTES}",
            value.len()
        )));
    }
    let path = Path::new(value);
    if !path.is_absolute() {
        return Err(Status::invalid_argument(format!(
            "{field} {value:?} must be an absolute path"
        )));
    }
    for component in path.components() {
        match component {
            Component::Normal(name) if name.len() > MAX_NAME_BYTES => {
                return Err(Status::invalid_argument(format!(
                    "{field} has a component of {} bytes; a file name may have at most \
                     {MAX_NAME_BYTES}",
                    name.len()
                )));
            }
            Component::ParentDir => {
                return Err(Status::invalid_argument(format!(
                    "{field} {value:?} must not contain `..`"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn required(value: &str, field: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    Ok(())
}

fn no_nul(value: &str, field: &str) -> Result<(), Status> {
    if value.contains('\0') {
        return Err(Status::invalid_argument(format!(
            "{field} contains a NUL byte"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn message<T: std::fmt::Debug>(result: Result<T, Status>) -> String {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        status.message().to_string()
    }

    #[test]
    fn volume_ids_are_held_to_the_csi_limit() {
        assert!(volume_id(&"a".repeat(MAX_ID_BYTES)).is_ok());
        let too_long = message(volume_id(&"a".repeat(10_000)));
        assert!(too_long.contains("volume_id is 10000 bytes") && too_long.contains("128"));
        assert!(message(volume_id("")).contains("required"));
        assert!(message(volume_id("csi-\0")).contains("NUL"));
    }

    #[test]
    fn paths_are_held_to_what_linux_accepts() {
        assert!(
            path(
                "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/tls/mount",
                "target_path"
            )
            .is_ok()
        );
        assert!(message(path("relative/mount", "target_path")).contains("absolute"));
        assert!(message(path(&format!("/{}", "a".repeat(5000)), "target_path")).contains("4096"));
        assert!(message(path(&format!("/x/{}/y", "a".repeat(300)), "target_path")).contains("255"));
        assert!(message(path("/x/../etc", "volume_path")).contains("volume_path"));
        assert!(message(path("/x\0", "target_path")).contains("NUL"));
    }
}
