//! The driver's idle footprint, and where it goes: the real binary on the embedded CA, on the
//! cert-manager backend connected to the test API server, and on that backend with the metrics
//! endpoint (the chart's default). For each, RSS right after start and after a few publishes, split
//! by what holds it: the binary's own pages (text, rodata, data), glibc's main heap and per-thread
//! arenas, thread stacks, other anonymous mappings; the threads by name; idle wake-ups.
//!
//! Run: `cargo bench --bench footprint` (as root: the driver mounts tmpfs volumes).
//! `FOOTPRINT_BINARY=path` measures another build (e.g. `cargo xtask static-binary --release`'s,
//! the shipped one, in `target/x86_64-unknown-linux-gnu/dist/`); `FOOTPRINT_VOLUMES=n` publishes n volumes (default 8); `FOOTPRINT_ONLY=cert-manager`
//! (or `local-ca`, `cert-manager+metrics`) runs one configuration. The driver inherits the
//! environment, so `MALLOC_ARENA_MAX=2 cargo bench --bench footprint` shows what that does.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::csi::client::CsiClient;
use cert_manager_csi_driver::csi::proto::NodeUnpublishVolumeRequest;
use cert_manager_csi_driver::demo::{SamplePod, publish_request, sample_volume_context};
use kube_test_server::{Signer, TestApiServer};
use tokio::time::Instant;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const BUILT_BINARY: &str = env!("CARGO_BIN_EXE_cert-manager-csi-driver");
/// After start: the request watch has listed, the socket answers.
const START_SETTLE: Duration = Duration::from_secs(3);
/// After the publishes: longer than tokio's blocking-pool keep-alive (10 s), so the threads that
/// mounted and generated keys have gone, as they would on an idle node.
const IDLE_SETTLE: Duration = Duration::from_secs(12);
const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// glibc's HEAP_MAX_SIZE on 64-bit: every non-main arena heap is a mapping aligned to it.
const ARENA_ALIGN: u64 = 64 * 1024 * 1024;

fn main() -> ExitCode {
    common::block_on(run())
}

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    LocalCa,
    CertManager { metrics: bool },
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::LocalCa => "local-ca",
            Backend::CertManager { metrics: false } => "cert-manager",
            Backend::CertManager { metrics: true } => "cert-manager+metrics",
        }
    }
}

async fn run() -> BenchResult<()> {
    let binary = std::env::var("FOOTPRINT_BINARY").unwrap_or_else(|_| BUILT_BINARY.to_string());
    let volumes: usize = match std::env::var("FOOTPRINT_VOLUMES") {
        Ok(text) => text
            .parse()
            .map_err(|_| format!("FOOTPRINT_VOLUMES={text:?} is not a count"))?,
        Err(_) => 8,
    };
    let only = std::env::var("FOOTPRINT_ONLY").ok();
    println!("footprint: the real binary idle, where its RSS goes");
    println!("  machine {}", common::machine());
    println!(
        "  binary  {binary} ({:.1} MiB on disk)",
        std::fs::metadata(&binary)?.len() as f64 / MIB
    );
    let tuning: Vec<String> = std::env::vars()
        .filter(|(name, _)| name.starts_with("MALLOC_") || name == "GLIBC_TUNABLES")
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    println!(
        "  malloc  {}",
        if tuning.is_empty() {
            "glibc defaults (no MALLOC_* / GLIBC_TUNABLES)".to_string()
        } else {
            tuning.join(" ")
        }
    );
    if !rustix::process::geteuid().is_root() {
        return Err("run as root: the driver mounts a tmpfs per volume".into());
    }
    let backends = [
        Backend::LocalCa,
        Backend::CertManager { metrics: false },
        Backend::CertManager { metrics: true },
    ];
    let chosen: Vec<Backend> = backends
        .into_iter()
        .filter(|backend| only.as_deref().is_none_or(|name| name == backend.name()))
        .collect();
    if chosen.is_empty() {
        return Err(format!(
            "FOOTPRINT_ONLY={only:?}: one of local-ca, cert-manager, cert-manager+metrics"
        )
        .into());
    }
    for backend in chosen {
        measure(&binary, backend, volumes).await?;
    }
    Ok(())
}

/// The test API server and its signer. Plain HTTP today; should the test server serve TLS, this is
/// the one place to start it that way (`write_kubeconfig` describes whatever it serves).
async fn start_api(root: &Path) -> (TestApiServer, Signer, PathBuf) {
    let api = TestApiServer::start().await;
    let signer = Signer::start(&api);
    let kubeconfig = root.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, kube_test_server::DRIVER_TOKEN);
    (api, signer, kubeconfig)
}

struct Driver {
    child: Child,
    root: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        unmount_all_under(&self.root);
    }
}

async fn measure(binary: &str, backend: Backend, volumes: usize) -> BenchResult<()> {
    let (_work, root) = common::work_dir("cm-csi-footprint-")?;
    // Kept alive for the whole measurement: the driver's watch and requests go to it.
    let mut _api = None;
    let mut command = Command::new(binary);
    command
        .arg("--node-id=footprint-node")
        .arg(format!("--endpoint=unix://{}", socket(&root).display()))
        .arg(format!("--data-root={}", root.join("state").display()));
    match backend {
        Backend::LocalCa => {
            command
                .arg("--issuer-backend=local-ca")
                .arg(format!("--local-ca-dir={}", root.join("ca").display()));
        }
        Backend::CertManager { metrics } => {
            let (api, signer, kubeconfig) = start_api(&root).await;
            _api = Some((api, signer));
            command
                .arg("--issuer-backend=cert-manager")
                .arg(format!("--kubeconfig={}", kubeconfig.display()));
            if metrics {
                command.arg("--metrics-bind-address=127.0.0.1:0");
            }
        }
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join("driver.log"))?)
        .spawn()?;
    let driver = Driver {
        child,
        root: root.clone(),
    };
    let pid = driver.child.id();
    let csi = common::connect_when_ready(&socket(&root), Duration::from_secs(20))
        .await
        .map_err(|e| format!("{e}; see {}", root.join("driver.log").display()))?;
    println!("\n== {} ==", backend.name());

    tokio::time::sleep(START_SETTLE).await;
    let started = Snapshot::take(pid)?;

    let published = publish(&csi, &root, volumes).await?;
    tokio::time::sleep(IDLE_SETTLE).await;
    let (ticks_before, switches_before) = common::cpu_and_switches(pid)?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let (ticks_after, switches_after) = common::cpu_and_switches(pid)?;
    let idle = Snapshot::take(pid)?;

    print_table(&[
        ("started", &started),
        (&format!("{volumes} published, idle"), &idle),
    ]);
    println!(
        "  idle over {} s: {:.2}% of one core, {:.1} wake-ups/s  target 0",
        IDLE_WINDOW.as_secs(),
        (ticks_after - ticks_before) as f64 / 100.0 / IDLE_WINDOW.as_secs_f64() * 100.0,
        common::switches_between(&switches_before, &switches_after) as f64
            / IDLE_WINDOW.as_secs_f64()
    );
    println!("  threads when idle: {}", idle.threads_by_name());
    println!(
        "  publish of {volumes} volumes took {:.0} ms",
        published.as_secs_f64() * 1000.0
    );

    unpublish(&csi, &root, volumes).await?;
    drop(csi);
    drop(driver);
    Ok(())
}

fn socket(root: &Path) -> PathBuf {
    root.join("plugin/csi.sock")
}

fn target_of(root: &Path, volume_id: &str) -> PathBuf {
    root.join(format!(
        "kubelet/pods/{volume_id}/volumes/kubernetes.io~csi/tls/mount"
    ))
}

/// One at a time, as pods land on a node: each publish is a key, a request, a mount.
async fn publish(csi: &CsiClient, root: &Path, count: usize) -> BenchResult<Duration> {
    let started = Instant::now();
    for index in 0..count {
        let volume_id = format!("vol-{index}");
        let target = target_of(root, &volume_id);
        std::fs::create_dir_all(target.parent().ok_or("a target has a parent")?)?;
        let pod = SamplePod {
            name: format!("pod-{index}"),
            namespace: "footprint".into(),
            uid: format!("uid-{index}"),
        };
        let context: HashMap<String, String> =
            sample_volume_context(&pod, &[(key::KEY_ALGORITHM, "ECDSA")]);
        csi.node
            .clone()
            .node_publish_volume(publish_request(&volume_id, &target, context))
            .await?;
    }
    Ok(started.elapsed())
}

async fn unpublish(csi: &CsiClient, root: &Path, count: usize) -> BenchResult<()> {
    for index in 0..count {
        let volume_id = format!("vol-{index}");
        csi.node
            .clone()
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                target_path: target_of(root, &volume_id).display().to_string(),
                volume_id,
            })
            .await?;
    }
    Ok(())
}

const MIB: f64 = 1024.0 * 1024.0;

/// What holds resident pages, in the order the table prints them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Holder {
    BinaryText,
    BinaryRodata,
    BinaryData,
    SharedLibraries,
    MainHeap,
    Arenas,
    MainStack,
    ThreadStacks,
    OtherAnonymous,
    Kernel,
}

impl Holder {
    const ALL: [Holder; 10] = [
        Holder::BinaryText,
        Holder::BinaryRodata,
        Holder::BinaryData,
        Holder::SharedLibraries,
        Holder::MainHeap,
        Holder::Arenas,
        Holder::MainStack,
        Holder::ThreadStacks,
        Holder::OtherAnonymous,
        Holder::Kernel,
    ];

    fn label(self) -> &'static str {
        match self {
            Holder::BinaryText => "binary text (r-x, file)",
            Holder::BinaryRodata => "binary rodata (r--, file)",
            Holder::BinaryData => "binary data+relro+bss (rw-)",
            Holder::SharedLibraries => "shared libraries (dynamic build only)",
            Holder::MainHeap => "[heap]: glibc main arena (brk)",
            Holder::Arenas => "glibc thread arenas (64 MiB-aligned)",
            Holder::MainStack => "[stack]: main thread",
            Holder::ThreadStacks => "thread stacks",
            Holder::OtherAnonymous => "other anonymous (large mmap'd blocks)",
            Holder::Kernel => "[vdso] [vvar]",
        }
    }
}

/// One mapping of /proc/PID/smaps.
struct Mapping {
    start: u64,
    end: u64,
    perms: String,
    path: String,
    rss_kib: u64,
}

fn read_mappings(pid: u32) -> BenchResult<Vec<Mapping>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let mut mappings: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        {
            let perms = fields.next().unwrap_or("").to_string();
            // offset, device, inode, then the path (which may contain spaces).
            let path = fields.skip(3).collect::<Vec<_>>().join(" ");
            mappings.push(Mapping {
                start,
                end,
                perms,
                path,
                rss_kib: 0,
            });
        } else if first == "Rss:"
            && let Some(mapping) = mappings.last_mut()
        {
            mapping.rss_kib = fields.next().and_then(|kib| kib.parse().ok()).unwrap_or(0);
        }
    }
    Ok(mappings)
}

/// A thread: its name and the stack pointer it is parked with (from /proc/PID/task/TID/syscall,
/// which shows it while the thread sits in a system call, as every idle thread does).
struct Thread {
    name: String,
    stack_pointer: Option<u64>,
}

fn read_threads(pid: u32) -> BenchResult<Vec<Thread>> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path();
        let name = std::fs::read_to_string(path.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let syscall = std::fs::read_to_string(path.join("syscall")).unwrap_or_default();
        // "nr arg1 .. arg6 sp pc" while in a system call; "running" (or less) otherwise.
        let fields: Vec<&str> = syscall.split_whitespace().collect();
        let stack_pointer = (fields.len() == 9)
            .then(|| u64::from_str_radix(fields[7].trim_start_matches("0x"), 16).ok())
            .flatten();
        threads.push(Thread {
            name,
            stack_pointer,
        });
    }
    Ok(threads)
}

/// Everything measured at one moment.
struct Snapshot {
    status: BTreeMap<String, u64>,
    by_holder: BTreeMap<Holder, u64>,
    arenas: usize,
    threads: Vec<Thread>,
    /// Resident KiB of each thread's stack, by thread name.
    stack_kib: Vec<(String, u64)>,
}

impl Snapshot {
    fn take(pid: u32) -> BenchResult<Snapshot> {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))?
            .display()
            .to_string();
        let mappings = read_mappings(pid)?;
        let threads = read_threads(pid)?;
        let mut by_holder: BTreeMap<Holder, u64> = BTreeMap::new();
        let mut arenas = 0;
        let mut stack_kib = Vec::new();
        let mut previous_was_binary_data = false;
        for mapping in &mappings {
            let anonymous = mapping.path.is_empty();
            let stack_of = threads.iter().find(|thread| {
                thread
                    .stack_pointer
                    .is_some_and(|sp| mapping.start <= sp && sp < mapping.end)
            });
            let holder = if mapping.path == exe {
                if mapping.perms.contains('x') {
                    Holder::BinaryText
                } else if mapping.perms.starts_with("rw") {
                    Holder::BinaryData
                } else {
                    Holder::BinaryRodata
                }
            } else if mapping.path == "[heap]" {
                Holder::MainHeap
            } else if mapping.path == "[stack]" {
                Holder::MainStack
            } else if mapping.path == "[vdso]" || mapping.path == "[vvar]" {
                Holder::Kernel
            } else if !anonymous {
                Holder::SharedLibraries
            } else if let Some(thread) = stack_of {
                stack_kib.push((thread.name.clone(), mapping.rss_kib));
                Holder::ThreadStacks
            } else if previous_was_binary_data {
                // The bss past the file's data is an anonymous mapping right after it.
                Holder::BinaryData
            } else if mapping.start % ARENA_ALIGN == 0 && mapping.perms.starts_with("rw") {
                arenas += 1;
                Holder::Arenas
            } else {
                Holder::OtherAnonymous
            };
            previous_was_binary_data = holder == Holder::BinaryData && !anonymous;
            *by_holder.entry(holder).or_default() += mapping.rss_kib;
        }
        Ok(Snapshot {
            status: read_status(pid)?,
            by_holder,
            arenas,
            threads,
            stack_kib,
        })
    }

    fn status(&self, field: &str) -> u64 {
        self.status.get(field).copied().unwrap_or(0)
    }

    fn threads_by_name(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for thread in &self.threads {
            *counts.entry(thread.name.as_str()).or_default() += 1;
        }
        let listed: Vec<String> = counts
            .into_iter()
            .map(|(name, count)| format!("{name} ×{count}"))
            .collect();
        format!("{} ({})", self.threads.len(), listed.join(", "))
    }

    fn stacks_described(&self) -> String {
        let mut kib: Vec<u64> = self.stack_kib.iter().map(|(_, kib)| *kib).collect();
        kib.sort_unstable();
        match (kib.first(), kib.last()) {
            (Some(least), Some(most)) => format!("{} stacks, {least}–{most} KiB each", kib.len()),
            _ => "no thread stacks found".into(),
        }
    }
}

fn read_status(pid: u32) -> BenchResult<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let value = rest.split_whitespace().next()?.parse().ok()?;
            Some((name.to_string(), value))
        })
        .collect())
}

fn print_table(columns: &[(&str, &Snapshot)]) {
    let kib = |value: u64| format!("{:>8.2}", value as f64 / 1024.0);
    print!("  {:<40}", "MiB");
    for (label, _) in columns {
        print!(" {label:>22}");
    }
    println!();
    let row = |label: &str, value: &dyn Fn(&Snapshot) -> String| {
        print!("  {label:<40}");
        for (_, snapshot) in columns {
            print!(" {:>22}", value(snapshot));
        }
        println!();
    };
    for holder in Holder::ALL {
        row(holder.label(), &|s| {
            kib(s.by_holder.get(&holder).copied().unwrap_or(0))
        });
    }
    row("  sum of the mappings", &|s| {
        kib(s.by_holder.values().sum())
    });
    row("VmRSS", &|s| kib(s.status("VmRSS")));
    row("  RssAnon", &|s| kib(s.status("RssAnon")));
    row("  RssFile", &|s| kib(s.status("RssFile")));
    row("VmHWM (peak RSS)", &|s| kib(s.status("VmHWM")));
    row("threads", &|s| format!("{:>8}", s.status("Threads")));
    row("glibc thread arenas", &|s| format!("{:>8}", s.arenas));
    for (label, snapshot) in columns {
        println!("  {label}: {}", snapshot.stacks_described());
    }
}

/// Whatever the driver left mounted under the work directory (it is killed, not stopped).
fn unmount_all_under(root: &Path) {
    let mut mounts: Vec<PathBuf> = cert_manager_csi_driver::volume::mountinfo::read_current()
        .unwrap_or_default()
        .into_iter()
        .map(|entry| entry.mount_point)
        .filter(|point| point.starts_with(root))
        .collect();
    mounts.sort();
    for mount in mounts.into_iter().rev() {
        let _ = rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH);
    }
}
