//! Chaos on one node: the real driver binary under pod churn, `kill -9` at random moments and
//! Kubernetes API outages, while a checker reads every published volume the way a pod does.
//!
//! The scenario an operator ran by hand, as a program: ~40 live volumes with 30 s ECDSA
//! certificates (renewed about every 20 s), one pod replaced every ~2 s, the driver killed every
//! 15–40 s and restarted at once, the API server frozen for 20–40 s twice per 6 minutes. kubelet's
//! part is played closely enough to matter: a failed publish or unpublish is retried every second
//! until it succeeds, and a volume counts as published from a successful publish until its
//! unpublish starts.
//!
//! The result is printed, not asserted: violations by kind (0s included) and the latencies kubelet
//! would see. A program to run by hand, not a CI test.
//!
//! Run (as root: real tmpfs mounts):
//! `cargo bench --bench chaos -- [--minutes 6] [--volumes 40] [--seed S] [--keep]`

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::certificate::{inspect_leaf, key_matches_certificate};
use cert_manager_csi_driver::csi::client::{self, CsiClient};
use cert_manager_csi_driver::csi::proto::{
    NodePublishVolumeRequest, NodeUnpublishVolumeRequest, ProbeRequest,
};
use cert_manager_csi_driver::demo::{SamplePod, publish_request, sample_volume_context};
use cert_manager_csi_driver::volume::mountinfo;
use kube_test_server::{Signer, TestApiServer};
use parking_lot::{Mutex, MutexGuard};
use tokio::task::JoinSet;
use tokio::time::Instant;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const BINARY: &str = env!("CARGO_BIN_EXE_cert-manager-csi-driver");
const USAGE: &str =
    "usage: cargo bench --bench chaos -- [--minutes N] [--volumes N] [--seed S] [--keep]";

/// Certificate lifetime; with no renew-before the driver renews at two thirds (≈ 20 s).
const LIFETIME: &str = "30s";
const CHURN_EVERY_MS: std::ops::RangeInclusive<u64> = 1_500..=2_500;
const KILL_EVERY_MS: std::ops::RangeInclusive<u64> = 15_000..=40_000;
const OUTAGE_LENGTH_MS: std::ops::RangeInclusive<u64> = 20_000..=40_000;
/// Other API faults a real cluster has now and then: a watch cut by a load balancer, a 500.
const API_FAULT_EVERY_MS: std::ops::RangeInclusive<u64> = 20_000..=60_000;
/// Loopback answers in microseconds; a real API server takes milliseconds.
const API_LATENCY: Duration = Duration::from_millis(5);
/// No outage in the first seconds (volumes settle) nor the last ones (renewals catch up, so
/// the end state is judged with the API up).
const QUIET_START: Duration = Duration::from_secs(20);
const QUIET_END: Duration = Duration::from_secs(45);
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// kubelet's pause between retries of a failed CSI call (its backoff starts around here).
const KUBELET_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// kubelet gives every CSI node call 2 minutes (`csiTimeout`).
const KUBELET_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// After the chaos, how long pending publishes and unpublishes may still take to succeed.
const DRAIN_LIMIT: Duration = Duration::from_secs(90);
/// How long an expired certificate is tolerated after the outage that covered its renewal ends:
/// held requests go through at once on thawing, and a failed attempt is retried within
/// `--renewal-backoff-max`.
const EXPIRY_GRACE: Duration = Duration::from_secs(5);
const START_LIMIT: Duration = Duration::from_secs(60);

const MISMATCH: &str = "mismatch";
const UNREADABLE: &str = "unreadable";
const LOST_MOUNT: &str = "lost mount";
const EXPIRED: &str = "expired outside an outage";
const NEVER_PUBLISHED: &str = "publish never succeeded";
const LEFTOVERS: &str = "leftovers";
const VIOLATION_KINDS: [&str; 6] = [
    MISMATCH,
    UNREADABLE,
    LOST_MOUNT,
    EXPIRED,
    NEVER_PUBLISHED,
    LEFTOVERS,
];
const EXAMPLES_PER_KIND: usize = 5;

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("{error}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Ctrl-C drops the run, whose cleanup guard kills the driver and unmounts everything.
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = run(options) => result,
            _ = tokio::signal::ctrl_c() => Err("interrupted (cleaned up, no report)".into()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nchaos failed: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone, Copy)]
struct Options {
    minutes: f64,
    volumes: usize,
    seed: u64,
    /// Keep the node directory (driver log, state) after the run.
    keep: bool,
}

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            minutes: 6.0,
            volumes: 40,
            // A fresh seed each run unless given; it is printed so a run can be repeated.
            seed: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64),
            keep: false,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or(format!("{name} needs a value"))
            };
            match name.as_str() {
                // cargo bench passes --bench to harness = false programs.
                "--bench" => {}
                "--keep" => options.keep = true,
                "--minutes" => options.minutes = parse_number(&name, &value()?)?,
                "--volumes" => options.volumes = parse_number(&name, &value()?)?,
                "--seed" => options.seed = parse_number(&name, &value()?)?,
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        if options.volumes == 0 || options.minutes <= 0.0 {
            return Err("--volumes and --minutes must be positive".into());
        }
        Ok(options)
    }

    fn chaos_length(&self) -> Duration {
        Duration::from_secs_f64(self.minutes * 60.0)
    }
}

fn parse_number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{name}: {text:?} is not a number"))
}

// ---------------------------------------------------------------------------------------------
// The node and the driver process

/// The node directory: kubelet's pod directories, the driver's data root, socket and log.
#[derive(Clone)]
struct Node {
    dir: PathBuf,
}

impl Node {
    fn create(seed: u64) -> BenchResult<Node> {
        let dir = std::env::temp_dir().join(format!(
            "cm-csi-chaos-{}-{:x}",
            std::process::id(),
            seed & 0xffff
        ));
        std::fs::create_dir_all(&dir)?;
        // Mount points in mountinfo are canonical paths.
        Ok(Node {
            dir: dir.canonicalize()?,
        })
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("plugin/csi.sock")
    }

    fn data_root(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("driver.log")
    }

    fn pods(&self) -> PathBuf {
        self.dir.join("kubelet/pods")
    }

    /// A kubelet-shaped target path; kubelet creates its parent, the driver the target itself.
    fn target(&self, pod: &str) -> std::io::Result<PathBuf> {
        let parent = self.pods().join(pod).join("volumes/kubernetes.io~csi/tls");
        std::fs::create_dir_all(&parent)?;
        Ok(parent.join("mount"))
    }

    fn mounts(&self) -> Vec<PathBuf> {
        mountinfo::read_current()
            .unwrap_or_default()
            .into_iter()
            .map(|entry| entry.mount_point)
            .filter(|point| point.starts_with(&self.dir))
            .collect()
    }

    /// Detaches every mount under the node directory, deepest first.
    fn unmount_all(&self) -> usize {
        let mut mounts = self.mounts();
        mounts.sort();
        for mount in mounts.iter().rev() {
            let _ = rustix::mount::unmount(mount, rustix::mount::UnmountFlags::DETACH);
        }
        mounts.len()
    }
}

/// The driver binary, killed and restarted in place. All output of every run goes to one log.
struct Driver {
    node: Node,
    child: Mutex<Option<Child>>,
    starts: AtomicUsize,
}

impl Driver {
    fn new(node: &Node) -> Driver {
        Driver {
            node: node.clone(),
            child: Mutex::new(None),
            starts: AtomicUsize::new(0),
        }
    }

    fn spawn(&self) -> BenchResult<()> {
        let start = self.starts.fetch_add(1, Ordering::Relaxed) + 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.node.log())?;
        writeln!(log, "===== chaos: driver start #{start} =====")?;
        let child = Command::new(BINARY)
            .arg("--node-id=chaos-node")
            .arg(format!(
                "--endpoint=unix://{}",
                self.node.socket().display()
            ))
            .arg(format!("--data-root={}", self.node.data_root().display()))
            .arg("--issuer-backend=cert-manager")
            .arg(format!("--kubeconfig={}", self.node.kubeconfig().display()))
            .arg("--publish-timeout=20s")
            .arg("--renewal-backoff-initial=500ms")
            .arg("--renewal-backoff-max=5s")
            .arg("-v=2")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        *self.child.lock() = Some(child);
        Ok(())
    }

    /// SIGKILL: no chance to clean up, like an OOM kill.
    fn kill(&self) {
        if let Some(mut child) = self.child.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Connects once the driver answers Probe with ready.
async fn connect_when_serving(socket: &Path, limit: Duration) -> BenchResult<CsiClient> {
    let started = Instant::now();
    loop {
        if let Ok(mut csi) = client::connect(socket).await
            && let Ok(probe) = csi.identity.probe(ProbeRequest {}).await
            && probe.into_inner().ready == Some(true)
        {
            return Ok(csi);
        }
        if started.elapsed() > limit {
            return Err(format!("the driver did not serve within {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whatever ends the run (a panic, an error, Ctrl-C): the driver is killed and every mount under
/// the node directory detached; the directory is removed unless --keep.
struct Cleanup {
    node: Node,
    driver: Arc<Driver>,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.driver.kill();
        let detached = self.node.unmount_all();
        if detached > 0 {
            println!("cleanup: detached {detached} mounts still up under the node directory");
        }
        if !self.keep && self.node.mounts().is_empty() {
            let _ = std::fs::remove_dir_all(&self.node.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state of a run

#[derive(Debug, Clone)]
struct Volume {
    id: String,
    pod: String,
    uid: String,
    target: PathBuf,
}

/// One API outage; `end` is `None` while it lasts.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    end: Option<Instant>,
}

impl Window {
    fn overlaps(&self, from: Instant, to: Instant) -> bool {
        self.start <= to && self.end.is_none_or(|end| end >= from)
    }
}

struct Unpublished {
    volume_id: String,
    started: Instant,
    ended: Instant,
    attempts: u32,
}

struct Restart {
    took: Duration,
    during_outage: bool,
}

#[derive(Default)]
struct Tally {
    /// Time from the first attempt to success, and attempts, of each successful publish.
    publishes: Vec<(Duration, u32)>,
    publish_errors: BTreeMap<String, usize>,
    never_published: Vec<Volume>,
    unpublishes: Vec<Unpublished>,
    unpublish_errors: BTreeMap<String, usize>,
    never_unpublished: Vec<Volume>,
    kills: usize,
    kills_mid_publish: usize,
    kills_mid_unpublish: usize,
    kills_renewal_due: usize,
    restarts: Vec<Restart>,
    watch_drops: usize,
    injected_500s: usize,
}

struct Chaos {
    node: Node,
    driver: Arc<Driver>,
    api: TestApiServer,
    client: Mutex<CsiClient>,
    /// What kubelet considers published (ordered, so random picks follow the seed).
    published: Mutex<BTreeMap<String, Volume>>,
    outages: Mutex<Vec<Window>>,
    frozen: AtomicBool,
    publishes_in_flight: AtomicUsize,
    unpublishes_in_flight: AtomicUsize,
    /// Published volumes whose certificate is past its renewal point (the checker's last view).
    renewals_due: AtomicUsize,
    /// Set after the drain period: kubelet stops retrying.
    give_up: AtomicBool,
    tally: Mutex<Tally>,
}

impl Chaos {
    fn client(&self) -> CsiClient {
        self.client.lock().clone()
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock()
    }

    fn outages(&self) -> Vec<Window> {
        self.outages.lock().clone()
    }

    fn is_published(&self, volume_id: &str) -> bool {
        self.published.lock().contains_key(volume_id)
    }
}

/// A seedable stream per concern, so that one loop's draws do not shift another's.
fn stream(seed: u64, concern: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed ^ concern.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn random_duration(rng: &mut fastrand::Rng, millis: std::ops::RangeInclusive<u64>) -> Duration {
    Duration::from_millis(rng.u64(millis))
}

// ---------------------------------------------------------------------------------------------
// The run

async fn run(options: Options) -> BenchResult<()> {
    if !rustix::process::geteuid().is_root() {
        return Err("run as root: the driver mounts a tmpfs per volume".into());
    }
    let node = Node::create(options.seed)?;
    let driver = Arc::new(Driver::new(&node));
    let _cleanup = Cleanup {
        node: node.clone(),
        driver: Arc::clone(&driver),
        keep: options.keep,
    };

    let api = TestApiServer::start().await;
    api.set_latency(API_LATENCY);
    let _signer = Signer::start(&api);
    api.write_kubeconfig(&node.kubeconfig(), kube_test_server::DRIVER_TOKEN);
    driver.spawn()?;
    let client = connect_when_serving(&node.socket(), START_LIMIT).await?;

    let chaos = Arc::new(Chaos {
        node: node.clone(),
        driver: Arc::clone(&driver),
        api,
        client: Mutex::new(client),
        published: Mutex::new(BTreeMap::new()),
        outages: Mutex::new(Vec::new()),
        frozen: AtomicBool::new(false),
        publishes_in_flight: AtomicUsize::new(0),
        unpublishes_in_flight: AtomicUsize::new(0),
        renewals_due: AtomicUsize::new(0),
        give_up: AtomicBool::new(false),
        tally: Mutex::new(Tally::default()),
    });

    let checker_stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let chaos = Arc::clone(&chaos);
        let stop = Arc::clone(&checker_stop);
        std::thread::spawn(move || Checker::new(chaos).run(&stop))
    };

    // The node fills up with pods first, then the chaos starts.
    let mut kubelet = JoinSet::new();
    let mut names = stream(options.seed, 1);
    for index in 0..options.volumes {
        let volume = new_volume(&node, &mut names, index)?;
        kubelet.spawn(kubelet_publish(Arc::clone(&chaos), volume));
    }
    while let Some(done) = kubelet.join_next().await {
        done?;
    }

    let chaos_started = Instant::now();
    let chaos_started_utc = time::OffsetDateTime::now_utc();
    let deadline = chaos_started + options.chaos_length();
    let outage_plan = plan_outages(&mut stream(options.seed, 2), options.chaos_length());
    let outages = tokio::spawn(outage_loop(Arc::clone(&chaos), chaos_started, outage_plan));
    let kills = tokio::spawn(kill_loop(
        Arc::clone(&chaos),
        stream(options.seed, 3),
        deadline,
    ));
    let faults = tokio::spawn(api_fault_loop(
        Arc::clone(&chaos),
        stream(options.seed, 4),
        deadline,
    ));
    churn_loop(
        &chaos,
        &mut kubelet,
        stream(options.seed, 5),
        names,
        options.volumes,
        deadline,
    )
    .await?;
    outages.await?;
    kills.await??;
    faults.await?;
    let chaos_took = chaos_started.elapsed();

    // The API is up and the driver running: what is still pending gets a last chance.
    chaos.api.set_frozen(false);
    chaos.api.clear_faults();
    drain(&chaos, &mut kubelet).await?;

    checker_stop.store(true, Ordering::Relaxed);
    let checked = checker.join().map_err(|_| "the checker panicked")?;

    let teardown = teardown(&chaos).await;
    let leftovers = leftovers(&node);
    let requests_left = chaos
        .api
        .list_objects("cert-manager.io/v1", "certificaterequests")
        .len();
    driver.kill();
    let log = scan_log(&node.log());

    Report {
        options,
        node: &node,
        chaos_took,
        tally: &chaos.tally(),
        outages: &chaos.outages(),
        chaos_started,
        chaos_started_utc,
        checked: &checked,
        teardown: &teardown,
        leftovers: &leftovers,
        requests_left,
        log: &log,
        driver_starts: driver.starts.load(Ordering::Relaxed),
    }
    .print();
    Ok(())
}

fn new_volume(node: &Node, rng: &mut fastrand::Rng, index: usize) -> BenchResult<Volume> {
    let pod = format!("pod-{index:04}");
    Ok(Volume {
        id: format!("csi-{index:04}-{:08x}", rng.u32(..)),
        uid: format!(
            "{:08x}-0000-4000-8000-{:012x}",
            rng.u32(..),
            rng.u64(..1 << 48)
        ),
        target: node.target(&pod)?,
        pod,
    })
}

// ---------------------------------------------------------------------------------------------
// Workload: kubelet's calls

fn publish_request_for(volume: &Volume) -> NodePublishVolumeRequest {
    let pod = SamplePod {
        name: volume.pod.clone(),
        namespace: "chaos".into(),
        uid: volume.uid.clone(),
    };
    let mut context = sample_volume_context(
        &pod,
        &[(key::KEY_ALGORITHM, "ECDSA"), (key::DURATION, LIFETIME)],
    );
    // Renew at two thirds of the lifetime, cert-manager's default.
    context.remove(key::RENEW_BEFORE);
    publish_request(&volume.id, &volume.target, context)
}

/// One CSI call with kubelet's timeout; the error is the gRPC code's name.
async fn with_kubelet_timeout<T>(
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<(), String> {
    match tokio::time::timeout(KUBELET_CALL_TIMEOUT, call).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(format!("{:?}", status.code())),
        Err(_) => Err("kubelet timeout".into()),
    }
}

/// Publishes like kubelet: retried after a pause until it succeeds (or the run gives up).
async fn kubelet_publish(chaos: Arc<Chaos>, volume: Volume) {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        if chaos.give_up.load(Ordering::Relaxed) {
            chaos.tally().never_published.push(volume);
            return;
        }
        attempts += 1;
        chaos.publishes_in_flight.fetch_add(1, Ordering::Relaxed);
        let mut node = chaos.client().node;
        let result =
            with_kubelet_timeout(node.node_publish_volume(publish_request_for(&volume))).await;
        chaos.publishes_in_flight.fetch_sub(1, Ordering::Relaxed);
        match result {
            Ok(()) => {
                let took = started.elapsed();
                chaos.published.lock().insert(volume.id.clone(), volume);
                chaos.tally().publishes.push((took, attempts));
                return;
            }
            Err(code) => {
                *chaos.tally().publish_errors.entry(code).or_default() += 1;
                tokio::time::sleep(KUBELET_RETRY_PAUSE).await;
            }
        }
    }
}

/// Unpublishes like kubelet (the volume already left the published set), retried until it
/// succeeds; times the whole thing.
async fn kubelet_unpublish(chaos: Arc<Chaos>, volume: Volume) {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        if chaos.give_up.load(Ordering::Relaxed) {
            chaos.tally().never_unpublished.push(volume);
            return;
        }
        attempts += 1;
        chaos.unpublishes_in_flight.fetch_add(1, Ordering::Relaxed);
        let mut node = chaos.client().node;
        let result =
            with_kubelet_timeout(node.node_unpublish_volume(unpublish_request(&volume))).await;
        chaos.unpublishes_in_flight.fetch_sub(1, Ordering::Relaxed);
        match result {
            Ok(()) => {
                chaos.tally().unpublishes.push(Unpublished {
                    volume_id: volume.id.clone(),
                    started,
                    ended: Instant::now(),
                    attempts,
                });
                return;
            }
            Err(code) => {
                *chaos.tally().unpublish_errors.entry(code).or_default() += 1;
                tokio::time::sleep(KUBELET_RETRY_PAUSE).await;
            }
        }
    }
}

fn unpublish_request(volume: &Volume) -> NodeUnpublishVolumeRequest {
    NodeUnpublishVolumeRequest {
        volume_id: volume.id.clone(),
        target_path: volume.target.display().to_string(),
    }
}

/// Every ~2 s one pod goes (a random published volume is unpublished) and a new one comes. Each
/// call runs on its own, as kubelet handles pods concurrently: a slow unpublish does not hold up
/// the next pod.
async fn churn_loop(
    chaos: &Arc<Chaos>,
    kubelet: &mut JoinSet<()>,
    mut rng: fastrand::Rng,
    mut names: fastrand::Rng,
    mut next_index: usize,
    deadline: Instant,
) -> BenchResult<()> {
    loop {
        let pause = random_duration(&mut rng, CHURN_EVERY_MS);
        if Instant::now() + pause >= deadline {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        let victim = {
            let mut published = chaos.published.lock();
            let ids: Vec<String> = published.keys().cloned().collect();
            rng.choice(ids).and_then(|id| published.remove(&id))
        };
        if let Some(victim) = victim {
            kubelet.spawn(kubelet_unpublish(Arc::clone(chaos), victim));
        }
        let volume = new_volume(&chaos.node, &mut names, next_index)?;
        next_index += 1;
        kubelet.spawn(kubelet_publish(Arc::clone(chaos), volume));
        // Reap finished calls as we go, surfacing a panic in one.
        while let Some(done) = kubelet.try_join_next() {
            done?;
        }
    }
}

/// Lets pending calls finish (the API is up again), then makes kubelet give up on the rest.
async fn drain(chaos: &Chaos, kubelet: &mut JoinSet<()>) -> BenchResult<()> {
    let limit = tokio::time::Instant::now() + DRAIN_LIMIT;
    loop {
        match tokio::time::timeout_at(limit, kubelet.join_next()).await {
            Ok(Some(done)) => done?,
            Ok(None) => return Ok(()),
            Err(_) => break,
        }
    }
    chaos.give_up.store(true, Ordering::Relaxed);
    while let Some(done) = kubelet.join_next().await {
        done?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Faults: kill -9, API outages, lesser API faults

/// Kills the driver every 15–40 s, wherever it is, and restarts it at once like a DaemonSet.
async fn kill_loop(
    chaos: Arc<Chaos>,
    mut rng: fastrand::Rng,
    deadline: Instant,
) -> BenchResult<()> {
    loop {
        let pause = random_duration(&mut rng, KILL_EVERY_MS);
        if Instant::now() + pause >= deadline {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        let mid_publish = chaos.publishes_in_flight.load(Ordering::Relaxed) > 0;
        let mid_unpublish = chaos.unpublishes_in_flight.load(Ordering::Relaxed) > 0;
        let renewal_due = chaos.renewals_due.load(Ordering::Relaxed) > 0;
        let during_outage = chaos.frozen.load(Ordering::Relaxed);
        chaos.driver.kill();
        let started = Instant::now();
        chaos.driver.spawn()?;
        let client = connect_when_serving(&chaos.node.socket(), START_LIMIT).await?;
        let took = started.elapsed();
        *chaos.client.lock() = client;
        let mut tally = chaos.tally();
        tally.kills += 1;
        tally.kills_mid_publish += usize::from(mid_publish);
        tally.kills_mid_unpublish += usize::from(mid_unpublish);
        tally.kills_renewal_due += usize::from(renewal_due);
        tally.restarts.push(Restart {
            took,
            during_outage,
        });
    }
}

/// Outages (offset from the start of the chaos, length): twice per 6 minutes and at least once,
/// one per equal slot of the time between the quiet start and end.
fn plan_outages(rng: &mut fastrand::Rng, chaos_length: Duration) -> Vec<(Duration, Duration)> {
    let count = ((chaos_length.as_secs_f64() / 180.0).round() as u32).max(1);
    let span = chaos_length.saturating_sub(QUIET_START + QUIET_END);
    let slot = span / count;
    (0..count)
        .map(|index| {
            let length = random_duration(rng, OUTAGE_LENGTH_MS).min(slot);
            let room = (slot - length).as_millis() as u64;
            let offset = QUIET_START + slot * index + Duration::from_millis(rng.u64(..=room));
            (offset, length)
        })
        .collect()
}

/// A full outage: requests hang and watches go silent until the thaw.
async fn outage_loop(chaos: Arc<Chaos>, chaos_started: Instant, plan: Vec<(Duration, Duration)>) {
    for (offset, length) in plan {
        tokio::time::sleep_until(chaos_started + offset).await;
        chaos.api.set_frozen(true);
        chaos.frozen.store(true, Ordering::Relaxed);
        chaos.outages.lock().push(Window {
            start: Instant::now(),
            end: None,
        });
        tokio::time::sleep(length).await;
        chaos.api.set_frozen(false);
        chaos.frozen.store(false, Ordering::Relaxed);
        if let Some(window) = chaos.outages.lock().last_mut() {
            window.end = Some(Instant::now());
        }
    }
}

/// Now and then a watch is cut (load balancer, API server restart) or a CertificateRequest
/// create fails with a 500 (which kube's client does not retry by itself).
async fn api_fault_loop(chaos: Arc<Chaos>, mut rng: fastrand::Rng, deadline: Instant) {
    loop {
        let pause = random_duration(&mut rng, API_FAULT_EVERY_MS);
        if Instant::now() + pause >= deadline {
            return;
        }
        tokio::time::sleep(pause).await;
        if rng.bool() {
            chaos.api.drop_watches();
            chaos.tally().watch_drops += 1;
        } else {
            chaos
                .api
                .fail_next(1, 500, Some("POST"), Some("certificaterequests"));
            chaos.tally().injected_500s += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checker: every published volume, read the way a pod reads it

#[derive(Debug)]
struct Certificate {
    serial: String,
    not_after: SystemTime,
    renew_at: SystemTime,
}

enum Observation {
    Valid(Certificate),
    Expired(Certificate),
    Broken(&'static str, String),
}

#[derive(Default)]
struct Checked {
    rounds: u64,
    checks: u64,
    renewals: u64,
    /// Reads that found the set they resolved already replaced (the driver removes an old set
    /// right after the swap); read again through the new `..data`, not a violation.
    swap_races: u64,
    /// Distinct (volume, kind) incidents and the observations of them.
    incidents: BTreeMap<&'static str, usize>,
    observations: BTreeMap<&'static str, usize>,
    examples: BTreeMap<&'static str, Vec<String>>,
    /// Certificates seen expired while an outage excused it.
    expired_excused: usize,
    /// For those later replaced: time from the end of the outage to the new certificate.
    replaced_after_outage: Vec<Duration>,
    /// Those whose volume was unpublished before a new certificate was seen.
    expired_unpublished_first: usize,
}

impl Checked {
    fn record(&mut self, kind: &'static str, fresh: bool, detail: String) {
        *self.observations.entry(kind).or_default() += 1;
        if fresh {
            *self.incidents.entry(kind).or_default() += 1;
            let examples = self.examples.entry(kind).or_default();
            if examples.len() < EXAMPLES_PER_KIND {
                examples.push(detail);
            }
        }
    }
}

struct Checker {
    chaos: Arc<Chaos>,
    started: Instant,
    /// The serial last seen per volume, to count renewals.
    serials: HashMap<String, String>,
    /// Violations currently open per volume: one incident until the volume is healthy again.
    open: HashMap<String, HashSet<&'static str>>,
    /// Volumes with an excused expired certificate: its serial and the outage that excused it.
    awaiting_replacement: HashMap<String, (String, usize)>,
    checked: Checked,
}

impl Checker {
    fn new(chaos: Arc<Chaos>) -> Checker {
        Checker {
            chaos,
            started: Instant::now(),
            serials: HashMap::new(),
            open: HashMap::new(),
            awaiting_replacement: HashMap::new(),
            checked: Checked::default(),
        }
    }

    fn run(mut self, stop: &AtomicBool) -> Checked {
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            self.round();
            next += CHECK_EVERY;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        self.checked
    }

    fn round(&mut self) {
        self.checked.rounds += 1;
        let volumes: Vec<Volume> = self.chaos.published.lock().values().cloned().collect();
        let mounts: HashSet<PathBuf> = self.chaos.node.mounts().into_iter().collect();
        let mut renewals_due = 0;
        let live: HashSet<&str> = volumes.iter().map(|v| v.id.as_str()).collect();
        self.serials.retain(|id, _| live.contains(id.as_str()));
        let awaiting = self.awaiting_replacement.len();
        self.awaiting_replacement
            .retain(|id, _| live.contains(id.as_str()));
        self.checked.expired_unpublished_first += awaiting - self.awaiting_replacement.len();
        for volume in &volumes {
            let observation = self.observe(&volume.target, &mounts);
            let (now, now_system) = (Instant::now(), SystemTime::now());
            // An unpublish may have started meanwhile: only what was seen while kubelet still
            // considered the volume published counts.
            if !self.chaos.is_published(&volume.id) {
                continue;
            }
            self.checked.checks += 1;
            match observation {
                Observation::Valid(certificate) => {
                    renewals_due += usize::from(now_system >= certificate.renew_at);
                    self.seen_certificate(&volume.id, &certificate, now);
                    self.open.remove(&volume.id);
                }
                Observation::Expired(certificate) => {
                    renewals_due += 1;
                    self.seen_certificate(&volume.id, &certificate, now);
                    self.expired(&volume.id, certificate, now, now_system);
                }
                Observation::Broken(kind, detail) => self.violation(&volume.id, kind, detail),
            }
        }
        self.chaos
            .renewals_due
            .store(renewals_due, Ordering::Relaxed);
    }

    fn seen_certificate(&mut self, volume_id: &str, certificate: &Certificate, now: Instant) {
        let previous = self
            .serials
            .insert(volume_id.to_string(), certificate.serial.clone());
        if previous.is_some_and(|serial| serial != certificate.serial) {
            self.checked.renewals += 1;
        }
        if let Some((serial, outage)) = self.awaiting_replacement.get(volume_id)
            && *serial != certificate.serial
        {
            if let Some(end) = self.chaos.outages().get(*outage).and_then(|w| w.end) {
                self.checked
                    .replaced_after_outage
                    .push(now.saturating_duration_since(end));
            }
            self.awaiting_replacement.remove(volume_id);
        }
    }

    /// An expired certificate is excused only while an outage that overlapped its renewal window
    /// (renewal point to notAfter) lasts, and for a short grace after it.
    fn expired(
        &mut self,
        volume_id: &str,
        certificate: Certificate,
        now: Instant,
        now_system: SystemTime,
    ) {
        let as_instant = |at: SystemTime| {
            let ago = now_system.duration_since(at).unwrap_or_default();
            now.checked_sub(ago).unwrap_or(self.started)
        };
        let (renew_at, not_after) = (
            as_instant(certificate.renew_at),
            as_instant(certificate.not_after),
        );
        let excuse = self.chaos.outages().iter().position(|window| {
            window.overlaps(renew_at, not_after)
                && window.end.is_none_or(|end| now <= end + EXPIRY_GRACE)
        });
        match excuse {
            Some(outage) => {
                if !self.awaiting_replacement.contains_key(volume_id) {
                    self.checked.expired_excused += 1;
                }
                self.awaiting_replacement
                    .insert(volume_id.to_string(), (certificate.serial, outage));
                self.open.remove(volume_id);
            }
            None => {
                let detail = format!(
                    "{volume_id}: serial {} expired {:.1} s ago",
                    certificate.serial,
                    now.saturating_duration_since(not_after).as_secs_f64()
                );
                self.violation(volume_id, EXPIRED, detail);
            }
        }
    }

    fn violation(&mut self, volume_id: &str, kind: &'static str, detail: String) {
        let fresh = self
            .open
            .entry(volume_id.to_string())
            .or_default()
            .insert(kind);
        let at = self.started.elapsed().as_secs_f64();
        self.checked
            .record(kind, fresh, format!("+{at:.1} s {detail}"));
    }

    /// Mounted, then the files read through one resolution of `..data`.
    fn observe(&mut self, target: &Path, mounts: &HashSet<PathBuf>) -> Observation {
        if !mounts.contains(target) {
            return Observation::Broken(
                LOST_MOUNT,
                format!("{} is not a mount point", target.display()),
            );
        }
        match read_set(target) {
            Ok(observation) => observation,
            Err((resolved, reason)) => {
                let now_resolves = std::fs::read_link(target.join("..data")).ok();
                if resolved.is_some() && now_resolves.is_some() && now_resolves != resolved {
                    self.checked.swap_races += 1;
                    return read_set(target)
                        .unwrap_or_else(|(_, reason)| Observation::Broken(UNREADABLE, reason));
                }
                Observation::Broken(UNREADABLE, reason)
            }
        }
    }
}

/// Reads key and certificate from the set `..data` points at, resolved once (as a pod that opens
/// both files through one directory would); on failure, what it resolved to and why.
fn read_set(target: &Path) -> Result<Observation, (Option<PathBuf>, String)> {
    let set = std::fs::read_link(target.join("..data"))
        .map_err(|e| (None, format!("{}/..data: {e}", target.display())))?;
    let dir = target.join(&set);
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        (
            Some(set.clone()),
            format!("{}: {what}: {error}", dir.display()),
        )
    };
    let key = std::fs::read_to_string(dir.join("tls.key")).map_err(|e| failed("tls.key", &e))?;
    let chain = std::fs::read_to_string(dir.join("tls.crt")).map_err(|e| failed("tls.crt", &e))?;
    let leaf = inspect_leaf(&chain).map_err(|e| failed("tls.crt", &e))?;
    let matches = key_matches_certificate(&key, &chain).map_err(|e| failed("tls.key", &e))?;
    if !matches {
        return Ok(Observation::Broken(
            MISMATCH,
            format!(
                "{}: tls.key is not the key of serial {}",
                dir.display(),
                leaf.serial
            ),
        ));
    }
    // cert-manager's rule without renew-before: renew when a third of the lifetime is left.
    let lifetime = leaf.lifetime();
    let certificate = Certificate {
        serial: leaf.serial,
        not_after: leaf.not_after,
        renew_at: leaf.not_after - lifetime / 3,
    };
    Ok(if SystemTime::now() >= certificate.not_after {
        Observation::Expired(certificate)
    } else {
        Observation::Valid(certificate)
    })
}

// ---------------------------------------------------------------------------------------------
// The end: teardown with the driver up, leftovers, the driver's log

#[derive(Default)]
struct Teardown {
    volumes: usize,
    took: Duration,
    failed: Vec<String>,
}

/// kubelet deletes every pod: each volume it published, or tried to, is unpublished.
async fn teardown(chaos: &Chaos) -> Teardown {
    let started = Instant::now();
    let mut volumes: Vec<Volume> = std::mem::take(&mut *chaos.published.lock())
        .into_values()
        .collect();
    {
        let mut tally = chaos.tally();
        volumes.extend(tally.never_published.iter().cloned());
        volumes.append(&mut tally.never_unpublished);
    }
    let mut outcome = Teardown {
        volumes: volumes.len(),
        ..Teardown::default()
    };
    for volume in &volumes {
        let mut result = Err(String::new());
        for _ in 0..10 {
            let mut node = chaos.client().node;
            result =
                with_kubelet_timeout(node.node_unpublish_volume(unpublish_request(volume))).await;
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(KUBELET_RETRY_PAUSE).await;
        }
        if let Err(code) = result {
            outcome.failed.push(format!("{}: {code}", volume.id));
        }
    }
    outcome.took = started.elapsed();
    outcome
}

/// Anything a finished node should not have: mounts, volume records, target directories.
fn leftovers(node: &Node) -> Vec<String> {
    let mut found: Vec<String> = node
        .mounts()
        .into_iter()
        .map(|mount| format!("mount {}", mount.display()))
        .collect();
    if let Ok(records) = std::fs::read_dir(node.data_root().join("volumes")) {
        found.extend(
            records
                .flatten()
                .map(|record| format!("record {}", record.path().display())),
        );
    }
    if let Ok(pods) = std::fs::read_dir(node.pods()) {
        for pod in pods.flatten() {
            let target = pod.path().join("volumes/kubernetes.io~csi/tls/mount");
            if std::fs::symlink_metadata(&target).is_ok() {
                found.push(format!("target {}", target.display()));
            }
        }
    }
    found.sort();
    found
}

#[derive(Default)]
struct LogScan {
    panics: Vec<String>,
    errors: usize,
    warnings: usize,
}

fn scan_log(path: &Path) -> LogScan {
    let mut scan = LogScan::default();
    let Ok(file) = File::open(path) else {
        return scan;
    };
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        if line.contains("panicked") {
            scan.panics.push(line);
        } else if line.contains(" ERROR ") {
            scan.errors += 1;
        } else if line.contains(" WARN ") {
            scan.warnings += 1;
        }
    }
    scan
}

// ---------------------------------------------------------------------------------------------
// Report

struct Report<'a> {
    options: Options,
    node: &'a Node,
    chaos_took: Duration,
    tally: &'a Tally,
    outages: &'a [Window],
    chaos_started: Instant,
    /// The same moment as a UTC time, to line offsets up with the driver log's timestamps.
    chaos_started_utc: time::OffsetDateTime,
    checked: &'a Checked,
    teardown: &'a Teardown,
    leftovers: &'a [String],
    requests_left: usize,
    log: &'a LogScan,
    driver_starts: usize,
}

fn ms(duration: Duration) -> String {
    if duration >= Duration::from_secs(1) {
        format!("{:.2} s", duration.as_secs_f64())
    } else {
        format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
    }
}

/// `p50 …, p90 …, max …` of unsorted samples.
fn spread(mut samples: Vec<Duration>) -> String {
    if samples.is_empty() {
        return "none".into();
    }
    samples.sort_unstable();
    format!(
        "p50 {}, p90 {}, max {}",
        ms(common::percentile(&samples, 50.0)),
        ms(common::percentile(&samples, 90.0)),
        ms(*samples.last().unwrap_or(&Duration::ZERO))
    )
}

fn counts(map: &BTreeMap<String, usize>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(code, count)| format!("{code} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Report<'_> {
    fn print(&self) {
        self.header();
        self.publishes();
        self.unpublishes();
        self.faults();
        self.violations();
        self.end();
    }

    /// `+12.3 s` from the start of the chaos.
    fn at(&self, instant: Instant) -> String {
        let offset = instant
            .checked_duration_since(self.chaos_started)
            .map_or(0.0, |d| d.as_secs_f64());
        format!("+{offset:.1} s")
    }

    fn header(&self) {
        let options = &self.options;
        println!(
            "chaos: the real binary (cert-manager backend, test API server) under churn, kill -9 and API outages"
        );
        println!(
            "  machine  {} ({} cores), Linux {}",
            common::cpu_model(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            common::kernel_release()
        );
        println!(
            "  run      {:.1} min of chaos from {} (+0 s below), {} live volumes, seed {} (--seed {} repeats the draws)",
            self.chaos_took.as_secs_f64() / 60.0,
            self.chaos_started_utc
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            options.volumes,
            options.seed,
            options.seed
        );
        println!(
            "  node     {} (real tmpfs mounts); driver log {}{}",
            self.node.dir.display(),
            self.node.log().display(),
            if options.keep {
                ""
            } else {
                " (removed; --keep keeps it)"
            }
        );
        println!(
            "  volumes  {LIFETIME} ECDSA certificates renewed at 2/3; one pod replaced every {:.1}–{:.1} s",
            *CHURN_EVERY_MS.start() as f64 / 1000.0,
            *CHURN_EVERY_MS.end() as f64 / 1000.0
        );
    }

    fn publishes(&self) {
        let tally = self.tally;
        let retries: u32 = tally
            .publishes
            .iter()
            .map(|(_, attempts)| attempts - 1)
            .sum();
        let retried = tally.publishes.iter().filter(|(_, a)| *a > 1).count();
        println!(
            "\npublishes    {} succeeded ({} after retries, {} retries in all); {} never succeeded",
            tally.publishes.len(),
            retried,
            retries,
            tally.never_published.len()
        );
        println!(
            "  time to success       {}",
            spread(tally.publishes.iter().map(|(took, _)| *took).collect())
        );
        println!("  failed attempts       {}", counts(&tally.publish_errors));
    }

    /// The outage an unpublish overlapped, if any.
    fn outage_of(&self, unpublished: &Unpublished) -> Option<usize> {
        self.outages
            .iter()
            .position(|window| window.overlaps(unpublished.started, unpublished.ended))
    }

    fn unpublishes(&self) {
        let tally = self.tally;
        let latency = |u: &&Unpublished| u.ended - u.started;
        let (during, outside): (Vec<&Unpublished>, Vec<&Unpublished>) = tally
            .unpublishes
            .iter()
            .partition(|u| self.outage_of(u).is_some());
        let retries: u32 = tally.unpublishes.iter().map(|u| u.attempts - 1).sum();
        println!(
            "unpublishes  {} ({} retries); {} never succeeded during the run",
            tally.unpublishes.len(),
            retries,
            tally.never_unpublished.len()
        );
        println!(
            "  all                   {}",
            spread(tally.unpublishes.iter().map(|u| latency(&u)).collect())
        );
        println!(
            "  during outages ({:>3})  {}",
            during.len(),
            spread(during.iter().map(latency).collect())
        );
        println!(
            "  outside outages ({:>3}) {}",
            outside.len(),
            spread(outside.iter().map(latency).collect())
        );
        println!(
            "  failed attempts       {}",
            counts(&tally.unpublish_errors)
        );
        let mut slowest: Vec<&Unpublished> = tally.unpublishes.iter().collect();
        slowest.sort_by_key(|u| std::cmp::Reverse(latency(u)));
        for unpublished in slowest.into_iter().take(3) {
            let context = match self.outage_of(unpublished) {
                Some(index) => {
                    let window = self.outages[index];
                    let into = unpublished.started.checked_duration_since(window.start);
                    format!(
                        "outage {} ({})",
                        index + 1,
                        into.map_or("started before it".into(), |d| format!(
                            "{:.1} s into it",
                            d.as_secs_f64()
                        ))
                    )
                }
                None => "no outage".into(),
            };
            println!(
                "  slow: {} {} at {}, {} attempts, {context}",
                unpublished.volume_id,
                ms(latency(&unpublished)),
                self.at(unpublished.started),
                unpublished.attempts
            );
        }
    }

    fn faults(&self) {
        let tally = self.tally;
        println!(
            "renewals     {} (certificate serial changes seen by the checker)",
            self.checked.renewals
        );
        println!(
            "kills        {} (kill -9): {} with a publish in flight, {} with an unpublish in flight, {} with a renewal due",
            tally.kills,
            tally.kills_mid_publish,
            tally.kills_mid_unpublish,
            tally.kills_renewal_due
        );
        let restarts = |in_outage: bool| {
            spread(
                tally
                    .restarts
                    .iter()
                    .filter(|r| r.during_outage == in_outage)
                    .map(|r| r.took)
                    .collect(),
            )
        };
        println!(
            "  restart → serving (Probe ready), API up: {}",
            restarts(false)
        );
        println!(
            "  restart → serving, during outages ({}): {}",
            tally.restarts.iter().filter(|r| r.during_outage).count(),
            restarts(true)
        );
        let windows: Vec<String> = self
            .outages
            .iter()
            .map(|window| {
                let end = window.end.unwrap_or(window.start);
                format!(
                    "{}–{} ({:.1} s)",
                    self.at(window.start),
                    self.at(end),
                    (end - window.start).as_secs_f64()
                )
            })
            .collect();
        println!(
            "outages      {}: {}",
            self.outages.len(),
            windows.join(", ")
        );
        println!(
            "API faults   {} watch drops, {} CertificateRequest creates failed with 500",
            tally.watch_drops, tally.injected_500s
        );
    }

    fn violations(&self) {
        let checked = self.checked;
        println!(
            "checks       {} volume checks in {} rounds every {} ms ({} reads raced a ..data swap and were read again)",
            checked.checks,
            checked.rounds,
            CHECK_EVERY.as_millis(),
            checked.swap_races
        );
        println!("violations   incidents (observations)");
        let mut incidents = checked.incidents.clone();
        let mut examples = checked.examples.clone();
        let never: Vec<String> = self
            .tally
            .never_published
            .iter()
            .map(|v| v.id.clone())
            .collect();
        incidents.insert(NEVER_PUBLISHED, never.len());
        examples.insert(NEVER_PUBLISHED, never);
        incidents.insert(LEFTOVERS, self.leftovers.len());
        examples.insert(LEFTOVERS, self.leftovers.to_vec());
        for kind in VIOLATION_KINDS {
            let observed = checked
                .observations
                .get(kind)
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            println!(
                "  {kind:<27} {}{observed}",
                incidents.get(kind).copied().unwrap_or(0)
            );
            for example in examples
                .get(kind)
                .into_iter()
                .flatten()
                .take(EXAMPLES_PER_KIND)
            {
                println!("      {example}");
            }
        }
        let mut replaced = checked.replaced_after_outage.clone();
        replaced.sort_unstable();
        println!(
            "expired in outages  {} certificates (allowed); {} replaced after the API came back{}; {} unpublished first",
            checked.expired_excused,
            replaced.len(),
            match (replaced.first(), replaced.last()) {
                (Some(first), Some(last)) => format!(", min {}, max {}", ms(*first), ms(*last)),
                _ => String::new(),
            },
            checked.expired_unpublished_first
        );
    }

    fn end(&self) {
        let teardown = self.teardown;
        println!(
            "teardown     {} volumes unpublished with the driver up in {}{}; {} CertificateRequests left in the API",
            teardown.volumes,
            ms(teardown.took),
            if teardown.failed.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} failed: {})",
                    teardown.failed.len(),
                    teardown.failed.join(", ")
                )
            },
            self.requests_left
        );
        println!(
            "driver log   {} starts; {} lines with \"panicked\", {} ERROR, {} WARN",
            self.driver_starts,
            self.log.panics.len(),
            self.log.errors,
            self.log.warnings
        );
        for line in self.log.panics.iter().take(EXAMPLES_PER_KIND) {
            println!("      {line}");
        }
    }
}
