//! The operations on volumes: publish, issue, renew, unpublish, resume (and adopt). Each volume is
//! guarded by its own lock, so concurrent calls for one volume queue up instead of racing
//! (upstream #636: a second publish of a volume still being issued reported success on an empty
//! directory).
//!
//! One file per operation: [`publish`](VolumeManager::publish) in `publish.rs`; the issuance that
//! both the first publish and every renewal run, and `settle`, where its outcome is booked (phase,
//! next renewal or retry, events, metrics, logs), in `issue.rs`; `renew.rs` (the renewal queue);
//! `unpublish.rs`; `resume.rs` (this driver's records after a restart, and the volumes adopted
//! from the Go driver); `report.rs` (events, metrics, progress files); `inspect.rs` (status and
//! volume condition). `volume.rs` is what is held per volume.

mod ca_files;
mod gates;
mod inspect;
mod issue;
mod publish;
mod renew;
mod report;
mod resume;
#[cfg(test)]
mod tests;
mod unpublish;
mod volume;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

pub use self::ca_files::CaRewrite;
pub use self::inspect::VolumeSnapshot;
use self::issue::IssuerKey;
pub use self::publish::{PublishPlan, plan_publish};
pub use self::resume::{AdoptionSummary, ResumeSummary};
use self::volume::{Attributes, Counted, Counters, ManagedVolume, ParkedKeys};
use super::id::VolumeId;
use super::mount::Mounter;
use super::state::StateStore;
use crate::attributes::{
    InvalidAttributes, ParseOptions, PodIpWait, VolumeAttributes, parse_volume_context_with,
    redacted_context,
};
use crate::issuer::{Issuer, IssuerError};
use crate::keys::KeyError;
use crate::keys::pool::{BusyGuard, KeyPool};
use crate::kubernetes::pods::PodWatch;
use crate::metrics::Metrics;
use crate::pod_events::PodEvents;
use crate::pod_gates::{Gate, GateBackoff};
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
    /// The Go driver's data root (`--adopt-csi-lib-data-root`): its volumes are taken over at
    /// start, and an unpublish of one of its volumes that could not be adopted is still carried
    /// out.
    pub csi_lib_root: Option<PathBuf>,
    /// `--publish-in-csi-lib-layout`: new volumes are published in the Go driver's layout under
    /// `csi_lib_root`, so that a rollback to the Go driver takes them over.
    pub publish_in_csi_lib_layout: bool,
    /// `--pod-readiness-gate`: what a volume's pod must satisfy before its certificate is issued,
    /// judged on the node's pod watch. `None` without gates.
    pub readiness: Option<Readiness>,
    /// Pre-generated keys for first issuances (`--key-pool-size`); [`KeyPool::disabled`] for none.
    pub key_pool: Arc<KeyPool>,
    /// How a volume context becomes a request: this driver's attributes, or csi-driver-spiffe's.
    pub requests: RequestMode,
}

/// How volume contexts are read (see [`VolumeManager::parse_context`]).
#[derive(Debug, Clone, Default)]
pub enum RequestMode {
    /// `csi.cert-manager.io/*` attributes (the main driver).
    #[default]
    CsiDriver,
    /// csi-driver-spiffe: the pod's SPIFFE ID, nothing else asked of the volume.
    Spiffe(Arc<crate::spiffe::node::SpiffeRequests>),
}

/// The readiness gates and what they are judged on.
#[derive(Clone)]
pub struct Readiness {
    pub gates: Vec<Gate>,
    /// Bounds the re-check of a pod whose watch event was missed (`--gate-backoff-*`).
    pub backoff: GateBackoff,
    pub pods: Arc<PodWatch>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gates: Vec<String> = self.gates.iter().map(Gate::to_string).collect();
        f.debug_struct("Readiness")
            .field("gates", &gates)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// A `NodePublishVolume` call, decoded.
#[derive(Clone)]
pub struct PublishCall {
    pub volume_id: VolumeId,
    pub target_path: PathBuf,
    pub volume_context: HashMap<String, String>,
    /// kubelet's `volume_mount_group` (the pod's fsGroup).
    pub volume_mount_group: Option<String>,
}

impl std::fmt::Debug for PublishCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishCall")
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
    /// Something this driver did not mount is mounted at the target.
    #[error("{target} already holds {what}, which this driver did not mount; not touching it")]
    TargetInUse { target: String, what: String },
    /// The volume is not managed by this driver.
    #[error("volume {0} is not managed by this driver")]
    NotFound(String),
    /// The issuance waits on the volume's pod (a readiness gate, its address, or the pod is going):
    /// not a failure, nothing is retried with backoff.
    #[error("volume {volume_id}: certificate issuance waits for {on}")]
    Waiting {
        volume_id: String,
        on: String,
        /// The pod is gone or going: it never will be issued.
        pod_gone: bool,
    },
    /// The certificate files would not fit the volume's tmpfs.
    #[error(
        "volume {volume_id}: the certificate files need {needed} bytes of its tmpfs (the new set \
         is written beside the current one), more than --volume-size-limit allows ({limit} \
         bytes); raise --volume-size-limit, or ask for fewer or shorter names"
    )]
    TooLarge {
        volume_id: String,
        needed: u64,
        limit: u64,
    },
    /// The volume is being unpublished: what was in progress for it stopped.
    #[error("volume {0} is being unpublished; stopped what was in progress for it")]
    Cancelled(String),
    /// A bug: a task panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
}

impl VolumeError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> VolumeError {
        let context = context.into();
        move |source| VolumeError::Io { context, source }
    }

    /// The gRPC code kubelet sees for a call that failed this way (the one place it is decided).
    pub fn code(&self) -> tonic::Code {
        match self {
            VolumeError::InvalidAttributes(_) | VolumeError::InvalidArgument(_) => {
                tonic::Code::InvalidArgument
            }
            VolumeError::Key(error) => error.code(),
            VolumeError::Issuer(error) => error.code(),
            VolumeError::TargetConflict { .. } => tonic::Code::AlreadyExists,
            VolumeError::TargetInUse { .. } => tonic::Code::FailedPrecondition,
            VolumeError::Cancelled(_) => tonic::Code::Aborted,
            // Only reached where kubelet already has its answer (`--continue-on-not-ready`).
            VolumeError::Waiting { .. } => tonic::Code::Unavailable,
            VolumeError::TooLarge { .. } => tonic::Code::ResourceExhausted,
            VolumeError::NotFound(_) => tonic::Code::NotFound,
            // A file system out of space or quota (the data root, a tmpfs) is a resource the
            // node ran out of, not a bug: kubelet's retry succeeds once there is room.
            VolumeError::Io { source, .. }
                if matches!(
                    source
                        .raw_os_error()
                        .map(rustix::io::Errno::from_raw_os_error),
                    Some(rustix::io::Errno::NOSPC | rustix::io::Errno::DQUOT)
                ) =>
            {
                tonic::Code::ResourceExhausted
            }
            VolumeError::Io { .. } | VolumeError::Internal(_) => tonic::Code::Internal,
        }
    }

    /// The reason of the Warning Event the driver puts on the pod for this failure, if it is
    /// one the driver names itself (only the issuer's answers are).
    pub fn event_reason(&self) -> Option<&'static str> {
        match self {
            VolumeError::Issuer(error) => error.event_reason(),
            _ => None,
        }
    }
}

/// One volume ID's place in the manager.
#[derive(Default)]
struct VolumeSlot {
    /// The volume while it is managed, behind the lock every operation on it takes.
    volume: tokio::sync::Mutex<Option<ManagedVolume>>,
    /// Raised by an unpublish before it waits for the lock: an issuance holding the lock gives up
    /// at once, and none starts, so a pod's teardown never waits on the issuer or the API server.
    removing: std::sync::atomic::AtomicBool,
    /// Wakes what waits on `removing` when it is raised. Held inline: a watch channel would cost
    /// an allocation of ~370 bytes a volume.
    removing_raised: tokio::sync::Notify,
    /// A fingerprint of where the volume is (being) published (0: nowhere yet), readable while an
    /// issuance holds the lock: a stats call for another path is answered `NotFound` without
    /// waiting. Not the path itself: the volume holds that already, and a second copy cost ~120
    /// bytes a volume. Two paths share a fingerprint with a chance of 2^-64.
    target: std::sync::atomic::AtomicU64,
}

/// The fingerprint of a target path in [`VolumeSlot::target`] (never 0).
fn target_fingerprint(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same path gives the same fingerprint for the process's life.
    let mut hasher = std::hash::DefaultHasher::new();
    path.hash(&mut hasher);
    hasher.finish().max(1)
}

type Slot = Arc<VolumeSlot>;

impl VolumeSlot {
    fn holding(volume: ManagedVolume) -> VolumeSlot {
        let target = target_fingerprint(volume.target());
        VolumeSlot {
            volume: tokio::sync::Mutex::new(Some(volume)),
            removing: Default::default(),
            removing_raised: tokio::sync::Notify::new(),
            target: target.into(),
        }
    }

    /// Records where the volume is being published.
    fn set_target(&self, target: &Path) {
        self.target.store(
            target_fingerprint(target),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Whether the volume is (being) published at `path`.
    fn is_at(&self, path: &Path) -> bool {
        self.target.load(std::sync::atomic::Ordering::Relaxed) == target_fingerprint(path)
    }

    /// Raises (an unpublish begins) or lowers (it ended) the flag issuances give up on.
    fn set_removing(&self, removing: bool) {
        self.removing
            .store(removing, std::sync::atomic::Ordering::SeqCst);
        if removing {
            self.removing_raised.notify_waiters();
        }
    }

    /// What an issuance on this slot watches to give up when the volume is being removed.
    fn cancellation(self: &Arc<Self>) -> Cancellation {
        Cancellation(Arc::clone(self))
    }
}

/// Tells an issuance that its volume is being unpublished.
pub(super) struct Cancellation(Slot);

impl Cancellation {
    pub fn is_requested(&self) -> bool {
        self.0.removing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Completes once the volume is being unpublished.
    pub async fn requested(&mut self) {
        loop {
            // Registered before the flag is read, so a raise in between is not missed.
            let raised = self.0.removing_raised.notified();
            tokio::pin!(raised);
            raised.as_mut().enable();
            if self.is_requested() {
                return;
            }
            raised.await;
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
    /// Keys of requests still pending for volumes whose first publish gave up waiting.
    parked_keys: ParkedKeys,
    /// How many volumes are managed, and adopted (for metrics).
    counters: Arc<Counters>,
    /// Bounds the node-side work (key, CSR, mount, file writes) to one task per core. Under a
    /// burst, volumes then finish in arrival order instead of all advancing together and all
    /// finishing late; waiting on the issuer is outside it.
    node_work: tokio::sync::Semaphore,
    /// Volumes waiting on their pod's readiness gates, by pod `(namespace, name)`: woken when
    /// the pod watch delivers a change to it.
    waiting: parking_lot::Mutex<HashMap<(String, String), std::collections::BTreeSet<String>>>,
    /// The pod watch's changes, subscribed at construction so that none is missed before the gate
    /// loop starts (taken by it).
    pod_changes: parking_lot::Mutex<Option<tokio::sync::broadcast::Receiver<(String, String)>>>,
    /// The Go driver's tmpfs is known to be mounted (`--publish-in-csi-lib-layout` keeps it so):
    /// later publishes need not read the mount table, which grows with every volume.
    inmemfs_mounted: Arc<std::sync::atomic::AtomicBool>,
    /// Volumes waiting out a backoff after their issuer could not be reached (or did not answer
    /// in time), by issuer: when an issuance through that issuer succeeds again, they are retried
    /// at once rather than at the end of a backoff that grew during the outage.
    waiting_on_issuer: parking_lot::Mutex<HashMap<IssuerKey, std::collections::HashSet<String>>>,
}

/// Held while a volume does node work (key, CSR, mount, file writes): one of the per-core permits,
/// and the key pool's "busy" mark.
pub(super) struct NodePermit<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
    _busy: BusyGuard,
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
        let pod_changes = config
            .readiness
            .as_ref()
            .map(|readiness| readiness.pods.changes());
        Arc::new(VolumeManager {
            config,
            issuer,
            mounter,
            store,
            events,
            metrics,
            scheduler: Scheduler::new(),
            slots: Mutex::new(HashMap::new()),
            parked_keys: ParkedKeys::default(),
            counters: Arc::default(),
            node_work: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |cores| cores.get()),
            ),
            waiting: parking_lot::Mutex::default(),
            pod_changes: parking_lot::Mutex::new(pod_changes),
            inmemfs_mounted: Arc::default(),
            waiting_on_issuer: Default::default(),
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

    /// Pod Events given up on so far.
    pub fn events_dropped(&self) -> u64 {
        self.events.dropped()
    }

    /// Writes the pod Events still queued, waiting at most `within`; whether all were written.
    pub async fn flush_events(&self, within: Duration) -> bool {
        self.events.flush_within(within).await
    }

    pub fn mounter_kind(&self) -> &'static str {
        self.mounter.kind()
    }

    /// Number of volumes currently managed (published as far as kubelet knows).
    pub fn volume_count(&self) -> usize {
        self.counters.managed()
    }

    /// Number of managed volumes that were adopted from the Go driver.
    pub fn adopted_count(&self) -> usize {
        self.counters.adopted()
    }

    fn parse_options(&self) -> ParseOptions {
        let pod_ip_gate = self
            .config
            .readiness
            .as_ref()
            .is_some_and(|readiness| readiness.gates.iter().any(Gate::waits_for_ip));
        ParseOptions {
            strict: self.config.strict_attributes,
            default_duration: self.config.default_duration,
            pod_ip_wait: PodIpWait {
                continue_on_not_ready: self.config.continue_on_not_ready,
                pod_ip_gate,
            },
        }
    }

    /// For volumes the driver did not publish itself in this process (reloaded, adopted): not
    /// strict, as a flag turned on since must not orphan a volume that was accepted once.
    fn lenient_parse_options(&self) -> ParseOptions {
        ParseOptions {
            strict: false,
            // A `${POD_IP}` volume stays managed after a restart without the flags it needs; its
            // issuance then says why nothing is renewed (see `gates.rs`).
            pod_ip_wait: PodIpWait::AVAILABLE,
            ..self.parse_options()
        }
    }

    /// Reads a volume context into what the volume is issued from. Every context goes through
    /// here: a publish's, a reloaded record's, a resting volume's when its renewal comes.
    fn parse_context(
        &self,
        context: &HashMap<String, String>,
        options: ParseOptions,
    ) -> Result<VolumeAttributes, InvalidAttributes> {
        if let RequestMode::Spiffe(spiffe) = &self.config.requests {
            return spiffe.build(context);
        }
        parse_volume_context_with(context, options)
    }

    /// A resting volume's attributes, parsed again from its record on disk (with the options its
    /// reload would use: the record was accepted when it was written).
    fn read_attributes(&self, volume_id: &str) -> Result<VolumeAttributes, VolumeError> {
        let record = self.store.load(volume_id).map_err(VolumeError::io(format!(
            "reading the record of volume {volume_id} (its attributes)"
        )))?;
        let context: HashMap<String, String> = record.volume_context.into_iter().collect();
        self.parse_context(&context, self.lenient_parse_options())
            .map_err(|invalid| {
                VolumeError::Internal(format!(
                    "the recorded attributes of volume {volume_id} no longer validate: {invalid}"
                ))
            })
    }

    /// The volume's parsed attributes, read again from its record if it was resting; `None` for
    /// one whose attributes are rejected. A record that cannot be read fails the attempt (it is
    /// retried with backoff; the volume's files stay).
    fn load_attributes<'v>(
        &self,
        volume: &'v mut ManagedVolume,
    ) -> Result<Option<&'v VolumeAttributes>, VolumeError> {
        if matches!(volume.attributes, Attributes::Resting) {
            let attributes = self.read_attributes(volume.id())?;
            volume.attributes = Attributes::Loaded(Box::new(attributes));
        }
        Ok(volume.valid_attributes())
    }

    /// A node-work permit. From the moment it is asked for, the key pool's refill waits: a volume
    /// waiting for CPU is never kept waiting by keys made for later ones.
    async fn node_permit(&self) -> Result<NodePermit<'_>, VolumeError> {
        let busy = self.config.key_pool.busy();
        let permit = self
            .node_work
            .acquire()
            .await
            .map_err(|e| VolumeError::Internal(e.to_string()))?;
        Ok(NodePermit {
            _permit: permit,
            _busy: busy,
        })
    }

    /// The watch of this node's pods that readiness gates are judged on (`None` without gates).
    pub fn pod_watch(&self) -> Option<&Arc<PodWatch>> {
        self.config
            .readiness
            .as_ref()
            .map(|readiness| &readiness.pods)
    }

    /// The key pool's counters and levels, for metrics.
    pub fn key_pool_stats(&self) -> crate::keys::pool::PoolStats {
        self.config.key_pool.stats()
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock()
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

    /// Counts a volume from now on (kubelet knows it as published).
    fn count(&self, volume: &mut ManagedVolume) {
        if volume.counted.is_none() {
            volume.counted = Some(Counted::new(&self.counters, volume.layout.is_adopted()));
        }
    }

    /// Puts a volume the driver takes up without a publish (resumed, adopted) in its slot.
    fn insert_managed(&self, mut volume: ManagedVolume) {
        self.count(&mut volume);
        volume.rest();
        self.slots().insert(
            volume.id().to_string(),
            Arc::new(VolumeSlot::holding(volume)),
        );
    }

    /// Drops an empty slot nobody else is waiting on.
    fn release_slot_if_idle(&self, volume_id: &str) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get(volume_id)
            && Arc::strong_count(slot) == 1
            && slot.volume.try_lock().is_ok_and(|volume| volume.is_none())
        {
            slots.remove(volume_id);
        }
    }

    /// Whether a pending key is held for the volume (for tests and status).
    pub fn has_pending_key(&self, volume_id: &str) -> bool {
        if self.parked_keys.contains(volume_id) {
            return true;
        }
        self.existing_slot(volume_id).is_some_and(|slot| {
            slot.volume
                .try_lock()
                .is_ok_and(|volume| volume.as_ref().is_some_and(ManagedVolume::has_pending_key))
        })
    }
}

fn rfc3339(at: std::time::SystemTime) -> String {
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
