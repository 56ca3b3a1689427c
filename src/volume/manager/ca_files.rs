//! Rewriting the CA file of every volume when the trust bundle it holds changes (csi-driver-spiffe's
//! `--source-ca-bundle`): the volume's current files are written again as a new set, with the new
//! CA, atomically as an issuance writes them. Volumes still on their first issuance are skipped:
//! they get the bundle with their certificate.

use super::VolumeManager;
use super::publish::effective_group;
use crate::volume::files::{self, FileToWrite};

/// What a pass over the volumes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaRewrite {
    pub rewritten: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub failed: usize,
}

impl VolumeManager {
    /// Writes `ca_pem` as `ca_file` into every volume that holds a certificate.
    pub async fn rewrite_ca_files(&self, ca_file: &str, ca_pem: &str) -> CaRewrite {
        let slots: Vec<_> = self
            .slots()
            .iter()
            .map(|(id, slot)| (id.clone(), slot.clone()))
            .collect();
        let mut summary = CaRewrite::default();
        for (volume_id, slot) in slots {
            let mut cancellation = slot.cancellation();
            let mut guard = tokio::select! {
                guard = slot.volume.lock() => guard,
                () = cancellation.requested() => { summary.skipped += 1; continue }
            };
            let Some(volume) = guard.as_mut() else {
                summary.skipped += 1;
                continue;
            };
            if volume.certificate().is_none() || !volume.is_valid() {
                summary.skipped += 1;
                continue;
            }
            let fs_group = match self.load_attributes(volume) {
                Ok(Some(attributes)) => attributes.spec.fs_group,
                _ => {
                    summary.skipped += 1;
                    continue;
                }
            };
            let group = effective_group(fs_group, volume.record.volume_mount_group.as_deref());
            let files_dir = volume.files_dir();
            let modes = volume.layout.file_modes();
            let written = (|| -> std::io::Result<files::WriteOutcome> {
                let current = files::current_set(&files_dir)
                    .ok_or_else(|| std::io::Error::other("the volume has no current file set"))?;
                let mut entries: Vec<(String, Vec<u8>, bool)> = Vec::new();
                for entry in std::fs::read_dir(&current)? {
                    let entry = entry?;
                    let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                        continue;
                    };
                    if name == ca_file {
                        continue;
                    }
                    use std::os::unix::fs::PermissionsExt;
                    let mode = entry.metadata()?.permissions().mode();
                    // Secret files are the ones others may not read (see `FileModes`).
                    entries.push((name, std::fs::read(entry.path())?, mode & 0o004 == 0));
                }
                entries.push((ca_file.to_string(), ca_pem.as_bytes().to_vec(), false));
                let set: Vec<FileToWrite<'_>> = entries
                    .iter()
                    .map(|(name, contents, secret)| FileToWrite {
                        name,
                        contents,
                        secret: *secret,
                    })
                    .collect();
                files::write_file_set(&files_dir, &set, group, modes)
            })();
            volume.rest();
            match written {
                Ok(files::WriteOutcome::Written) => {
                    tracing::info!(%volume_id, "updated CA file on volume");
                    summary.rewritten += 1;
                }
                Ok(files::WriteOutcome::Unchanged) => summary.unchanged += 1,
                Err(error) => {
                    tracing::error!(%volume_id, %error, "cannot rewrite the volume's CA file");
                    summary.failed += 1;
                }
            }
        }
        summary
    }
}
