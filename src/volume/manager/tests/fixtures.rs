//! What the scenarios run on: a mount table in memory, an issuer that follows a script, the
//! calls kubelet makes, and a manager wired to them on a temporary data root. Nothing here
//! mounts, needs root or opens a socket; the files are written by the real `files` code into a
//! temporary directory.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::attributes::{DEFAULT_DURATION, key};
use crate::demo::{SamplePod, sample_volume_context};
use crate::issuer::local_ca::LocalCa;
use crate::issuer::{IssueFuture, IssueOrder, Issuer, IssuerError};
use crate::keys::pool::KeyPool;
use crate::metrics::Metrics;
use crate::pod_events::NoEvents;
use crate::renewal::Backoff;
use crate::volume::VolumeId;
use crate::volume::files;
use crate::volume::manager::{ManagerConfig, PublishCall, ResumeSummary, VolumeManager};
use crate::volume::mount::Mounter;
use crate::volume::state::StateStore;

/// Mounts as entries in memory. `PlainDirectoryMounter` cannot serve here: it takes every
/// directory for a mount, so it cannot tell a volume whose tmpfs went from one still mounted,
/// and it never fails.
#[derive(Default)]
pub(crate) struct MemoryMounter {
    table: Mutex<MountTable>,
}

#[derive(Default)]
struct MountTable {
    mounted: HashSet<PathBuf>,
    fail_mount: Option<io::ErrorKind>,
    fail_unmount: Option<io::ErrorKind>,
}

impl MemoryMounter {
    /// The next `mount_tmpfs` fails with `kind`, mounting nothing.
    pub fn fail_next_mount(&self, kind: io::ErrorKind) {
        self.table.lock().fail_mount = Some(kind);
    }

    /// The next `unmount` fails with `kind`, leaving the mount.
    pub fn fail_next_unmount(&self, kind: io::ErrorKind) {
        self.table.lock().fail_unmount = Some(kind);
    }

    pub fn is_mounted_at(&self, target: &Path) -> bool {
        self.table.lock().mounted.contains(target)
    }

    /// The tmpfs at `target` is gone behind the driver's back (a node reboot, an admin's
    /// umount), and the files in it with it.
    pub fn lose(&self, target: &Path) {
        self.table.lock().mounted.remove(target);
        if target.is_dir() {
            files::clear(target).expect("empty the lost mount");
        }
    }
}

impl Mounter for MemoryMounter {
    fn kind(&self) -> &'static str {
        "in memory (tests)"
    }

    fn mount_tmpfs(&self, target: &Path, _size_bytes: u64) -> io::Result<()> {
        let mut table = self.table.lock();
        if let Some(kind) = table.fail_mount.take() {
            return Err(io::Error::new(kind, "scripted mount failure"));
        }
        table.mounted.insert(target.to_path_buf());
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        let mut table = self.table.lock();
        if let Some(kind) = table.fail_unmount.take() {
            return Err(io::Error::new(kind, "scripted unmount failure"));
        }
        table.mounted.remove(target);
        Ok(())
    }

    fn is_mounted(&self, target: &Path) -> io::Result<bool> {
        Ok(self.is_mounted_at(target))
    }

    fn holds_volume(&self, target: &Path) -> io::Result<bool> {
        Ok(self.is_mounted_at(target))
    }

    /// A "mounted" target stands for a tmpfs, so key material may be written into it.
    fn holds_memory_volume(&self, target: &Path) -> io::Result<bool> {
        Ok(self.is_mounted_at(target))
    }
}

/// What the scripted issuer does with the next order it receives.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Signs with the embedded CA.
    Sign,
    /// Answers with this error.
    Fail(IssuerError),
    /// Gives up waiting, as a remote issuer does at the publish deadline.
    TimeOut,
    /// Waits until [`ScriptedIssuer::release`], then signs.
    Hang,
}

/// How long the scripted issuer takes to answer (on tokio's clock).
pub(crate) const ROUND_TRIP: Duration = Duration::from_millis(10);

/// One order as the issuer received it.
#[derive(Debug, Clone)]
pub(crate) struct ReceivedOrder {
    pub volume_id: String,
    pub resuming: bool,
    pub csr_pem: String,
    /// On tokio's clock, so paused-time tests can measure backoff.
    pub at: Instant,
}

/// An issuer that follows a script, one [`Outcome`] per order (signing once the script is
/// used up), and records every order it received.
pub(crate) struct ScriptedIssuer {
    ca: LocalCa,
    script: Mutex<VecDeque<Outcome>>,
    orders: Mutex<Vec<ReceivedOrder>>,
    received: tokio::sync::watch::Sender<usize>,
    gate: tokio::sync::Semaphore,
    abandoned: AtomicUsize,
    withdrawn: Mutex<Vec<(String, bool)>>,
}

impl ScriptedIssuer {
    pub fn new(ca_dir: &Path, script: impl IntoIterator<Item = Outcome>) -> Arc<ScriptedIssuer> {
        Arc::new(ScriptedIssuer {
            ca: LocalCa::load_or_create(ca_dir).expect("embedded CA"),
            script: Mutex::new(script.into_iter().collect()),
            orders: Mutex::new(Vec::new()),
            received: tokio::sync::watch::Sender::new(0),
            gate: tokio::sync::Semaphore::new(0),
            abandoned: AtomicUsize::new(0),
            withdrawn: Mutex::new(Vec::new()),
        })
    }

    /// Every order received so far, in order.
    pub fn orders(&self) -> Vec<ReceivedOrder> {
        self.orders.lock().clone()
    }

    /// Waits until `count` orders have been received.
    pub async fn wait_for_orders(&self, count: usize) {
        let mut received = self.received.subscribe();
        received
            .wait_for(|received| *received >= count)
            .await
            .expect("the issuer outlives its watchers");
    }

    /// Lets one hanging order be signed.
    pub fn release(&self) {
        self.gate.add_permits(1);
    }

    /// Orders whose caller stopped waiting before they were answered.
    pub fn abandoned(&self) -> usize {
        self.abandoned.load(Ordering::SeqCst)
    }

    /// The `volume_gone` calls: volume ID, and whether an issuance was interrupted.
    pub fn withdrawn(&self) -> Vec<(String, bool)> {
        self.withdrawn.lock().clone()
    }
}

/// Counts an order as abandoned if its future is dropped before it answers.
struct Answering<'a> {
    issuer: &'a ScriptedIssuer,
    answered: bool,
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.issuer.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Issuer for ScriptedIssuer {
    fn backend_name(&self) -> &'static str {
        "scripted"
    }

    fn issue<'a>(&'a self, order: &'a IssueOrder) -> IssueFuture<'a> {
        Box::pin(async move {
            let outcome = self.script.lock().pop_front().unwrap_or(Outcome::Sign);
            self.orders.lock().push(ReceivedOrder {
                volume_id: order.volume_id.clone(),
                resuming: order.resuming,
                csr_pem: order.csr_pem.clone(),
                at: Instant::now(),
            });
            self.received.send_modify(|received| *received += 1);
            let mut answering = Answering {
                issuer: self,
                answered: false,
            };
            // A remote issuer never answers within the poll that asked: without this round trip
            // a failure could land before `publish` has seen the volume mounted, and under
            // `--continue-on-not-ready` its unbiased `select!` would then pick either answer.
            if !matches!(outcome, Outcome::Hang) {
                tokio::time::sleep(ROUND_TRIP).await;
            }
            let answer = match outcome {
                Outcome::Sign => self.ca.sign(order),
                Outcome::Fail(error) => Err(error),
                Outcome::TimeOut => Err(IssuerError::timed_out(
                    "scripted: not signed before the deadline",
                )),
                Outcome::Hang => {
                    self.gate.acquire().await.expect("gate open").forget();
                    self.ca.sign(order)
                }
            };
            answering.answered = true;
            answer
        })
    }

    fn volume_gone(&self, volume_id: &str, _namespace: &str, interrupted: bool) {
        self.withdrawn
            .lock()
            .push((volume_id.to_string(), interrupted));
    }
}

/// A `PublishCall` being put together.
pub(crate) struct PublishCallBuilder {
    call: PublishCall,
}

/// A `NodePublishVolume` for a sample pod named after the volume, with ECDSA keys (RSA would go
/// to the blocking pool and take real time).
pub(crate) fn publish_call(volume_id: &str, target: &Path) -> PublishCallBuilder {
    let pod = SamplePod {
        name: format!("pod-{volume_id}"),
        namespace: "default".into(),
        uid: "00000000-0000-4000-8000-000000000001".into(),
    };
    PublishCallBuilder {
        call: PublishCall {
            volume_id: VolumeId::new(volume_id).unwrap(),
            target_path: target.to_path_buf(),
            volume_context: sample_volume_context(&pod, &[(key::KEY_ALGORITHM, "ECDSA")]),
            volume_mount_group: None,
        },
    }
}

impl PublishCallBuilder {
    /// Adds (or replaces) one entry of the volume context.
    pub fn attribute(mut self, name: &str, value: &str) -> PublishCallBuilder {
        self.call
            .volume_context
            .insert(name.to_string(), value.to_string());
        self
    }

    pub fn build(self) -> PublishCall {
        self.call
    }
}

/// The `ManagerConfig` knobs a scenario sets.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Knobs {
    pub continue_on_not_ready: bool,
    pub backoff: Backoff,
    /// Serve the renewal queue, as the driver does (retries and renewals happen by themselves).
    pub renewal_loop: bool,
}

impl Knobs {
    pub fn continue_on_not_ready(self) -> Knobs {
        Knobs {
            continue_on_not_ready: true,
            ..self
        }
    }

    /// Retries after `initial` seconds, doubling up to `max` seconds.
    pub fn backoff(self, initial: u64, max: u64) -> Knobs {
        Knobs {
            backoff: Backoff {
                initial: Duration::from_secs(initial),
                max: Duration::from_secs(max),
            },
            ..self
        }
    }

    pub fn renewal_loop(self) -> Knobs {
        Knobs {
            renewal_loop: true,
            ..self
        }
    }

    fn config(&self) -> ManagerConfig {
        ManagerConfig {
            volume_size_bytes: 1024 * 1024,
            renewal_concurrency: 4,
            backoff: self.backoff,
            continue_on_not_ready: self.continue_on_not_ready,
            strict_attributes: false,
            default_duration: DEFAULT_DURATION,
            csi_lib_root: None,
            publish_in_csi_lib_layout: false,
            readiness: None,
            key_pool: Arc::new(KeyPool::disabled()),
            requests: Default::default(),
        }
    }
}

/// A manager on a temporary data root with the in-memory mounter and the scripted issuer. Both
/// outlive [`TestNode::restart`], as the kernel's mounts and the cluster's issuer outlive the
/// driver's process.
pub(crate) struct TestNode {
    dir: tempfile::TempDir,
    knobs: Knobs,
    pub mounter: Arc<MemoryMounter>,
    pub issuer: Arc<ScriptedIssuer>,
    pub manager: Arc<VolumeManager>,
    renewals: Option<JoinHandle<()>>,
}

impl TestNode {
    pub fn new(knobs: Knobs, script: impl IntoIterator<Item = Outcome>) -> TestNode {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mounter = Arc::new(MemoryMounter::default());
        let issuer = ScriptedIssuer::new(&dir.path().join("ca"), script);
        let manager = Self::start_manager(dir.path(), knobs, &mounter, &issuer);
        let mut node = TestNode {
            dir,
            knobs,
            mounter,
            issuer,
            manager,
            renewals: None,
        };
        node.serve_renewals();
        node
    }

    fn start_manager(
        dir: &Path,
        knobs: Knobs,
        mounter: &Arc<MemoryMounter>,
        issuer: &Arc<ScriptedIssuer>,
    ) -> Arc<VolumeManager> {
        VolumeManager::new(
            knobs.config(),
            Arc::clone(issuer) as Arc<dyn Issuer>,
            Arc::clone(mounter) as Arc<dyn Mounter>,
            StateStore::open(&dir.join("state")).expect("state store"),
            Arc::new(NoEvents),
            Arc::new(Metrics::new("test-node")),
        )
    }

    fn serve_renewals(&mut self) {
        if self.knobs.renewal_loop {
            self.renewals = Some(self.manager.spawn_renewal_loop());
        }
    }

    /// kubelet's target for `name`: `<dir>/pods/<name>/mount`, its parent made as kubelet would.
    pub fn target(&self, name: &str) -> PathBuf {
        let parent = self.dir.path().join("pods").join(name);
        std::fs::create_dir_all(&parent).expect("target parent");
        parent.join("mount")
    }

    /// The driver stops and starts again on the same data root, mounts and issuer: a new manager
    /// resumes what was recorded.
    pub fn restart(&mut self) -> ResumeSummary {
        if let Some(renewals) = self.renewals.take() {
            renewals.abort();
        }
        self.manager =
            Self::start_manager(self.dir.path(), self.knobs, &self.mounter, &self.issuer);
        let summary = self.manager.resume().expect("resume");
        self.serve_renewals();
        summary
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(renewals) = self.renewals.take() {
            renewals.abort();
        }
    }
}
