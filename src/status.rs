//! `cert-manager-csi-driver status`: what the driver manages on this node, read from its data
//! root and the volumes themselves — the first thing to run when a pod is stuck. It needs no
//! running driver and changes nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use std::collections::HashMap;

use crate::attributes::{
    ParseOptions, PodInfo, PodIpWait, check_file_name, key, parse_volume_context_with,
};
use crate::certificate::inspect_leaf;
use crate::volume::files;
use crate::volume::layout::Layout;
use crate::volume::state::StateStore;

/// Whether the Go driver's record of an adopted volume holds a service-account token.
fn metadata_has_token(volume_dir: &Path) -> bool {
    std::fs::read(volume_dir.join(crate::volume::csi_lib::METADATA_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<crate::volume::csi_lib::Metadata>(&bytes).ok())
        .is_some_and(|metadata| {
            metadata
                .volume_context
                .contains_key(key::SERVICE_ACCOUNT_TOKENS)
        })
}

/// One managed volume, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolumeReport {
    pub volume_id: String,
    /// `namespace/name`.
    pub pod: String,
    /// `Kind/name (group)`.
    pub issuer: String,
    pub dns_names: Vec<String>,
    pub target_path: PathBuf,
    /// RFC 3339, or `None` when no certificate is in the volume (yet).
    pub not_after: Option<String>,
    /// RFC 3339 of the next renewal or retry the driver scheduled.
    pub next_renewal: Option<String>,
    pub failures: u32,
    pub last_error: Option<String>,
    /// The CertificateRequest of the last failed attempt (cert-manager backend).
    pub certificate_request: Option<String>,
    /// `ok`, `expired`, `no certificate`, `not mounted`, `not renewed` (attributes this driver
    /// rejects), `unreadable record`.
    pub state: String,
    /// Taken over from the Go driver: its files are in the Go driver's data directory.
    pub adopted: bool,
    /// What else an operator should know about this volume.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Reads every volume record under `data_root`.
pub fn collect(data_root: &Path) -> std::io::Result<Vec<VolumeReport>> {
    let store = StateStore::open_existing(data_root);
    let mut reports = Vec::new();
    for loaded in store.records_read_only()? {
        let record = match loaded {
            Ok(record) => record,
            Err((path, reason)) => {
                reports.push(VolumeReport {
                    volume_id: path.display().to_string(),
                    pod: "?".into(),
                    issuer: "?".into(),
                    dns_names: Vec::new(),
                    target_path: PathBuf::new(),
                    not_after: None,
                    next_renewal: None,
                    failures: 0,
                    last_error: Some(reason),
                    certificate_request: None,
                    state: "unreadable record".into(),
                    adopted: false,
                    notes: Vec::new(),
                });
                continue;
            }
        };
        let context: HashMap<String, String> = record.volume_context.clone().into_iter().collect();
        // The driver accepted this volume when it was published, flags and all; `status` does not
        // know those flags, so it must not reject `${POD_IP}` for want of them.
        let options = ParseOptions {
            pod_ip_wait: PodIpWait::AVAILABLE,
            ..ParseOptions::default()
        };
        let parsed = parse_volume_context_with(&context, options);
        let progress = store.load_progress(&record.volume_id);
        // An adopted volume's files are in the Go driver's data directory (the target is a bind
        // mount of it); this driver's own are in the target's tmpfs.
        let layout = Layout::of_record(&record);
        let files_dir = layout.files_dir(&record.target_path);
        let certificate_file = match &parsed {
            Ok(request) => request.spec.files.certificate.clone(),
            Err(_) => context
                .get(key::CERTIFICATE_FILE)
                .filter(|name| check_file_name(name).is_ok())
                .cloned()
                .unwrap_or_else(|| "tls.crt".into()),
        };
        let certificate = files::read_current(&files_dir, &certificate_file)
            .ok()
            .and_then(|bytes| inspect_leaf(&String::from_utf8_lossy(&bytes)).ok());
        let waiting_on = progress.as_ref().and_then(|p| p.waiting_on.clone());
        let state = match (&certificate, record.target_path.is_dir()) {
            (_, false) => "not mounted".to_string(),
            _ if parsed.is_err() => "not renewed".to_string(),
            (None, true) if waiting_on.is_some() => "waiting on its pod".to_string(),
            (None, true) => "no certificate".to_string(),
            (Some(certificate), true) if certificate.not_after <= SystemTime::now() => {
                "expired".to_string()
            }
            (Some(_), true) => "ok".to_string(),
        };
        let mut notes = Vec::new();
        if let Some((on, since)) = &waiting_on {
            notes.push(format!(
                "issuance waits for {on} since {}",
                rfc3339(UNIX_EPOCH + Duration::from_secs(*since))
            ));
        }
        if let Some(volume_dir) = &record.adopted_from {
            notes.push(format!(
                "{}; its files are in {}",
                if record.published_in_csi_lib_layout {
                    "published in the Go driver's layout, for a rollback to take over"
                } else {
                    "adopted from the Go driver"
                },
                volume_dir.join(crate::volume::csi_lib::DATA_DIR).display()
            ));
            if metadata_has_token(volume_dir) {
                notes.push(
                    "with --use-token-request, renewals use the pod token the Go driver recorded \
                     (it may have expired) until kubelet's next republish brings a fresh one"
                        .into(),
                );
            }
        }
        let rejected = parsed.as_ref().err().map(|invalid| {
            format!("not renewed: this driver rejects its attributes ({invalid}); its files are kept as they are until the pod goes")
        });
        let parsed = parsed.ok();
        let pod = PodInfo::read_from(&context);
        reports.push(VolumeReport {
            volume_id: record.volume_id.clone(),
            pod: format!("{}/{}", pod.namespace, pod.name),
            issuer: parsed.as_ref().map_or_else(
                || "?".into(),
                |r| {
                    let issuer = &r.spec.issuer;
                    format!("{}/{} ({})", issuer.kind, issuer.name, issuer.group)
                },
            ),
            dns_names: parsed
                .as_ref()
                .map(|r| r.spec.dns_names.clone())
                .unwrap_or_default(),
            target_path: record.target_path.clone(),
            not_after: certificate.as_ref().map(|c| rfc3339(c.not_after)),
            // A failing volume's retry time was saved by the driver; a healthy one renews at the
            // time its certificate and renew-before give (the driver moves it earlier by at most
            // 1% of the lifetime, for jitter).
            next_renewal: progress
                .as_ref()
                .and_then(|p| p.next_renewal)
                .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
                .or_else(|| {
                    let certificate = certificate.as_ref()?;
                    let renew_before = parsed.as_ref()?.spec.renew_before;
                    Some(crate::renewal::renewal_time(
                        certificate.not_before,
                        certificate.not_after,
                        renew_before,
                    ))
                })
                .map(rfc3339),
            failures: progress.as_ref().map_or(0, |p| p.failures),
            last_error: progress
                .as_ref()
                .and_then(|p| p.last_error.clone())
                .or(rejected),
            certificate_request: progress.and_then(|p| p.certificate_request),
            state,
            adopted: layout.is_adopted(),
            notes,
        });
    }
    reports.sort_by(|a, b| a.pod.cmp(&b.pod).then(a.volume_id.cmp(&b.volume_id)));
    Ok(reports)
}

fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::from(at))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "?".into())
}

/// The reports as an aligned table, one volume per line.
pub fn render_table(reports: &[VolumeReport]) -> String {
    if reports.is_empty() {
        return "no volumes are managed on this node\n".into();
    }
    let header = [
        "VOLUME",
        "POD",
        "ISSUER",
        "DNS NAMES",
        "STATE",
        "NOT AFTER",
        "NEXT RENEWAL",
        "FAILURES",
        "LAST ERROR",
    ];
    let rows: Vec<[String; 9]> = reports
        .iter()
        .map(|r| {
            [
                r.volume_id.clone(),
                r.pod.clone(),
                r.issuer.clone(),
                if r.dns_names.is_empty() {
                    "-".into()
                } else {
                    r.dns_names.join(",")
                },
                if r.adopted {
                    format!("{} (adopted)", r.state)
                } else {
                    r.state.clone()
                },
                r.not_after.clone().unwrap_or_else(|| "-".into()),
                r.next_renewal.clone().unwrap_or_else(|| "-".into()),
                r.failures.to_string(),
                r.last_error
                    .as_deref()
                    .map(|e| e.replace('\n', " "))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (index, cell) in cells.into_iter().enumerate() {
            if index == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[index]));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// The reports as a JSON array.
pub fn render_json(reports: &[VolumeReport]) -> String {
    serde_json::to_string_pretty(reports).unwrap_or_else(|_| "[]".into()) + "\n"
}
