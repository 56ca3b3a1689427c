//! `cargo bench --bench publish`: how fast the driver publishes volumes, and how that compares
//! with what the building blocks of one publish cost on this machine.
//!
//! A program, not a test: it prints figures and judges only one thing, that no mount is left
//! behind. It starts the driver in-process on the embedded CA (real tmpfs mounts when run as root),
//! plays kubelet over the real unix socket, and times:
//!
//! 1. the primitives one publish is made of (key, CSR, signature, tmpfs mount + umount, files),
//!    one operation at a time on one thread;
//! 2. `NodePublishVolume` at the client with 1, 32 and 256 calls in flight, over a fresh
//!    connection per call (what kubelet's CSI client does), one shared connection, and a small
//!    pool of connections;
//! 3. the same publishes on the volume manager directly, which separates gRPC from the rest.
//!
//! One file (over 800 lines) because it is one program whose sections share its types.

mod common;

use std::collections::HashMap;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cert_manager_csi_driver::attributes::{self, KeyEncoding, VolumeAttributes, key};
use cert_manager_csi_driver::certificate;
use cert_manager_csi_driver::csi::client::{self, CsiClient};
use cert_manager_csi_driver::csi::proto::{GetPluginInfoRequest, NodeUnpublishVolumeRequest};
use cert_manager_csi_driver::demo::{self, SamplePod};
use cert_manager_csi_driver::driver::{self, MountMode};
use cert_manager_csi_driver::issuer::IssueOrder;
use cert_manager_csi_driver::issuer::local_ca::LocalCa;
use cert_manager_csi_driver::keys::{self, PrivateKey};
use cert_manager_csi_driver::volume::files::{self, FileToWrite};
use cert_manager_csi_driver::volume::mount::{Mounter, PlainDirectoryMounter, TmpfsMounter};
use cert_manager_csi_driver::volume::mountinfo;
use cert_manager_csi_driver::volume::state::{StateStore, VolumeRecord};
use cert_manager_csi_driver::volume::{PublishCall, VolumeId, VolumeManager};
use tokio::time::Instant;

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// ECDSA P-256: the key the benchmark is specified for (the driver's default is RSA 2048).
const KEY_OVERRIDES: [(&str, &str); 2] = [(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "256")];

/// The levels the verdicts compare: latency alone, throughput under load.
const SINGLE: usize = 1;
const MANY: usize = 256;
/// Calls in flight, and measured rounds at that level: ≥ 200 samples at 1 for a usable p99,
/// several rounds at 32 and 256 so one slow round does not decide the figure.
const LEVELS: [(usize, usize); 3] = [(SINGLE, 200), (32, 10), (MANY, 4)];
/// Connections of the pooled transport: enough to show whether one connection is a bottleneck.
const POOL_CONNECTIONS: usize = 4;

/// Iterations of each primitive. Cheap operations get more, so their p50 is stable.
const CRYPTO_ITERATIONS: usize = 2000;
const MOUNT_ITERATIONS: usize = 500;
const FILE_ITERATIONS: usize = 1000;
/// Distinct key/chain pairs cycled through by the file-write primitive, so contents vary.
const DISTINCT_FILE_SETS: usize = 16;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("\nbenchmark failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything; `Ok(false)` when mounts were left behind.
fn run() -> BenchResult<bool> {
    let started = Instant::now();
    let machine = Machine::detect();
    let mount_mode = choose_mount_mode();
    // In the system temp dir, so TMPDIR picks the filesystem kubelet's pod directories and the
    // driver's data root live on.
    let work = tempfile::Builder::new().prefix("cm-csi-bench-").tempdir()?;
    // mountinfo lists canonical paths; compare against the same form.
    let root = work.path().canonicalize()?;
    print_header(&machine, mount_mode, &root);

    let outcome = measure_everything(&root, mount_mode);
    if let Ok((primitives, publishes)) = &outcome {
        print_primitives(primitives);
        print_publishes(publishes);
        print_verdicts(&machine, primitives, &publishes.series);
    }
    // Whatever happened above, nothing may stay mounted under the throwaway directory.
    let clean = report_leftover_mounts(&root)?;
    outcome?;
    println!("finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(clean)
}

fn measure_everything(root: &Path, mount_mode: MountMode) -> BenchResult<(Primitives, Publishes)> {
    let primitives = measure_primitives(root, mount_mode)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Orchestrated from a runtime worker rather than the blocking main thread, so a call task
    // spawned at one in flight starts on that worker instead of paying a cross-thread wake-up
    // that belongs to the harness, not the driver.
    let root = root.to_path_buf();
    let publishes = runtime.block_on(async move {
        tokio::spawn(async move { measure_publishes(&root, mount_mode).await }).await?
    })?;
    Ok((primitives, publishes))
}

// ---------------------------------------------------------------------------------------------
// Machine and set-up

struct Machine {
    cpu_model: String,
    cores: usize,
}

impl Machine {
    fn detect() -> Machine {
        let cpu_model = common::cpu_model();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Machine { cpu_model, cores }
    }
}

fn choose_mount_mode() -> MountMode {
    if rustix::process::geteuid().is_root() {
        MountMode::Tmpfs
    } else {
        MountMode::PlainDirectories
    }
}

fn mounter_for(mode: MountMode) -> Box<dyn Mounter> {
    match mode {
        MountMode::Tmpfs => Box::new(TmpfsMounter),
        MountMode::PlainDirectories => Box::new(PlainDirectoryMounter),
    }
}

fn print_header(machine: &Machine, mount_mode: MountMode, root: &Path) {
    println!("cert-manager CSI driver: NodePublishVolume benchmark");
    println!("  cpu        {}", machine.cpu_model);
    println!(
        "  cores      {} (std::thread::available_parallelism)",
        machine.cores
    );
    match mount_mode {
        MountMode::Tmpfs => println!("  volumes    one real tmpfs per volume (running as root)"),
        MountMode::PlainDirectories => println!(
            "  volumes    WARNING: not root, so plain directories without mounts; the mount\n             \
             figures below are zero and the publish figures understate the real cost"
        ),
    }
    println!("  keys       ECDSA P-256 (PKCS#8), signed by the embedded CA");
    println!("  work dir   {} (TMPDIR moves it)", root.display());
    println!("  its fs     {}", filesystem_of(root));
}

/// The filesystem `path` lives on, as mountinfo names it. An ext4 without a journal is flagged:
/// there, creating an inode checks every inode deleted in the last minutes one by one, so the
/// driver's per-volume directory and record file get slower with any recent churn on the disk.
fn filesystem_of(path: &Path) -> String {
    let Ok(entries) = mountinfo::read_current() else {
        return "filesystem unknown".into();
    };
    let Some(entry) = entries
        .iter()
        .filter(|entry| path.starts_with(&entry.mount_point))
        .max_by_key(|entry| entry.mount_point.components().count())
    else {
        return "filesystem unknown".into();
    };
    let device = entry.source.trim_start_matches("/dev/");
    let journaled = fs::read_dir("/proc/fs/jbd2").is_ok_and(|journals| {
        journals.flatten().any(|j| {
            j.file_name()
                .to_string_lossy()
                .starts_with(&format!("{device}-"))
        })
    });
    if entry.fs_type == "ext4" && !journaled {
        format!(
            "ext4 on {}, no journal: creating an inode skips every inode deleted in the last\n\
             {:13}minutes, so figures depend on recent file churn (TMPDIR=/dev/shm avoids it)",
            entry.source, ""
        )
    } else if entry.source == entry.fs_type {
        entry.fs_type.clone()
    } else {
        format!("{} on {}", entry.fs_type, entry.source)
    }
}

/// A volume context as kubelet sends it for a fresh sample pod, with the benchmark's key.
fn sample_context(pod_name: &str) -> HashMap<String, String> {
    demo::sample_volume_context(&SamplePod::new(pod_name), &KEY_OVERRIDES)
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Durations of one operation, one per run.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    /// Runs `op` and records how long it took.
    fn time<T>(&mut self, op: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let output = op();
        self.0.push(started.elapsed());
        output
    }

    fn summary(&self) -> Summary {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let total: Duration = sorted.iter().sum();
        Summary {
            count: sorted.len(),
            p50: common::percentile(&sorted, 50.0),
            p99: common::percentile(&sorted, 99.0),
            max: sorted.last().copied().unwrap_or_default(),
            mean: total / u32::try_from(sorted.len().max(1)).unwrap_or(u32::MAX),
        }
    }
}

#[derive(Clone, Copy)]
struct Summary {
    count: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    mean: Duration,
}

/// A duration in the unit that keeps it readable.
fn human(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.1} µs")
    } else if micros < 1e6 {
        format!("{:.3} ms", micros / 1e3)
    } else {
        format!("{:.3} s", micros / 1e6)
    }
}

// ---------------------------------------------------------------------------------------------
// Primitives: each step of a publish alone, one at a time on this thread

struct Primitive {
    name: &'static str,
    summary: Summary,
    note: String,
}

struct Primitives {
    /// The steps the ratio and the throughput bound are built from.
    core: Vec<Primitive>,
    /// Other steps a publish takes, shown to explain the overhead beyond the core.
    other: Vec<Primitive>,
}

impl Primitives {
    fn sum_p50(&self) -> Duration {
        self.core.iter().map(|p| p.summary.p50).sum()
    }

    fn sum_mean(&self) -> Duration {
        self.core.iter().map(|p| p.summary.mean).sum()
    }
}

fn primitive(name: &'static str, samples: &Samples) -> Primitive {
    Primitive {
        name,
        summary: samples.summary(),
        note: String::new(),
    }
}

fn measure_primitives(root: &Path, mount_mode: MountMode) -> BenchResult<Primitives> {
    println!("\nmeasuring the primitives...");
    let context = sample_context("bench-primitives");
    let request = attributes::parse_volume_context(&context)?;
    let ca = LocalCa::load_or_create(&root.join("primitive-ca"))?;
    let mounter = mounter_for(mount_mode);

    let (keygen, keys) = time_key_generation(&request)?;
    let (csr, csr_pem) = time_csr(&request, &keys[0])?;
    let (sign, chains) = time_signing(&ca, &request, &csr_pem)?;
    let mount = time_mount_umount(root, mounter.as_ref())?;
    let key_pems = keys
        .iter()
        .take(DISTINCT_FILE_SETS)
        .map(|key| key.to_pem(KeyEncoding::Pkcs8).map(|pem| pem.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let writes = time_file_writes(root, mounter.as_ref(), &key_pems, &chains, ca.ca_pem())?;

    let core = vec![
        primitive("key generation (ECDSA P-256)", &keygen),
        primitive("CSR build + sign (keys::build_csr)", &csr),
        primitive("certificate signing (LocalCa::sign)", &sign),
        mount,
        primitive("file set write (key, chain, CA) on tmpfs", &writes),
    ];
    let other = time_other_steps(root, &context, &keys[0], &chains[0])?;
    Ok(Primitives { core, other })
}

/// Returns the timings and the keys, which later give the file writes real, varying contents.
fn time_key_generation(request: &VolumeAttributes) -> BenchResult<(Samples, Vec<PrivateKey>)> {
    let mut samples = Samples::default();
    let mut generated = Vec::with_capacity(DISTINCT_FILE_SETS);
    for _ in 0..CRYPTO_ITERATIONS {
        let key = samples.time(|| keys::generate(&request.spec.key))?;
        if generated.len() < DISTINCT_FILE_SETS {
            generated.push(key);
        }
    }
    Ok((samples, generated))
}

fn time_csr(request: &VolumeAttributes, key: &PrivateKey) -> BenchResult<(Samples, String)> {
    let mut samples = Samples::default();
    let mut csr_pem = String::new();
    for _ in 0..CRYPTO_ITERATIONS {
        csr_pem = samples.time(|| keys::build_csr(&request.spec, key))?;
    }
    Ok((samples, csr_pem))
}

/// Returns the timings and a few signed chains for the file writes.
fn time_signing(
    ca: &LocalCa,
    request: &VolumeAttributes,
    csr_pem: &str,
) -> BenchResult<(Samples, Vec<String>)> {
    let spec = &request.spec;
    let issue = IssueOrder {
        volume_id: "bench-primitive".into(),
        pod: request.pod.clone(),
        issuer: spec.issuer.clone(),
        csr_pem: csr_pem.to_string(),
        duration: spec.duration,
        is_ca: spec.is_ca,
        usages: spec.usages.clone(),
        annotations: spec.annotations.clone(),
        token: None,
        resuming: false,
    };
    let mut samples = Samples::default();
    let mut chains = Vec::with_capacity(DISTINCT_FILE_SETS);
    for _ in 0..CRYPTO_ITERATIONS {
        let issued = samples.time(|| ca.sign(&issue))?;
        if chains.len() < DISTINCT_FILE_SETS {
            chains.push(issued.chain_pem);
        }
    }
    Ok((samples, chains))
}

/// Mount + umount of a fresh directory, as one primitive; the two halves go into the note.
fn time_mount_umount(root: &Path, mounter: &dyn Mounter) -> BenchResult<Primitive> {
    let base = root.join("primitive-mounts");
    fs::create_dir_all(&base)?;
    let (mut mount, mut umount, mut both) =
        (Samples::default(), Samples::default(), Samples::default());
    for i in 0..MOUNT_ITERATIONS {
        let dir = base.join(i.to_string());
        fs::create_dir(&dir)?;
        mount.time(|| mounter.mount_tmpfs(&dir, common::VOLUME_SIZE_BYTES))?;
        umount.time(|| mounter.unmount(&dir))?;
        let pair = mount.0[i] + umount.0[i];
        both.0.push(pair);
        fs::remove_dir(&dir)?;
    }
    let mut result = primitive("tmpfs mount + umount", &both);
    result.note = format!(
        "mount p50 {}, umount p50 {}",
        human(mount.summary().p50),
        human(umount.summary().p50)
    );
    Ok(result)
}

/// `write_file_set` into a fresh directory on one tmpfs each time, as the first write of a
/// publish does; the contents cycle through distinct real keys and chains.
fn time_file_writes(
    root: &Path,
    mounter: &dyn Mounter,
    key_pems: &[String],
    chains: &[String],
    ca_pem: &str,
) -> BenchResult<Samples> {
    let volume = root.join("primitive-files");
    fs::create_dir(&volume)?;
    mounter.mount_tmpfs(&volume, 64 * common::VOLUME_SIZE_BYTES)?;
    let written = write_file_sets(&volume, key_pems, chains, ca_pem);
    // Unmount even when a write failed, so the tmpfs is not left behind.
    let unmounted = mounter.unmount(&volume);
    let samples = written?;
    unmounted?;
    fs::remove_dir(&volume)?;
    Ok(samples)
}

fn write_file_sets(
    volume: &Path,
    key_pems: &[String],
    chains: &[String],
    ca_pem: &str,
) -> BenchResult<Samples> {
    let mut samples = Samples::default();
    for i in 0..FILE_ITERATIONS {
        let dir = volume.join(i.to_string());
        fs::create_dir(&dir)?;
        let set = [
            FileToWrite {
                name: "tls.key",
                contents: key_pems[i % key_pems.len()].as_bytes(),
                secret: true,
            },
            FileToWrite {
                name: "tls.crt",
                contents: chains[i % chains.len()].as_bytes(),
                secret: false,
            },
            FileToWrite {
                name: "ca.crt",
                contents: ca_pem.as_bytes(),
                secret: false,
            },
        ];
        let outcome =
            samples.time(|| files::write_file_set(&dir, &set, None, files::FileModes::Driver))?;
        if outcome != files::WriteOutcome::Written {
            return Err("file-write primitive found unchanged contents; it must write".into());
        }
        fs::remove_dir_all(&dir)?;
    }
    Ok(samples)
}

/// The steps of a publish that are not in the core list, each alone, to locate the overhead.
fn time_other_steps(
    root: &Path,
    context: &HashMap<String, String>,
    key: &PrivateKey,
    chain: &str,
) -> BenchResult<Vec<Primitive>> {
    let (mut parse, mut record, mut mkdir, mut inspect, mut pem) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
    );
    let store = StateStore::open(&root.join("primitive-state"))?;
    let dirs = root.join("primitive-targets");
    fs::create_dir(&dirs)?;
    for i in 0..FILE_ITERATIONS {
        parse.time(|| attributes::parse_volume_context(context))?;
        let id = format!("csi-primitive-{i}");
        let target = dirs.join(&id);
        let volume_record = VolumeRecord::new(&id, &target, context, None);
        record.time(|| store.save(&volume_record))?;
        mkdir.time(|| fs::create_dir(&target))?;
        inspect.time(|| certificate::inspect_leaf(chain))?;
        pem.time(|| key.to_pem(KeyEncoding::Pkcs8))?;
        store.remove(&id)?;
        fs::remove_dir(&target)?;
    }
    Ok(vec![
        primitive("parse volume context", &parse),
        primitive("save volume record (JSON, data root)", &record),
        primitive("create target directory", &mkdir),
        primitive("inspect issued certificate", &inspect),
        primitive("private key to PEM", &pem),
    ])
}

fn print_primitives(primitives: &Primitives) {
    println!("\nPrimitives, one at a time on one thread");
    println!(
        "  {:<44} {:>6} {:>11} {:>11}",
        "operation", "iters", "p50", "mean"
    );
    for p in &primitives.core {
        print_primitive(p);
    }
    println!(
        "  {:<44} {:>6} {:>11} {:>11}",
        "sum (the per-volume floor; umount included)",
        "",
        human(primitives.sum_p50()),
        human(primitives.sum_mean())
    );
    println!("  other steps of a publish, not in the sum");
    for p in &primitives.other {
        print_primitive(p);
    }
}

fn print_primitive(p: &Primitive) {
    let line = format!(
        "  {:<44} {:>6} {:>11} {:>11}  {}",
        p.name,
        p.summary.count,
        human(p.summary.p50),
        human(p.summary.mean),
        p.note
    );
    println!("{}", line.trim_end());
}

// ---------------------------------------------------------------------------------------------
// Publishes over the CSI socket

/// How the benchmark reaches the driver.
enum Transport {
    /// A fresh connection per call, closed after it: kubelet's CSI client dials for every call.
    ConnectionPerCall(PathBuf),
    /// Calls spread round-robin over connections opened once (one = a single shared connection).
    Pool(Vec<CsiClient>),
    /// No gRPC at all: the volume manager called in-process.
    Direct(Arc<VolumeManager>),
}

impl Transport {
    fn label(&self) -> String {
        match self {
            Transport::ConnectionPerCall(_) => "conn per call (kubelet)".into(),
            Transport::Pool(clients) if clients.len() == 1 => "1 shared connection".into(),
            Transport::Pool(clients) => format!("{} connections", clients.len()),
            Transport::Direct(_) => "no gRPC (manager)".into(),
        }
    }

    /// The connection a gRPC call goes over (opened now for the kubelet-like transport).
    async fn client(&self, slot: usize) -> BenchResult<CsiClient> {
        match self {
            Transport::ConnectionPerCall(socket) => Ok(client::connect(socket).await?),
            Transport::Pool(clients) => Ok(clients[slot % clients.len()].clone()),
            Transport::Direct(_) => Err("the in-process transport has no gRPC client".into()),
        }
    }

    async fn publish(&self, slot: usize, volume: &Volume) -> BenchResult<()> {
        let request = demo::publish_request(&volume.id, &volume.target, volume.context.clone());
        match self {
            Transport::Direct(manager) => {
                manager
                    .publish(PublishCall {
                        volume_id: VolumeId::new(request.volume_id)?,
                        target_path: request.target_path.into(),
                        volume_context: request.volume_context,
                        volume_mount_group: None,
                    })
                    .await?;
            }
            grpc => {
                let mut csi = grpc.client(slot).await?;
                csi.node.node_publish_volume(request).await?;
            }
        }
        Ok(())
    }

    async fn unpublish(&self, slot: usize, volume: &Volume) -> BenchResult<()> {
        match self {
            Transport::Direct(manager) => manager.unpublish(&volume.id, &volume.target).await?,
            grpc => {
                let mut csi = grpc.client(slot).await?;
                csi.node
                    .node_unpublish_volume(NodeUnpublishVolumeRequest {
                        volume_id: volume.id.clone(),
                        target_path: volume.target.display().to_string(),
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

/// One volume of a round: its own pod, volume id and target (whose parent exists).
struct Volume {
    id: String,
    target: PathBuf,
    context: HashMap<String, String>,
}

/// Volume ids are unique across the whole run, as kubelet's are across pods.
static NEXT_VOLUME: AtomicU64 = AtomicU64::new(0);

/// A fresh pod and volume id per volume. The pod directories are kept per slot across rounds
/// rather than made per pod: creating and deleting thousands of directories would add the
/// benchmark's own inode churn to the filesystem the driver's target directories live on.
fn prepare_volumes(root: &Path, count: usize) -> BenchResult<Vec<Volume>> {
    (0..count)
        .map(|slot| {
            let n = NEXT_VOLUME.fetch_add(1, Ordering::Relaxed);
            let pod = SamplePod::new(&format!("bench-pod-{n}"));
            let parent = root
                .join("kubelet/pods")
                .join(format!("slot-{slot}"))
                .join("volumes/kubernetes.io~csi/tls");
            fs::create_dir_all(&parent)?;
            Ok(Volume {
                id: format!("csi-bench-{n:06}"),
                target: parent.join("mount"),
                context: demo::sample_volume_context(&pod, &KEY_OVERRIDES),
            })
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Call {
    Publish,
    Unpublish,
}

/// Launches `call` for every volume at once, one task per volume, and returns each call's time
/// from the common launch instant to its completion. Measuring from the launch rather than from
/// when a task first runs keeps the time a call waits for a worker thread in its latency, as a
/// kubelet issuing all the calls would see it.
async fn all_in_flight(
    transport: &Arc<Transport>,
    volumes: &Arc<Vec<Volume>>,
    call: Call,
) -> BenchResult<Vec<Duration>> {
    let launch = Instant::now();
    let tasks: Vec<_> = (0..volumes.len())
        .map(|slot| {
            let (transport, volumes) = (Arc::clone(transport), Arc::clone(volumes));
            tokio::spawn(async move {
                let volume = &volumes[slot];
                match call {
                    Call::Publish => transport.publish(slot, volume).await?,
                    Call::Unpublish => transport.unpublish(slot, volume).await?,
                }
                Ok::<_, Box<dyn Error + Send + Sync>>(launch.elapsed())
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(latency)) => latencies.push(latency),
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(join) => {
                first_error.get_or_insert(join.to_string().into());
            }
        }
    }
    first_error.map_or(Ok(latencies), Err)
}

/// CPU time consumed so far by this process's live threads (driver and client alike), from
/// the scheduler's per-thread nanosecond counters. Exited threads drop out, which is harmless
/// here: the runtime's threads outlive every round.
fn process_cpu_time() -> Duration {
    // The kernel adds a running thread's time to its counter only at a switch or a tick; a
    // yield brings this thread's own counter up to date before it is read.
    std::thread::yield_now();
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// The process CPU time, and what reading it cost. The cost of the reading lands in the window
/// it opens, so the caller subtracts it; reading is pure CPU work, so its wall time is its CPU
/// time.
fn cpu_reading() -> (Duration, Duration) {
    let started = Instant::now();
    let cpu = process_cpu_time();
    (cpu, started.elapsed())
}

struct Round {
    publish: Vec<Duration>,
    unpublish: Vec<Duration>,
    /// Launch to the last publish's completion.
    wall: Duration,
    /// CPU time the process spent while the publishes ran.
    cpu: Duration,
}

/// Publishes `volumes` all at once, then unpublishes them all (also after a failed publish, so
/// nothing stays mounted).
async fn run_round(transport: &Arc<Transport>, volumes: Vec<Volume>) -> BenchResult<Round> {
    let volumes = Arc::new(volumes);
    let (cpu_before, reading_cost) = cpu_reading();
    let published = all_in_flight(transport, &volumes, Call::Publish).await;
    let cpu = process_cpu_time().saturating_sub(cpu_before + reading_cost);
    let unpublished = all_in_flight(transport, &volumes, Call::Unpublish).await;
    let (publish, unpublish) = (published?, unpublished?);
    Ok(Round {
        wall: publish.iter().max().copied().unwrap_or_default(),
        publish,
        unpublish,
        cpu,
    })
}

/// One transport at one level of concurrency.
struct Series {
    transport: String,
    concurrency: usize,
    rounds: usize,
    publish: Summary,
    unpublish: Summary,
    /// Volumes published per second of round wall time, over the measured rounds.
    throughput: f64,
    /// Process CPU time per published volume, client included.
    cpu_per_volume: Duration,
}

async fn run_series(
    transport: &Arc<Transport>,
    root: &Path,
    concurrency: usize,
    rounds: usize,
) -> BenchResult<Series> {
    // Warm-up, not counted: first connections, blocking-pool threads, caches.
    run_round(transport, prepare_volumes(root, concurrency)?).await?;
    let (mut publish, mut unpublish) = (Samples::default(), Samples::default());
    let (mut wall, mut cpu) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let round = run_round(transport, prepare_volumes(root, concurrency)?).await?;
        publish.0.extend(round.publish);
        unpublish.0.extend(round.unpublish);
        wall += round.wall;
        cpu += round.cpu;
    }
    let volumes = rounds * concurrency;
    Ok(Series {
        transport: transport.label(),
        concurrency,
        rounds,
        publish: publish.summary(),
        unpublish: unpublish.summary(),
        throughput: volumes as f64 / wall.as_secs_f64().max(f64::MIN_POSITIVE),
        cpu_per_volume: cpu / u32::try_from(volumes).unwrap_or(u32::MAX),
    })
}

async fn measure_publishes(root: &Path, mount_mode: MountMode) -> BenchResult<Publishes> {
    println!("measuring NodePublishVolume...");
    let running = driver::start(common::driver_config(root, mount_mode)).await?;
    let measured = run_all_series(&running, root).await;
    // Stop the driver even after a failure; the leftover-mount check runs after this.
    running.stop().await?;
    measured
}

/// Everything measured against the running driver.
struct Publishes {
    /// An empty call (GetPluginInfo) over a shared connection: what gRPC alone costs.
    empty_call_shared: Summary,
    /// The same over a fresh connection per call, as kubelet makes them.
    empty_call_fresh: Summary,
    series: Vec<Series>,
}

const EMPTY_CALLS: usize = 500;

/// Times the empty call that bounds what gRPC adds to every publish.
async fn time_empty_calls(socket: &Path, shared: &CsiClient) -> BenchResult<(Summary, Summary)> {
    let (mut on_shared, mut on_fresh) = (Samples::default(), Samples::default());
    for _ in 0..EMPTY_CALLS {
        let started = Instant::now();
        shared
            .identity
            .clone()
            .get_plugin_info(GetPluginInfoRequest {})
            .await?;
        on_shared.0.push(started.elapsed());
        let started = Instant::now();
        let mut fresh = client::connect(socket).await?;
        fresh
            .identity
            .get_plugin_info(GetPluginInfoRequest {})
            .await?;
        on_fresh.0.push(started.elapsed());
    }
    Ok((on_shared.summary(), on_fresh.summary()))
}

async fn run_all_series(running: &driver::RunningDriver, root: &Path) -> BenchResult<Publishes> {
    let socket = running.socket_path().to_path_buf();
    let mut pool = Vec::with_capacity(POOL_CONNECTIONS);
    for _ in 0..POOL_CONNECTIONS {
        pool.push(client::connect(&socket).await?);
    }
    let (empty_call_shared, empty_call_fresh) = time_empty_calls(&socket, &pool[0]).await?;
    let transports = [
        Transport::ConnectionPerCall(socket),
        Transport::Pool(pool[..1].to_vec()),
        Transport::Pool(pool),
        Transport::Direct(Arc::clone(running.manager())),
    ];
    let mut all = Vec::new();
    for transport in transports {
        let transport = Arc::new(transport);
        for (concurrency, rounds) in LEVELS {
            all.push(run_series(&transport, root, concurrency, rounds).await?);
        }
    }
    if running.manager().volume_count() != 0 {
        return Err("the driver still manages volumes after every round was unpublished".into());
    }
    Ok(Publishes {
        empty_call_shared,
        empty_call_fresh,
        series: all,
    })
}

fn print_publishes(publishes: &Publishes) {
    println!(
        "\ngRPC alone: an empty call (GetPluginInfo) takes p50 {} on a shared connection, {} with\n\
         a fresh connection per call ({} calls each)",
        human(publishes.empty_call_shared.p50),
        human(publishes.empty_call_fresh.p50),
        publishes.empty_call_shared.count
    );
    println!("\nNodePublishVolume latency at the client (unpublish not included)");
    println!(
        "  {:<24} {:>9} {:>7} {:>8} {:>11} {:>11} {:>11} {:>8} {:>11}   {:>11}",
        "transport",
        "in flight",
        "rounds",
        "samples",
        "p50",
        "p99",
        "max",
        "vol/s",
        "cpu/vol",
        "unpub p50"
    );
    for s in &publishes.series {
        println!(
            "  {:<24} {:>9} {:>7} {:>8} {:>11} {:>11} {:>11} {:>8.0} {:>11}   {:>11}",
            s.transport,
            s.concurrency,
            s.rounds,
            s.publish.count,
            human(s.publish.p50),
            human(s.publish.p99),
            human(s.publish.max),
            s.throughput,
            human(s.cpu_per_volume),
            human(s.unpublish.p50),
        );
    }
}

fn print_verdicts(machine: &Machine, primitives: &Primitives, series: &[Series]) {
    let sum_p50 = primitives.sum_p50();
    let sum_mean = primitives.sum_mean();
    let bound = machine.cores as f64 / sum_mean.as_secs_f64();
    println!("\nPublish against its primitives");
    println!(
        "  sum of primitive p50s {}; bound at {} cores = {} / {} mean = {:.0} vol/s",
        human(sum_p50),
        machine.cores,
        machine.cores,
        human(sum_mean),
        bound
    );
    println!(
        "  {:<24} {:>18} {:>8}   {:>22} {:>8}",
        "transport",
        format!("p50@{SINGLE} / sum p50"),
        "(≤ 2)",
        format!("vol/s@{MANY} / bound"),
        "(≥ 0.5)"
    );
    let mut transports: Vec<&str> = series.iter().map(|s| s.transport.as_str()).collect();
    transports.dedup();
    for transport in transports {
        let at = |concurrency| {
            series
                .iter()
                .find(|s| s.transport == transport && s.concurrency == concurrency)
        };
        let (Some(single), Some(many)) = (at(SINGLE), at(MANY)) else {
            continue;
        };
        let ratio = single.publish.p50.as_secs_f64() / sum_p50.as_secs_f64();
        let fraction = many.throughput / bound;
        println!(
            "  {:<24} {:>18.2} {:>8}   {:>22.2} {:>8}",
            transport,
            ratio,
            met(ratio <= 2.0),
            fraction,
            met(fraction >= 0.5)
        );
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

// ---------------------------------------------------------------------------------------------
// Clean-up check

/// Prints whether anything is still mounted under `root`, detaches what is, and says whether the
/// run was clean.
fn report_leftover_mounts(root: &Path) -> BenchResult<bool> {
    let mut leftovers: Vec<PathBuf> = mountinfo::read_current()?
        .into_iter()
        .filter(|entry| entry.mount_point.starts_with(root))
        .map(|entry| entry.mount_point)
        .collect();
    if leftovers.is_empty() {
        println!(
            "\nleftover mounts under {} (from /proc/self/mountinfo): none",
            root.display()
        );
        return Ok(true);
    }
    println!(
        "\nLEFTOVER MOUNTS under {}: {} (detaching them now)",
        root.display(),
        leftovers.len()
    );
    // Deepest first, so a mount on top of another goes before the one below it.
    leftovers.sort_by_key(|path| std::cmp::Reverse(path.components().count()));
    for path in leftovers {
        println!("  {}", path.display());
        let _ = rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH);
    }
    Ok(false)
}
