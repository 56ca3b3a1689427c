//! What the manager holds for one volume. A [`ManagedVolume`] owns everything about it — where its
//! files live, its attributes, its phase, the key of a request still pending, the pod's token —
//! so dropping it (unpublish) drops them all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use tokio::time::Instant;

use super::super::layout::Layout;
use super::super::state::VolumeRecord;
use super::gates::GateWait;
use crate::attributes::{CertRequestSpec, FileNames, PodInfo, VolumeAttributes};
use crate::certificate::CertificateSummary;
use crate::keys::PrivateKey;
use crate::kubernetes::ServiceAccountToken;

/// A volume the driver manages.
pub(super) struct ManagedVolume {
    /// Its record, without the volume context: that is on disk, and `attributes` is what the
    /// driver works from (at 10,000 volumes the raw contexts alone would be ~25 MiB).
    pub record: VolumeRecord,
    pub layout: Layout,
    /// Its pod: named in every log line and Event about the volume, so always at hand.
    pub pod: PodNames,
    /// `renew-before`, which schedules every renewal (its attributes may be resting).
    pub renew_before: Option<Duration>,
    /// Its file names when they are not the usual `tls.crt`, `tls.key`, `ca.crt`: what a stats
    /// call (kubelet polls it) checks, without reading a resting volume's record.
    pub unusual_file_names: Option<Box<FileNames>>,
    pub attributes: Attributes,
    pub phase: Phase,
    /// The CertificateRequest behind the current certificate (cert-manager backend).
    pub certificate_request: Option<String>,
    /// A progress file may exist for it (it failed since its last success, or it was reloaded).
    pub progress_saved: bool,
    /// The pod's service-account token (`--use-token-request`), refreshed by every (re)publish.
    /// Memory only.
    pub token: Option<ServiceAccountToken>,
    /// The last republish brought no usable token (warned about once, until one comes again).
    pub token_unusable: bool,
    /// What its issuance waits for on its pod (readiness gates), while it does.
    /// Boxed: few volumes ever wait, and each one's slot would carry its 64 bytes.
    pub gate_wait: Option<Box<GateWait>>,
    /// Counts it in the manager's figures from the moment kubelet knows it as published (a first
    /// publish in flight is not counted yet) until it is dropped.
    pub counted: Option<Counted>,
}

/// A pod's name, namespace, UID and service account in one allocation: as four strings they
/// cost ~150 bytes more a volume, for what only log lines and Events read.
pub(super) struct PodNames {
    /// name, namespace, uid and service account, one after the other.
    text: Box<str>,
    /// Where the name, the namespace and the UID end in `text`.
    ends: [u32; 3],
    has_service_account: bool,
}

impl PodNames {
    pub fn new(pod: &PodInfo) -> PodNames {
        let service_account = pod.service_account.as_deref().unwrap_or("");
        let text = [pod.name.as_str(), &pod.namespace, &pod.uid, service_account].concat();
        let end = |upto: usize| {
            [&pod.name, &pod.namespace, &pod.uid][..upto]
                .iter()
                .map(|part| part.len())
                .sum::<usize>() as u32
        };
        PodNames {
            text: text.into_boxed_str(),
            ends: [end(1), end(2), end(3)],
            has_service_account: pod.service_account.is_some(),
        }
    }

    pub fn namespace(&self) -> &str {
        self.part(1)
    }

    fn part(&self, index: usize) -> &str {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        let end = self
            .ends
            .get(index)
            .map_or(self.text.len(), |end| *end as usize);
        &self.text[start..end]
    }

    pub fn to_pod_info(&self) -> PodInfo {
        PodInfo {
            name: self.part(0).to_string(),
            namespace: self.part(1).to_string(),
            uid: self.part(2).to_string(),
            service_account: self.has_service_account.then(|| self.part(3).to_string()),
        }
    }
}

/// How many volumes are managed, and how many of them were adopted: kept by the volumes
/// themselves, so a volume that goes (unpublished, or a failed publish, or a panic) is never
/// counted on.
#[derive(Debug, Default)]
pub(super) struct Counters {
    managed: AtomicUsize,
    adopted: AtomicUsize,
}

impl Counters {
    pub fn managed(&self) -> usize {
        self.managed.load(Ordering::Relaxed)
    }

    pub fn adopted(&self) -> usize {
        self.adopted.load(Ordering::Relaxed)
    }
}

/// One volume's share of the [`Counters`], given back on drop.
pub(super) struct Counted {
    counters: Arc<Counters>,
    adopted: bool,
}

impl Counted {
    pub fn new(counters: &Arc<Counters>, adopted: bool) -> Counted {
        counters.managed.fetch_add(1, Ordering::Relaxed);
        if adopted {
            counters.adopted.fetch_add(1, Ordering::Relaxed);
        }
        Counted {
            counters: Arc::clone(counters),
            adopted,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.counters.managed.fetch_sub(1, Ordering::Relaxed);
        if self.adopted {
            self.counters.adopted.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A volume's attributes, as this driver reads them.
pub(super) enum Attributes {
    /// Valid, and parsed: from the publish (or the reload) until the volume rests, and again
    /// from each renewal until it rests again.
    Loaded(Box<VolumeAttributes>),
    /// Valid, and left in the volume's record on disk: its certificate is in place and nothing
    /// runs for it. Read again when next needed ([`super::VolumeManager::load_attributes`]).
    /// Parsed, they take ~1.5 KiB a volume (~14 MiB at 10,000) that an idle volume never reads.
    Resting,
    /// Attributes this driver rejects on a volume it did not publish itself: one adopted from the
    /// Go driver, which accepted them, or one of its own recorded before a rule was tightened. Its
    /// files stay and are served as they are, never renewed, until the pod goes.
    Rejected { problems: String },
}

/// Where a volume is in its life. The retry state is boxed: a resting volume is `Ready`, and its
/// slot should not carry the size of what only failing volumes need.
pub(super) enum Phase {
    /// No certificate yet: the first issuance is running or will be retried.
    Issuing(Box<Retry>),
    /// A certificate is in place and its renewal is scheduled.
    Ready(CertificateSummary),
    /// A certificate is in place, but the latest attempts to replace it failed.
    Failing(CertificateSummary, Box<Retry>),
}

/// What the failed attempts since the last success left.
#[derive(Default)]
pub(super) struct Retry {
    pub failures: u32,
    pub last_error: Option<String>,
    /// The key of a request still with the issuer after an attempt gave up waiting.
    /// Boxed: it holds a whole request spec, and almost no volume has one.
    pub pending_key: Option<Box<PendingKey>>,
}

/// A key whose request is still with the issuer after an attempt gave up waiting. The next
/// attempt for the volume presents the same CSR, so a remote issuer resumes the pending request
/// instead of getting a new one (upstream #47: request storms on slow issuers).
pub(super) struct PendingKey {
    pub spec: CertRequestSpec,
    pub key: PrivateKey,
    pub csr_pem: String,
    pub since: Instant,
}

/// A pending key unused this long is dropped (its pod is most likely gone without an unpublish).
pub(super) const PENDING_KEY_LIFETIME: Duration = Duration::from_secs(30 * 60);

impl PendingKey {
    pub fn new(spec: &CertRequestSpec, key: PrivateKey, csr_pem: String) -> Box<PendingKey> {
        Box::new(PendingKey {
            spec: spec.clone(),
            key,
            csr_pem,
            since: Instant::now(),
        })
    }

    /// Usable for an attempt with `spec`: made for the same spec, and not too old.
    fn fits(&self, spec: &CertRequestSpec) -> bool {
        self.spec == *spec && self.since.elapsed() < PENDING_KEY_LIFETIME
    }
}

impl ManagedVolume {
    pub fn id(&self) -> &str {
        &self.record.volume_id
    }

    pub fn target(&self) -> &Path {
        &self.record.target_path
    }

    /// Where the file set is written.
    pub fn files_dir(&self) -> PathBuf {
        self.layout.files_dir(self.target())
    }

    /// Its pod (made from the compact form each time: for log lines and Events, not hot).
    pub fn pod(&self) -> PodInfo {
        self.pod.to_pod_info()
    }

    /// The parsed attributes while they are loaded: while the volume is published, issued or
    /// retried. `None` for a resting volume and one whose attributes are rejected.
    pub fn valid_attributes(&self) -> Option<&VolumeAttributes> {
        match &self.attributes {
            Attributes::Loaded(attributes) => Some(attributes),
            Attributes::Resting | Attributes::Rejected { .. } => None,
        }
    }

    /// The names of its certificate, key and CA files.
    pub fn file_names(&self) -> FileNames {
        self.unusual_file_names
            .as_deref()
            .cloned()
            .unwrap_or_else(FileNames::usual)
    }

    /// Whether this driver accepts its attributes (loaded or resting): it is renewed.
    pub fn is_valid(&self) -> bool {
        !matches!(self.attributes, Attributes::Rejected { .. })
    }

    /// Lets the parsed attributes go once the volume is idle: its certificate in place, nothing
    /// pending (no failure to retry, no wait on its pod, no key kept for the issuer).
    pub fn rest(&mut self) {
        if matches!(self.attributes, Attributes::Loaded(_))
            && matches!(self.phase, Phase::Ready(_))
            && self.gate_wait.is_none()
        {
            self.attributes = Attributes::Resting;
        }
    }

    pub fn certificate(&self) -> Option<&CertificateSummary> {
        match &self.phase {
            Phase::Issuing(_) => None,
            Phase::Ready(certificate) | Phase::Failing(certificate, _) => Some(certificate),
        }
    }

    fn retry(&self) -> Option<&Retry> {
        match &self.phase {
            Phase::Issuing(retry) | Phase::Failing(_, retry) => Some(retry),
            Phase::Ready(_) => None,
        }
    }

    pub fn failures(&self) -> u32 {
        self.retry().map_or(0, |retry| retry.failures)
    }

    /// The last failure's message; for a volume with rejected attributes, why it is not renewed.
    pub fn last_error(&self) -> Option<String> {
        match &self.attributes {
            Attributes::Rejected { problems } => Some(format!(
                "not renewed: this driver rejects its attributes ({problems}); its files are \
                 kept as they are until the pod goes"
            )),
            Attributes::Loaded(_) | Attributes::Resting => {
                self.retry().and_then(|retry| retry.last_error.clone())
            }
        }
    }

    /// The pending key kept from an attempt that gave up waiting, if it fits `spec`.
    pub fn take_pending_key(&mut self, spec: &CertRequestSpec) -> Option<Box<PendingKey>> {
        let retry = match &mut self.phase {
            Phase::Issuing(retry) | Phase::Failing(_, retry) => retry,
            Phase::Ready(_) => return None,
        };
        retry
            .pending_key
            .take()
            .filter(|pending| pending.fits(spec))
    }

    /// The pending key, whatever it was made for (to park it when the volume is dropped).
    pub fn take_any_pending_key(&mut self) -> Option<Box<PendingKey>> {
        match &mut self.phase {
            Phase::Issuing(retry) | Phase::Failing(_, retry) => retry.pending_key.take(),
            Phase::Ready(_) => None,
        }
    }

    pub fn has_pending_key(&self) -> bool {
        self.retry()
            .is_some_and(|retry| retry.pending_key.is_some())
    }
}

/// Keys kept for volumes whose first publish gave up waiting on the issuer. Such a volume is not
/// managed — nothing is mounted or recorded for it — but kubelet retries the publish with the
/// same volume ID, and the retry takes the key up again (memory only; never on disk).
#[derive(Default)]
pub(super) struct ParkedKeys(Mutex<HashMap<String, Box<PendingKey>>>);

impl ParkedKeys {
    fn keys(&self) -> MutexGuard<'_, HashMap<String, Box<PendingKey>>> {
        self.0.lock()
    }

    pub fn park(&self, volume_id: &str, pending: Box<PendingKey>) {
        let mut keys = self.keys();
        keys.retain(|_, kept| kept.since.elapsed() < PENDING_KEY_LIFETIME);
        keys.insert(volume_id.to_string(), pending);
    }

    /// The key parked for this volume, if it fits `spec`; an unfit one is dropped.
    pub fn take(&self, volume_id: &str, spec: &CertRequestSpec) -> Option<Box<PendingKey>> {
        let mut keys = self.keys();
        keys.retain(|_, kept| kept.since.elapsed() < PENDING_KEY_LIFETIME);
        keys.remove(volume_id).filter(|pending| pending.fits(spec))
    }

    /// Drops the key parked for a volume that is gone.
    pub fn forget(&self, volume_id: &str) {
        self.keys().remove(volume_id);
    }

    pub fn contains(&self, volume_id: &str) -> bool {
        self.keys().contains_key(volume_id)
    }
}

/// `names` unless they are the usual ones (see [`ManagedVolume::unusual_file_names`]).
pub(super) fn unusual(names: &FileNames) -> Option<Box<FileNames>> {
    (*names != FileNames::usual()).then(|| Box::new(names.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{SamplePod, sample_volume_context};

    fn spec() -> CertRequestSpec {
        let context = sample_volume_context(
            &SamplePod::new("pod"),
            &[("csi.cert-manager.io/key-algorithm", "ECDSA")],
        );
        crate::attributes::parse_volume_context(&context)
            .unwrap()
            .spec
    }

    fn pending(spec: &CertRequestSpec) -> Box<PendingKey> {
        let key = crate::keys::generate(&spec.key).unwrap();
        PendingKey::new(spec, key, "csr".into())
    }

    /// The compact pod names give back exactly the pod they were made from.
    #[test]
    fn pod_names_keep_every_field() {
        for pod in [
            PodInfo {
                name: "web-0".into(),
                namespace: "shop".into(),
                uid: "5f1c-…".into(),
                service_account: Some("default".into()),
            },
            PodInfo {
                name: String::new(),
                namespace: "ns".into(),
                uid: String::new(),
                service_account: None,
            },
            PodInfo {
                name: "ä".into(),
                namespace: String::new(),
                uid: "u".into(),
                service_account: Some(String::new()),
            },
        ] {
            assert_eq!(PodNames::new(&pod).to_pod_info(), pod);
        }
    }

    /// A pending key is used for 30 minutes after it was made, and dropped from then on.
    #[tokio::test(start_paused = true)]
    async fn a_pending_key_lives_thirty_minutes() {
        let spec = spec();
        let key = pending(&spec);
        tokio::time::advance(Duration::from_secs(30 * 60) - Duration::from_millis(1)).await;
        assert!(key.fits(&spec), "just before 30 minutes");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!key.fits(&spec), "at 30 minutes");
    }

    /// A parked key is taken up by a retry within 30 minutes; after that it is gone, and parking
    /// another volume's key prunes it too.
    #[tokio::test(start_paused = true)]
    async fn a_parked_key_is_dropped_after_thirty_minutes() {
        let spec = spec();
        let parked = ParkedKeys::default();
        parked.park("csi-1", pending(&spec));
        tokio::time::advance(Duration::from_secs(30 * 60) - Duration::from_millis(1)).await;
        let taken = parked.take("csi-1", &spec);
        assert!(taken.is_some(), "just before 30 minutes");

        // Parked again with the time it was made: the lifetime does not restart.
        parked.park("csi-1", taken.unwrap());
        tokio::time::advance(Duration::from_millis(1)).await;
        parked.park("csi-2", pending(&spec));
        assert!(!parked.contains("csi-1"), "at 30 minutes");
        assert!(parked.contains("csi-2"));
        assert!(parked.take("csi-2", &spec).is_some());
    }
}
