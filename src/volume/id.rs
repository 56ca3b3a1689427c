//! A volume's ID, as kubelet names it (`csi-<sha256 of pod UID and volume name>` for inline
//! volumes). The type is the proof that it was checked: non-empty, within the CSI spec's 128-byte
//! limit for strings, no NUL, so that it can name files and appear in messages.

use std::fmt;
use std::ops::Deref;

/// CSI: "string field: 128 bytes".
pub const MAX_VOLUME_ID_BYTES: usize = 128;

/// A checked volume ID.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumeId(String);

impl VolumeId {
    /// Checks `id`; the error says what is wrong, naming `volume_id`.
    pub fn new(id: impl Into<String>) -> Result<VolumeId, String> {
        let id = id.into();
        if id.is_empty() {
            return Err("volume_id is required".into());
        }
        if id.len() > MAX_VOLUME_ID_BYTES {
            return Err(format!(
                "volume_id is {} bytes; the CSI spec allows at most {MAX_VOLUME_ID_BYTES}",
                id.len()
            ));
        }
        if id.contains('\0') {
            return Err("volume_id contains a NUL byte".into());
        }
        Ok(VolumeId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for VolumeId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for VolumeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_id_is_checked_once_at_the_boundary() {
        let id = VolumeId::new("csi-0123abcd").unwrap();
        assert_eq!(id.as_str(), "csi-0123abcd");
        assert_eq!(format!("{id} {id:?}"), "csi-0123abcd \"csi-0123abcd\"");
        assert!(VolumeId::new("x".repeat(MAX_VOLUME_ID_BYTES)).is_ok());
        for (bad, says) in [
            (String::new(), "required"),
            ("x".repeat(MAX_VOLUME_ID_BYTES + 1), "at most 128"),
            ("a\0b".to_string(), "NUL"),
        ] {
            let error = VolumeId::new(bad).unwrap_err();
            assert!(
                error.contains("volume_id") && error.contains(says),
                "{error}"
            );
        }
    }
}
