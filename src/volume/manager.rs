//! Publish, unpublish, renew and resume: the operations on volumes, each volume guarded by its own
//! lock so that concurrent calls for one volume queue up instead of racing (upstream #636: a second
//! publish of a volume still being issued reported success on an empty directory).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinHandle;

use super::files::{self, FileToWrite, WriteOutcome};
use super::mount::Mounter;
use super::state::{StateStore, VolumeProgress, VolumeRecord};
use crate::attributes::{
    CertRequestSpec, InvalidAttributes, ParseOptions, VolumeRequest, parse_volume_context_with,
    redacted_context,
};
use crate::certificate::{CertificateSummary, inspect_leaf};
use crate::events::{PodEvent, PodEvents, reason};
use crate::issuer::{IssueRequest, Issuer, IssuerError};
use crate::keys::{self, KeyError, PrivateKey};
use crate::kubernetes::{ServiceAccountToken, token};
use crate::metrics::{self, Metrics};
use crate::renewal::{self, Scheduler};

/// Settings of the volume manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Size cap of each volume's tmpfs.
    pub volume_size_bytes: u64,
    /// How many renewals may run at once.
    pub renewal_concurrency: usize,
    /// How failed renewals are retried.
    pub backoff: renewal::Backoff,
    /// `--continue-on-not-ready`: report a publish as done once the volume is mounted, and
    /// issue in the background (for pods that wait for their files themselves, e.g. with a
    /// readiness gate, or that need to start before a certificate can be issued).
    pub continue_on_not_ready: bool,
    /// Unknown `csi.cert-manager.io/*` attributes are errors, not warnings.
    pub strict_attributes: bool,
    /// Lifetime of certificates whose volume has no `duration` attribute.
    pub default_duration: Duration,
}

/// A `NodePublishVolume` call, decoded.
#[derive(Clone)]
pub struct PublishRequest {
    pub volume_id: String,
    pub target_path: PathBuf,
    pub volume_context: HashMap<String, String>,
    /// kubelet's `volume_mount_group` (the pod's fsGroup).
    pub volume_mount_group: Option<String>,
}

impl std::fmt::Debug for PublishRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishRequest")
            .field("volume_id", &self.volume_id)
            .field("target_path", &self.target_path)
            .field("volume_context", &redacted_context(&self.volume_context))
            .field("volume_mount_group", &self.volume_mount_group)
            .finish()
    }
}

/// Why a volume operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The volume's attributes are invalid.
    #[error(transparent)]
    InvalidAttributes(#[from] InvalidAttributes),
    /// Some other field of the call is invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// The volume is already published somewhere else.
    #[error("volume {volume_id} is already published at {existing}, not at {requested}")]
    TargetConflict {
        volume_id: String,
        existing: String,
        requested: String,
    },
    /// The key or CSR could not be made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The issuer did not sign.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// A file or mount operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The volume is not managed by this driver.
    #[error("volume {0} is not managed by this driver")]
    NotFound(String),
    /// A bug: a task panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
}

impl VolumeError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> VolumeError {
        let context = context.into();
        move |source| VolumeError::Io { context, source }
    }
}

/// A volume the driver manages.
struct ManagedVolume {
    /// Its record, without the volume context: that is on disk, and `request` is what the
    /// driver works from (at 10,000 volumes the raw contexts alone would be ~25 MiB).
    record: VolumeRecord,
    request: VolumeRequest,
    /// The certificate currently in the volume; `None` until one has been written.
    certificate: Option<CertificateSummary>,
    /// The CertificateRequest behind `certificate` (cert-manager backend).
    request_name: Option<String>,
    /// A progress file may exist for it (it failed since its last success, or it was reloaded).
    progress_saved: bool,
    failures: u32,
    last_error: Option<String>,
}

/// What the outside world may know about a managed volume.
#[derive(Debug, Clone)]
pub struct VolumeStatus {
    pub volume_id: String,
    pub target_path: PathBuf,
    pub pod: String,
    pub certificate: Option<CertificateSummary>,
    pub next_renewal: Option<SystemTime>,
    pub failures: u32,
    pub last_error: Option<String>,
}

/// What a publish must do, given what the driver already holds for the volume.
#[derive(Debug, PartialEq, Eq)]
pub enum PublishPlan {
    /// Already published here with its files: report success, touch nothing.
    AlreadyPublished,
    /// Published under another target path.
    Conflict { existing: PathBuf },
    /// Issue a certificate and write it (mounting first if needed).
    Issue,
}

/// Decides what a publish does. Pure.
pub fn plan_publish(
    existing_target: Option<&Path>,
    requested_target: &Path,
    has_certificate_files: bool,
) -> PublishPlan {
    match existing_target {
        Some(existing) if existing != requested_target => PublishPlan::Conflict {
            existing: existing.to_path_buf(),
        },
        Some(_) if has_certificate_files => PublishPlan::AlreadyPublished,
        _ => PublishPlan::Issue,
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<ManagedVolume>>>;

/// A key whose request is still with the issuer after an attempt gave up waiting. The next
/// attempt for the volume presents the same CSR, so a remote issuer resumes the pending request
/// instead of getting a new one (upstream #47: request storms on slow issuers).
struct PendingKey {
    spec: CertRequestSpec,
    key: PrivateKey,
    csr_pem: String,
    since: Instant,
}

/// A pending key unused this long is dropped (its pod is most likely gone without an unpublish).
const PENDING_KEY_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Whether an issuance is a volume's first or a renewal, for logs and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Issue,
    Renew,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Issue => "Issue",
            Action::Renew => "Renew",
        }
    }
}

/// Owns every volume on the node.
pub struct VolumeManager {
    config: ManagerConfig,
    issuer: Arc<dyn Issuer>,
    mounter: Arc<dyn Mounter>,
    store: StateStore,
    events: Arc<dyn PodEvents>,
    metrics: Arc<Metrics>,
    scheduler: Scheduler,
    slots: Mutex<HashMap<String, Slot>>,
    /// See [`PendingKey`]; by volume ID. Memory only: a key never touches disk.
    pending_keys: Mutex<HashMap<String, PendingKey>>,
    /// The pods' service-account tokens (`--use-token-request`), by volume ID, refreshed by
    /// every (re)publish. Memory only.
    tokens: Mutex<HashMap<String, ServiceAccountToken>>,
    /// Bounds the node-side work (key, CSR, mount, file writes) to one task per core. Under a
    /// burst, volumes then finish in arrival order instead of all advancing together and all
    /// finishing late; waiting on the issuer is outside it.
    node_work: tokio::sync::Semaphore,
}

/// Destroys a freshly published volume when dropped while armed; disarmed once the publish
/// succeeds.
struct FailedPublishCleanup<'a> {
    manager: &'a VolumeManager,
    volume_id: &'a str,
    target: &'a Path,
    armed: bool,
}

impl Drop for FailedPublishCleanup<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.manager.destroy(self.volume_id, self.target, true);
        }
    }
}

/// Counts from [`VolumeManager::resume`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResumeSummary {
    /// Volumes whose mount still exists and that are managed again.
    pub resumed: usize,
    /// Records whose mount vanished while the driver was down; removed.
    pub cleaned_up: usize,
    /// Records that could not be read or parsed.
    pub failed: usize,
}

impl VolumeManager {
    pub fn new(
        config: ManagerConfig,
        issuer: Arc<dyn Issuer>,
        mounter: Arc<dyn Mounter>,
        store: StateStore,
        events: Arc<dyn PodEvents>,
        metrics: Arc<Metrics>,
    ) -> Arc<VolumeManager> {
        Arc::new(VolumeManager {
            config,
            issuer,
            mounter,
            store,
            events,
            metrics,
            scheduler: Scheduler::new(),
            slots: Mutex::new(HashMap::new()),
            pending_keys: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            node_work: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |cores| cores.get()),
            ),
        })
    }

    pub fn issuer_backend(&self) -> &'static str {
        self.issuer.backend_name()
    }

    /// Whether the issuer backend can issue now (for `/readyz`).
    pub async fn issuer_readiness(&self) -> Result<(), String> {
        self.issuer.readiness().await
    }

    /// CertificateRequests the issuer backend knows of (for metrics).
    pub fn issuer_managed_requests(&self) -> usize {
        self.issuer.managed_requests()
    }

    pub fn mounter_kind(&self) -> &'static str {
        self.mounter.kind()
    }

    fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            strict: self.config.strict_attributes,
            default_duration: self.config.default_duration,
        }
    }

    async fn node_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, VolumeError> {
        self.node_work
            .acquire()
            .await
            .map_err(|e| VolumeError::Internal(e.to_string()))
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn slot(&self, volume_id: &str) -> Slot {
        self.slots()
            .entry(volume_id.to_string())
            .or_default()
            .clone()
    }

    fn existing_slot(&self, volume_id: &str) -> Option<Slot> {
        self.slots().get(volume_id).cloned()
    }

    /// Drops an empty slot nobody else is waiting on.
    fn release_slot_if_idle(&self, volume_id: &str) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get(volume_id)
            && Arc::strong_count(slot) == 1
            && slot.try_lock().is_ok_and(|volume| volume.is_none())
        {
            slots.remove(volume_id);
        }
    }

    /// Number of volumes currently managed.
    pub fn volume_count(&self) -> usize {
        self.slots().len()
    }

    /// Publishes a volume: validates, then issues and writes its certificate into a tmpfs at the
    /// target path. Idempotent. The work runs in its own task, so a caller that gives up (kubelet's
    /// deadline) never leaves a half-published volume behind.
    pub async fn publish(self: &Arc<Self>, request: PublishRequest) -> Result<(), VolumeError> {
        if request.volume_id.is_empty() {
            return Err(VolumeError::InvalidArgument("volume_id is required".into()));
        }
        if !request.target_path.is_absolute() {
            return Err(VolumeError::InvalidArgument(format!(
                "target_path {:?} must be an absolute path",
                request.target_path
            )));
        }
        let parsed = parse_volume_context_with(&request.volume_context, self.parse_options())?;
        parse_group(request.volume_mount_group.as_deref())?;
        if self.issuer.needs_pod_token() {
            match token::from_volume_context(&request.volume_context) {
                // A republish (kubelet's `requiresRepublish`) comes here with a fresh token.
                Ok(token) => {
                    lock(&self.tokens).insert(request.volume_id.clone(), token);
                }
                // A republish must not fail in a way that makes kubelet unmount a working volume
                // (kubernetes #121271): keep the previous token and carry on.
                Err(error) if self.existing_slot(&request.volume_id).is_some() => {
                    tracing::warn!(
                        volume_id = %request.volume_id,
                        pod = %pod_label(&parsed),
                        %error,
                        "republish without a usable token; keeping the previous one"
                    );
                }
                Err(error) => return Err(VolumeError::InvalidArgument(error.to_string())),
            }
        }
        for warning in &parsed.warnings {
            tracing::warn!(
                volume_id = %request.volume_id,
                pod = %pod_label(&parsed),
                "{warning}"
            );
        }
        if !parsed.unknown_keys.is_empty() {
            self.events.record(
                &parsed.pod,
                PodEvent::warning(
                    reason::UNKNOWN_ATTRIBUTE,
                    Action::Issue.as_str(),
                    format!(
                        "volume {}: {}",
                        request.volume_id,
                        parsed.warnings.join("; ")
                    ),
                ),
            );
        }
        let this = Arc::clone(self);
        let (mounted, on_mounted) = tokio::sync::oneshot::channel();
        let mounted = self.config.continue_on_not_ready.then_some(mounted);
        let mut task =
            tokio::spawn(async move { this.publish_locked(request, parsed, mounted).await });
        let joined = tokio::select! {
            joined = &mut task => joined,
            // `--continue-on-not-ready`: mounted is enough; the task finishes the issuance.
            Ok(()) = on_mounted => return Ok(()),
        };
        joined.map_err(|e| VolumeError::Internal(e.to_string()))?
    }

    /// `mounted`, when given, is told as soon as the volume is mounted (`--continue-on-not-ready`).
    async fn publish_locked(
        &self,
        request: PublishRequest,
        parsed: VolumeRequest,
        mut mounted: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), VolumeError> {
        let reports_on_mount = mounted.is_some();
        let volume_id = request.volume_id.clone();
        let slot = self.slot(&volume_id);
        let mut guard = slot.lock().await;
        let existing_target = guard.as_ref().map(|v| v.record.target_path.clone());
        let has_files = guard.as_ref().is_some_and(|v| v.certificate.is_some())
            && self
                .mounter
                .is_mounted(&request.target_path)
                .unwrap_or(false);
        match plan_publish(existing_target.as_deref(), &request.target_path, has_files) {
            PublishPlan::AlreadyPublished => {
                tracing::debug!(%volume_id, "already published");
                return Ok(());
            }
            PublishPlan::Conflict { existing } => {
                return Err(VolumeError::TargetConflict {
                    volume_id,
                    existing: existing.display().to_string(),
                    requested: request.target_path.display().to_string(),
                });
            }
            PublishPlan::Issue => {}
        }

        let record = VolumeRecord::new(
            &volume_id,
            &request.target_path,
            &request.volume_context,
            request.volume_mount_group.clone(),
        );
        let was_managed = guard.is_some();
        // Known from before a restart: its record is on disk already.
        let to_save = (!was_managed).then_some(&record);
        let mut volume = match guard.take() {
            Some(volume) => volume,
            None => ManagedVolume {
                record: record.without_context(),
                // Warnings were logged and reported above; they need no memory from now on.
                request: VolumeRequest {
                    warnings: Vec::new(),
                    unknown_keys: Vec::new(),
                    ..parsed
                },
                certificate: None,
                request_name: None,
                progress_saved: false,
                failures: 0,
                last_error: None,
            },
        };
        // A fresh volume that fails, even by a panic, is taken down again: no mount, directory or
        // record is left for a volume kubelet never heard succeed.
        let mut cleanup = FailedPublishCleanup {
            manager: self,
            volume_id: &volume_id,
            target: &request.target_path,
            armed: !was_managed,
        };
        let result = self
            .first_issuance(&mut volume, to_save, &mut mounted)
            .await;
        // kubelet was already told the volume is published: it stays, and issuance is retried.
        let reported = reports_on_mount && mounted.is_none();
        match result {
            Ok(()) => {
                cleanup.armed = false;
                *guard = Some(volume);
                Ok(())
            }
            Err(error) if reported => {
                cleanup.armed = false;
                volume.failures += 1;
                volume.last_error = Some(error.to_string());
                let retry_in = self.config.backoff.delay(volume.failures);
                tracing::warn!(
                    %volume_id,
                    pod = %pod_label(&volume.request),
                    %error,
                    retry_in = ?retry_in,
                    "issuance failed on a volume already reported as published (--continue-on-not-ready); retrying"
                );
                self.scheduler
                    .schedule(&volume_id, tokio::time::Instant::now() + retry_in);
                self.save_progress(&mut volume);
                *guard = Some(volume);
                Err(error)
            }
            Err(error) => {
                if was_managed {
                    // Known from before a restart: keep managing it, kubelet will retry.
                    volume.last_error = Some(error.to_string());
                    self.save_progress(&mut volume);
                    *guard = Some(volume);
                } else {
                    drop(cleanup);
                    drop(guard);
                    drop(slot);
                    self.release_slot_if_idle(&volume_id);
                }
                Err(error)
            }
        }
    }

    /// Saves the record (when given), mounts, issues, writes, schedules.
    async fn first_issuance(
        &self,
        volume: &mut ManagedVolume,
        record: Option<&VolumeRecord>,
        mounted: &mut Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), VolumeError> {
        let target = volume.record.target_path.clone();
        let permit = self.node_permit().await?;
        if let Some(record) = record {
            self.store
                .save(record)
                .map_err(VolumeError::io("saving volume state"))?;
        }
        match std::fs::create_dir(&target) {
            Err(error) if error.kind() != io::ErrorKind::AlreadyExists => {
                return Err(VolumeError::Io {
                    context: format!("creating target path {}", target.display()),
                    source: error,
                });
            }
            _ => {}
        }
        if !self
            .mounter
            .is_mounted(&target)
            .map_err(VolumeError::io("checking the target mount"))?
        {
            self.mounter
                .mount_tmpfs(&target, self.config.volume_size_bytes)
                .map_err(VolumeError::io(format!(
                    "mounting tmpfs at {}",
                    target.display()
                )))?;
        }
        if let Some(mounted) = mounted.take() {
            let _ = mounted.send(());
        }
        let certificate = match self.issue_and_write(volume, permit).await {
            Ok((certificate, request_name)) => {
                volume.request_name = request_name;
                certificate
            }
            Err(error) => {
                self.report_failure(volume, Action::Issue, &error);
                return Err(error);
            }
        };
        self.report_success(volume, Action::Issue, &certificate);
        tracing::info!(
            volume_id = %volume.record.volume_id,
            pod = %pod_label(&volume.request),
            issuer = %volume.request.spec.issuer.name,
            serial = %certificate.serial,
            "certificate issued and mounted"
        );
        self.schedule_renewal(&volume.record.volume_id, &volume.request, &certificate);
        volume.certificate = Some(certificate);
        volume.failures = 0;
        volume.last_error = None;
        self.clear_progress(volume);
        Ok(())
    }

    /// Makes a key and CSR, gets it signed, and swaps the files in. The old files stay until the
    /// complete new set is written. `permit` is a node-work permit the caller already holds; it is
    /// let go while waiting on a remote issuer (and not taken again once it answers), and kept
    /// through a local one, whose signing is node work itself (keeping it lets a burst of volumes
    /// finish in arrival order).
    async fn issue_and_write(
        &self,
        volume: &ManagedVolume,
        permit: tokio::sync::SemaphorePermit<'_>,
    ) -> Result<(CertificateSummary, Option<String>), VolumeError> {
        let spec = &volume.request.spec;
        let target = &volume.record.target_path;
        let volume_id = &volume.record.volume_id;
        let (key, csr_pem, resuming) = match self.take_pending_key(volume_id, spec) {
            Some(pending) => (pending.key, pending.csr_pem, true),
            None => {
                let reused = if spec.reuse_private_key {
                    read_reusable_key(target, &spec.files.private_key, volume_id)
                } else {
                    None
                };
                let (key, csr_pem) = make_key_and_csr(spec, reused).await?;
                (key, csr_pem, false)
            }
        };

        self.metrics.issue_attempted(volume_id);
        let issue_request = IssueRequest {
            volume_id: volume_id.clone(),
            pod: volume.request.pod.clone(),
            issuer: spec.issuer.clone(),
            csr_pem,
            duration: spec.duration,
            is_ca: spec.is_ca,
            usages: spec.usages.clone(),
            annotations: spec.annotations.clone(),
            token: lock(&self.tokens).get(volume_id).cloned(),
            resuming,
        };
        // After a remote issuer answers, what is left (checking and writing a few small files)
        // is too light to queue for a permit behind other volumes' key generation: a volume
        // whose certificate has arrived finishes at once.
        let (outcome, _permit) = if self.issuer.signs_on_this_node() {
            (self.issuer.issue(&issue_request).await, Some(permit))
        } else {
            drop(permit);
            (self.issuer.issue(&issue_request).await, None)
        };
        let issued = match outcome {
            Ok(issued) => issued,
            Err(error) => {
                if matches!(
                    error,
                    IssuerError::TimedOut(_) | IssuerError::Unavailable(_)
                ) {
                    self.keep_pending_key(volume_id, spec, key, issue_request.csr_pem);
                }
                return Err(error.into());
            }
        };
        let certificate = inspect_leaf(&issued.chain_pem)
            .map(|info| CertificateSummary::from(&info))
            .map_err(|e| {
                IssuerError::Rejected(format!("issuer returned an unreadable certificate: {e}"))
            })?;

        let key_pem = key.to_pem(spec.key.encoding)?;
        let group = effective_group(spec.fs_group, volume.record.volume_mount_group.as_deref());
        let keystore = match &spec.pkcs12 {
            Some(keystore) => Some(keys::pkcs12::build_keystore(
                &key,
                &issued.chain_pem,
                &issued.ca_pem,
                &keystore.password.0,
                keystore.profile,
            )?),
            None => None,
        };
        let mut file_set = vec![
            FileToWrite {
                name: &spec.files.private_key,
                contents: key_pem.as_bytes(),
                secret: true,
            },
            FileToWrite {
                name: &spec.files.certificate,
                contents: issued.chain_pem.as_bytes(),
                secret: false,
            },
            FileToWrite {
                name: &spec.files.ca,
                contents: issued.ca_pem.as_bytes(),
                secret: false,
            },
        ];
        if let (Some(spec), Some(bytes)) = (&spec.pkcs12, &keystore) {
            file_set.push(FileToWrite {
                name: &spec.file_name,
                contents: bytes,
                secret: true,
            });
        }
        // Key material goes to the volume's tmpfs or nowhere: if the mount vanished (unmounted
        // behind the driver's back), writing would put the key on the node's disk.
        if !self
            .mounter
            .is_mounted(target)
            .map_err(VolumeError::io("checking the target mount"))?
        {
            return Err(VolumeError::Io {
                context: format!(
                    "{} is no longer mounted; not writing key material",
                    target.display()
                ),
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        }
        let outcome = files::write_file_set(target, &file_set, group).map_err(VolumeError::io(
            format!("writing files into {}", target.display()),
        ))?;
        if outcome == WriteOutcome::Unchanged {
            tracing::debug!(volume_id = %volume.record.volume_id, "files unchanged");
        }
        self.record_request_metrics(volume, issued.request_name.clone(), &certificate);
        Ok((certificate, issued.request_name))
    }

    /// A healthy volume needs no progress file (`status` computes its next renewal from the
    /// certificate), so the publish path writes nothing extra; only a volume that failed has one,
    /// removed again by its next success.
    fn clear_progress(&self, volume: &mut ManagedVolume) {
        if std::mem::take(&mut volume.progress_saved) {
            self.store.remove_progress(&volume.record.volume_id);
        }
    }

    /// Saves how a failing volume is doing, for the `status` command; failing to is only logged.
    fn save_progress(&self, volume: &mut ManagedVolume) {
        volume.progress_saved = true;
        let unix = |at: SystemTime| {
            at.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs())
        };
        let next_renewal = self.scheduler.deadline(&volume.record.volume_id).map(|at| {
            unix(SystemTime::now() + at.saturating_duration_since(tokio::time::Instant::now()))
        });
        let progress = VolumeProgress {
            volume_id: volume.record.volume_id.clone(),
            request_name: volume.request_name.clone(),
            next_renewal,
            failures: volume.failures,
            last_error: volume.last_error.clone(),
            updated: unix(SystemTime::now()),
        };
        if let Err(error) = self.store.save_progress(&progress) {
            tracing::debug!(
                volume_id = %volume.record.volume_id,
                pod = %pod_label(&volume.request),
                %error,
                "could not save volume progress"
            );
        }
    }

    fn schedule_renewal(
        &self,
        volume_id: &str,
        request: &VolumeRequest,
        cert: &CertificateSummary,
    ) {
        let at = renewal::renewal_time(cert.not_before, cert.not_after, request.spec.renew_before);
        let at = renewal::with_jitter(at, cert.lifetime());
        // Never sooner than a moment from now: an issuer that hands out certificates already due
        // (or expired) must not make this volume renew in a tight loop.
        let at = at.max(SystemTime::now() + renewal::MINIMUM_INTERVAL);
        self.scheduler.schedule(volume_id, renewal::instant_at(at));
        self.metrics.set_renewal_time(volume_id, at);
    }

    fn record_request_metrics(
        &self,
        volume: &ManagedVolume,
        request_name: Option<String>,
        certificate: &CertificateSummary,
    ) {
        let issuer = &volume.request.spec.issuer;
        self.metrics.set_request(
            &volume.record.volume_id,
            metrics::RequestState {
                name: request_name.unwrap_or_else(|| volume.record.volume_id.clone()),
                namespace: volume.request.pod.namespace.clone(),
                issuer_name: issuer.name.clone(),
                issuer_kind: issuer.kind.clone(),
                issuer_group: issuer.group.clone(),
                ready: "True",
                not_after: Some(certificate.not_after),
                renewal_at: None,
            },
        );
    }

    /// Renews one volume's certificate. On failure the current files stay and a retry is
    /// scheduled with backoff.
    pub async fn renew(&self, volume_id: &str) {
        let Some(slot) = self.existing_slot(volume_id) else {
            return;
        };
        self.renew_slot(volume_id, &slot).await;
        drop(slot);
        self.release_slot_if_idle(volume_id);
    }

    async fn renew_slot(&self, volume_id: &str, slot: &Slot) {
        let mut guard = slot.lock().await;
        let Some(volume) = guard.as_mut() else {
            return;
        };
        // A volume without a certificate yet (a publish cut short by a restart, or one reported
        // early with --continue-on-not-ready) is still on its first issuance.
        let action = if volume.certificate.is_some() {
            Action::Renew
        } else {
            Action::Issue
        };
        tracing::info!(
            %volume_id,
            pod = %pod_label(&volume.request),
            "{}",
            match action {
                Action::Renew => "renewing certificate",
                Action::Issue => "retrying the first issuance",
            }
        );
        let permit = match self.node_permit().await {
            Ok(permit) => permit,
            Err(_) => return,
        };
        match self.issue_and_write(volume, permit).await {
            Ok((certificate, request_name)) => {
                volume.request_name = request_name;
                if action == Action::Renew {
                    self.metrics.renewal_finished(true);
                }
                self.report_success(volume, action, &certificate);
                tracing::info!(
                    %volume_id,
                    pod = %pod_label(&volume.request),
                    serial = %certificate.serial,
                    "{}",
                    match action {
                        Action::Renew => "certificate renewed",
                        Action::Issue => "certificate issued and mounted",
                    }
                );
                self.schedule_renewal(volume_id, &volume.request, &certificate);
                volume.certificate = Some(certificate);
                volume.failures = 0;
                volume.last_error = None;
                self.clear_progress(volume);
            }
            Err(error) => {
                volume.failures += 1;
                volume.last_error = Some(error.to_string());
                let retry_in = self.config.backoff.delay(volume.failures);
                let time_left = volume
                    .certificate
                    .as_ref()
                    .and_then(|c| c.not_after.duration_since(SystemTime::now()).ok());
                tracing::warn!(
                    %volume_id,
                    pod = %pod_label(&volume.request),
                    failures = volume.failures,
                    retry_in = ?retry_in,
                    expires_in = ?time_left,
                    %error,
                    "renewal failed; keeping the current certificate"
                );
                self.report_failure(volume, action, &error);
                self.scheduler
                    .schedule(volume_id, tokio::time::Instant::now() + retry_in);
                self.save_progress(volume);
            }
        }
    }

    /// Serves the renewal queue: one task for all volumes, at most `renewal_concurrency`
    /// renewals at once.
    pub fn spawn_renewal_loop(self: &Arc<Self>) -> JoinHandle<()> {
        let this = Arc::clone(self);
        let permits = Arc::new(tokio::sync::Semaphore::new(
            self.config.renewal_concurrency.max(1),
        ));
        tokio::spawn(async move {
            loop {
                let volume_id = this.scheduler.next_due().await;
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    return;
                };
                let worker = Arc::clone(&this);
                tokio::spawn(async move {
                    worker.renew(&volume_id).await;
                    drop(permit);
                });
            }
        })
    }

    /// The key kept from an attempt that gave up waiting, if it was made for this same spec.
    fn take_pending_key(&self, volume_id: &str, spec: &CertRequestSpec) -> Option<PendingKey> {
        let mut pending_keys = lock(&self.pending_keys);
        pending_keys.retain(|_, kept| kept.since.elapsed() < PENDING_KEY_LIFETIME);
        let pending = pending_keys.remove(volume_id)?;
        (pending.spec == *spec).then_some(pending)
    }

    fn keep_pending_key(
        &self,
        volume_id: &str,
        spec: &CertRequestSpec,
        key: PrivateKey,
        csr_pem: String,
    ) {
        let mut pending = lock(&self.pending_keys);
        pending.retain(|_, kept| kept.since.elapsed() < PENDING_KEY_LIFETIME);
        pending.insert(
            volume_id.to_string(),
            PendingKey {
                spec: spec.clone(),
                key,
                csr_pem,
                since: Instant::now(),
            },
        );
    }

    /// Whether a pending key is held for the volume (for tests and status).
    pub fn has_pending_key(&self, volume_id: &str) -> bool {
        lock(&self.pending_keys).contains_key(volume_id)
    }

    fn report_success(
        &self,
        volume: &ManagedVolume,
        action: Action,
        certificate: &CertificateSummary,
    ) {
        let issuer = &volume.request.spec.issuer;
        let (reason, verb) = match action {
            Action::Issue => (reason::ISSUED, "issued"),
            Action::Renew => (reason::RENEWED, "renewed"),
        };
        self.events.record(
            &volume.request.pod,
            PodEvent::normal(
                reason,
                action.as_str(),
                format!(
                    "certificate for volume {} {verb} by {} {} (serial {}, valid until {})",
                    volume.record.volume_id,
                    issuer.kind,
                    issuer.name,
                    certificate.serial,
                    rfc3339(certificate.not_after)
                ),
            ),
        );
    }

    fn report_failure(&self, volume: &ManagedVolume, action: Action, error: &VolumeError) {
        self.metrics.issue_failed(&volume.record.volume_id);
        let issuer = &volume.request.spec.issuer;
        self.metrics.mark_request_failing(
            &volume.record.volume_id,
            metrics::RequestState {
                name: volume
                    .request_name
                    .clone()
                    .unwrap_or_else(|| volume.record.volume_id.clone()),
                namespace: volume.request.pod.namespace.clone(),
                issuer_name: issuer.name.clone(),
                issuer_kind: issuer.kind.clone(),
                issuer_group: issuer.group.clone(),
                ready: "False",
                not_after: volume.certificate.as_ref().map(|c| c.not_after),
                renewal_at: None,
            },
        );
        if action == Action::Renew {
            self.metrics.renewal_finished(false);
        }
        let reason = match error {
            VolumeError::Issuer(IssuerError::Denied(_)) => reason::DENIED,
            VolumeError::Issuer(IssuerError::Failed(_)) => reason::FAILED,
            VolumeError::Issuer(IssuerError::TimedOut(_)) => reason::TIMED_OUT,
            VolumeError::Issuer(IssuerError::Unavailable(_)) => reason::ISSUER_UNAVAILABLE,
            _ if action == Action::Renew => reason::RENEWAL_FAILED,
            // Other first-publish failures reach the pod through kubelet's own FailedMount event.
            _ => return,
        };
        let mut message = format!("volume {}: {error}", volume.record.volume_id);
        if action == Action::Renew
            && let Some(certificate) = &volume.certificate
        {
            let left = certificate
                .not_after
                .duration_since(SystemTime::now())
                .map(|left| format!("expires in {}", human_duration(left)))
                .unwrap_or_else(|_| "has EXPIRED".to_string());
            message.push_str(&format!(
                "; the current certificate stays in place and {left} (at {}); retrying with backoff",
                rfc3339(certificate.not_after)
            ));
        }
        self.events.record(
            &volume.request.pod,
            PodEvent::warning(reason, action.as_str(), message),
        );
    }

    /// Unpublishes: stops renewal, unmounts, deletes the files, the target directory and the
    /// record. A target that does not exist is success.
    pub async fn unpublish(&self, volume_id: &str, target: &Path) -> Result<(), VolumeError> {
        if volume_id.is_empty() {
            return Err(VolumeError::InvalidArgument("volume_id is required".into()));
        }
        if !target.is_absolute() {
            return Err(VolumeError::InvalidArgument(format!(
                "target_path {target:?} must be an absolute path"
            )));
        }
        let slot = self.existing_slot(volume_id);
        let mut guard = match &slot {
            Some(slot) => Some(slot.lock().await),
            None => None,
        };
        let published_at = guard
            .as_ref()
            .and_then(|g| g.as_ref().map(|v| v.record.target_path.clone()));
        if let Some(existing) = &published_at
            && existing != target
        {
            return Err(VolumeError::NotFound(format!(
                "{volume_id} at {} (it is published at {})",
                target.display(),
                existing.display()
            )));
        }
        let result = self.destroy_checked(volume_id, target, published_at.is_some());
        // Only a volume that is really gone stops being managed: if the unmount failed, it keeps
        // its renewals and kubelet's retry tries again.
        if result.is_ok() {
            self.scheduler.cancel(volume_id);
            lock(&self.pending_keys).remove(volume_id);
            lock(&self.tokens).remove(volume_id);
            self.metrics.forget_volume(volume_id);
            if let Some(guard) = guard.as_mut() {
                **guard = None;
            }
        }
        drop(guard);
        drop(slot);
        self.release_slot_if_idle(volume_id);
        if result.is_ok() {
            tracing::info!(%volume_id, target = %target.display(), "volume unpublished");
        }
        result
    }

    fn destroy_checked(
        &self,
        volume_id: &str,
        target: &Path,
        known: bool,
    ) -> Result<(), VolumeError> {
        let ours = known
            || self
                .mounter
                .holds_volume(target)
                .map_err(VolumeError::io("checking the target mount"))?;
        if ours
            && self
                .mounter
                .is_mounted(target)
                .map_err(VolumeError::io("checking the target mount"))?
        {
            self.mounter
                .unmount(target)
                .map_err(VolumeError::io(format!("unmounting {}", target.display())))?;
        }
        if ours && target.exists() {
            files::clear(target)
                .map_err(VolumeError::io(format!("clearing {}", target.display())))?;
        }
        match std::fs::remove_dir(target) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(VolumeError::Io {
                    context: format!("removing target path {}", target.display()),
                    source: error,
                });
            }
        }
        self.store
            .remove(volume_id)
            .map_err(VolumeError::io("removing volume state"))
    }

    /// Best-effort cleanup after a failed first publish.
    fn destroy(&self, volume_id: &str, target: &Path, known: bool) {
        self.scheduler.cancel(volume_id);
        // kubelet sends a fresh token with its retry; none is kept for a volume that is gone.
        lock(&self.tokens).remove(volume_id);
        // kubelet does not unpublish a volume whose publish failed, and each new pod brings a new
        // volume ID: keeping its series would grow them without bound. The failure stays visible
        // in the gRPC call counts and the pod's Events.
        self.metrics.forget_volume(volume_id);
        if let Err(error) = self.destroy_checked(volume_id, target, known) {
            tracing::warn!(%volume_id, %error, "cleanup after a failed publish was incomplete");
        }
    }

    /// State of one volume, for `NodeGetVolumeStats`, the demo and tests.
    pub async fn status(&self, volume_id: &str) -> Option<VolumeStatus> {
        let status = self.status_of_slot(volume_id).await;
        self.release_slot_if_idle(volume_id);
        status
    }

    async fn status_of_slot(&self, volume_id: &str) -> Option<VolumeStatus> {
        let slot = self.existing_slot(volume_id)?;
        let guard = slot.lock().await;
        let volume = guard.as_ref()?;
        let next_renewal = self.scheduler.deadline(volume_id).map(|at| {
            let from_now = at.saturating_duration_since(tokio::time::Instant::now());
            SystemTime::now() + from_now
        });
        Some(VolumeStatus {
            volume_id: volume_id.to_string(),
            target_path: volume.record.target_path.clone(),
            pod: pod_label(&volume.request),
            certificate: volume.certificate.clone(),
            next_renewal,
            failures: volume.failures,
            last_error: volume.last_error.clone(),
        })
    }

    /// Checks that a volume is mounted and holds its certificate and key. `Ok(None)` means healthy;
    /// `Ok(Some(message))` describes what is wrong.
    pub async fn condition(
        &self,
        volume_id: &str,
        path: &Path,
    ) -> Result<Option<String>, VolumeError> {
        let condition = self.condition_of_slot(volume_id, path).await;
        self.release_slot_if_idle(volume_id);
        condition
    }

    async fn condition_of_slot(
        &self,
        volume_id: &str,
        path: &Path,
    ) -> Result<Option<String>, VolumeError> {
        let slot = self
            .existing_slot(volume_id)
            .ok_or_else(|| VolumeError::NotFound(volume_id.to_string()))?;
        // kubelet polls this; it must not wait behind an issuance that may take minutes with a
        // remote issuer. While one runs, what can be seen without the volume's state is checked.
        let Ok(guard) = slot.try_lock() else {
            if !self.mounter.is_mounted(path).unwrap_or(false) {
                return Ok(Some(format!(
                    "{} is not mounted (issuance in progress)",
                    path.display()
                )));
            }
            if files::current_set(path).is_none() {
                return Ok(Some(
                    "certificate is being issued; no files yet".to_string(),
                ));
            }
            return Ok(None);
        };
        let volume = guard
            .as_ref()
            .ok_or_else(|| VolumeError::NotFound(volume_id.to_string()))?;
        if volume.record.target_path != path {
            return Err(VolumeError::NotFound(format!(
                "{volume_id} at {}",
                path.display()
            )));
        }
        if !self.mounter.is_mounted(path).unwrap_or(false) {
            return Ok(Some(format!("{} is no longer mounted", path.display())));
        }
        let files = &volume.request.spec.files;
        for name in [&files.certificate, &files.private_key, &files.ca] {
            if std::fs::metadata(path.join(name)).is_err() {
                return Ok(Some(format!(
                    "file {name} is missing from {}",
                    path.display()
                )));
            }
        }
        if let Some(certificate) = &volume.certificate
            && certificate.not_after < SystemTime::now()
        {
            return Ok(Some(format!(
                "certificate expired; last renewal error: {}",
                volume.last_error.as_deref().unwrap_or("none")
            )));
        }
        Ok(None)
    }

    /// Reloads every volume recorded under the data root: mounts that still exist are managed
    /// again and their renewals scheduled from the certificate on disk; records whose mount
    /// vanished while the driver was down are removed.
    pub fn resume(&self) -> io::Result<ResumeSummary> {
        let mut summary = ResumeSummary::default();
        for loaded in self.store.records()? {
            let mut record = match loaded {
                Ok(record) => record,
                Err((path, reason)) => {
                    tracing::error!(path = %path.display(), %reason, "removing unreadable volume record");
                    let _ = self.store.remove_path(&path);
                    summary.failed += 1;
                    continue;
                }
            };
            let volume_id = record.volume_id.clone();
            let target = record.target_path.clone();
            if !self.mounter.is_mounted(&target).unwrap_or(false) {
                tracing::info!(%volume_id, target = %target.display(), "mount vanished while the driver was down; cleaning up");
                let _ = std::fs::remove_dir(&target);
                let _ = self.store.remove(&volume_id);
                summary.cleaned_up += 1;
                continue;
            }
            // Moved out: only the parsed request is kept in memory.
            let context: HashMap<String, String> = std::mem::take(&mut record.volume_context)
                .into_iter()
                .collect();
            // Not strict: the volume was accepted once, a flag turned on since must not orphan it.
            let lenient = ParseOptions {
                strict: false,
                ..self.parse_options()
            };
            let request = match parse_volume_context_with(&context, lenient) {
                Ok(request) => request,
                Err(error) => {
                    tracing::error!(%volume_id, %error, "recorded volume no longer validates; leaving its files alone");
                    summary.failed += 1;
                    continue;
                }
            };
            let tidied = files::tidy_after_crash(&target);
            if tidied > 0 {
                tracing::info!(%volume_id, entries = tidied, "removed what an interrupted write left in the volume");
            }
            let certificate = files::read_current(&target, &request.spec.files.certificate)
                .ok()
                .and_then(|bytes| inspect_leaf(&String::from_utf8_lossy(&bytes)).ok())
                .map(|info| CertificateSummary::from(&info));
            let volume = ManagedVolume {
                record,
                request,
                certificate,
                // Not read back at start (10,000 file reads): the metrics name the volume until
                // its next issuance names the request.
                request_name: None,
                // A file from before the restart may exist; the next success removes it.
                progress_saved: true,
                failures: 0,
                last_error: None,
            };
            match &volume.certificate {
                Some(certificate) => {
                    self.record_request_metrics(&volume, volume.request_name.clone(), certificate);
                    self.schedule_renewal(&volume_id, &volume.request, certificate);
                }
                // Mounted but no certificate (killed mid-publish): issue as soon as possible.
                None => self
                    .scheduler
                    .schedule(&volume_id, tokio::time::Instant::now()),
            }
            self.slots()
                .insert(volume_id, Arc::new(tokio::sync::Mutex::new(Some(volume))));
            summary.resumed += 1;
        }
        Ok(summary)
    }
}

/// The key (new, or the reused one) and its CSR. RSA generation takes tens to hundreds of
/// milliseconds, so it runs on the blocking pool; ECDSA and Ed25519 take microseconds, less than
/// the hand-off to another thread would cost, so they run inline.
async fn make_key_and_csr(
    spec: &crate::attributes::CertRequestSpec,
    reused: Option<PrivateKey>,
) -> Result<(PrivateKey, String), VolumeError> {
    let work =
        move |spec: &crate::attributes::CertRequestSpec| -> Result<(PrivateKey, String), KeyError> {
            let key = match reused {
                Some(key) => key,
                None => keys::generate(&spec.key)?,
            };
            let csr = keys::build_csr(spec, &key)?;
            Ok((key, csr))
        };
    if spec.key.algorithm == crate::attributes::KeyAlgorithm::Rsa {
        let spec = spec.clone();
        Ok(tokio::task::spawn_blocking(move || work(&spec))
            .await
            .map_err(|e| VolumeError::Internal(e.to_string()))??)
    } else {
        Ok(work(spec)?)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "?".into())
}

/// `3d4h`, `2h5m`, `4m10s`, `12s`: how long is left, for people.
fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (days, hours, minutes, seconds) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

fn pod_label(request: &VolumeRequest) -> String {
    format!("{}/{}", request.pod.namespace, request.pod.name)
}

/// The group that owns the files: the `fs-group` attribute, else the pod's fsGroup from kubelet.
fn effective_group(fs_group: Option<u32>, volume_mount_group: Option<&str>) -> Option<u32> {
    fs_group.or_else(|| parse_group(volume_mount_group).ok().flatten())
}

fn parse_group(volume_mount_group: Option<&str>) -> Result<Option<u32>, VolumeError> {
    match volume_mount_group.map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => raw.parse::<u32>().map(Some).map_err(|_| {
            VolumeError::InvalidArgument(format!(
                "volume_capability.mount.volume_mount_group={raw:?} is not a numeric group ID"
            ))
        }),
    }
}

/// The key currently in the volume, for reuse-private-key; `None` (with the reason logged) when it
/// cannot be read, so a fresh key is made instead.
fn read_reusable_key(target: &Path, name: &str, volume_id: &str) -> Option<PrivateKey> {
    let bytes = match files::read_current(target, name) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(%volume_id, %error, "cannot read the current key to reuse it; generating a new one");
            return None;
        }
    };
    let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
    match PrivateKey::from_pem(&text) {
        Ok(key) => Some(key),
        Err(error) => {
            tracing::warn!(%volume_id, %error, "current key is unusable; generating a new one");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_plan_follows_what_is_held() {
        let target = Path::new("/pods/a/mount");
        assert_eq!(plan_publish(None, target, false), PublishPlan::Issue);
        assert_eq!(
            plan_publish(Some(target), target, true),
            PublishPlan::AlreadyPublished
        );
        // Known but no files yet (e.g. killed mid-publish): never report success on it.
        assert_eq!(
            plan_publish(Some(target), target, false),
            PublishPlan::Issue
        );
        assert_eq!(
            plan_publish(Some(Path::new("/other")), target, true),
            PublishPlan::Conflict {
                existing: PathBuf::from("/other")
            }
        );
    }

    #[test]
    fn debug_output_redacts_tokens_and_passwords() {
        let request = PublishRequest {
            volume_id: "csi-1".into(),
            target_path: PathBuf::from("/t"),
            volume_context: [
                (
                    "csi.storage.k8s.io/serviceAccount.tokens",
                    "{\"\":{\"token\":\"eyJtoken\"}}",
                ),
                ("csi.cert-manager.io/pkcs12-password", "hunter2"),
                ("csi.cert-manager.io/issuer-name", "ca"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            volume_mount_group: None,
        };
        let printed = format!("{request:?}");
        assert!(
            !printed.contains("eyJtoken") && !printed.contains("hunter2"),
            "{printed}"
        );
        assert!(
            printed.contains("<redacted>") && printed.contains("issuer-name"),
            "{printed}"
        );
    }

    #[test]
    fn group_comes_from_attribute_then_kubelet() {
        assert_eq!(effective_group(Some(2000), Some("3000")), Some(2000));
        assert_eq!(effective_group(None, Some("3000")), Some(3000));
        assert_eq!(effective_group(None, None), None);
        assert!(parse_group(Some("staff")).is_err());
    }
}
