//! The driver at node scale: 10,000 managed volumes on the real binary (embedded CA, real tmpfs
//! mounts when run as root). Prints idle CPU and wake-ups, memory, restart time, and a renewal
//! storm (every certificate overdue at once after a restart) with its spread and peak concurrency.
//!
//! Run: `cargo bench --bench scale` (as root). `SCALE_VOLUMES=2000` for a shorter run;
//! `SCALE_BINARY=path` measures another build (the shipped one: `cargo xtask static-binary
//! --release` prints its path).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::csi::client::CsiClient;
use cert_manager_csi_driver::csi::proto::NodeUnpublishVolumeRequest;
use tokio::time::Instant;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const BUILT_BINARY: &str = env!("CARGO_BIN_EXE_cert-manager-csi-driver");

/// The binary under test: `SCALE_BINARY`, else the one this bench was built with.
fn binary() -> String {
    std::env::var("SCALE_BINARY").unwrap_or_else(|_| BUILT_BINARY.to_string())
}
/// Certificate lifetime: renewal falls due at two thirds, 40 s after issuance.
const LIFETIME: &str = "60s";
const RENEWS_AFTER: Duration = Duration::from_secs(40);
const IDLE_WINDOW: Duration = Duration::from_secs(10);
const IN_FLIGHT: usize = 64;
const MAX_CONCURRENT_RENEWALS: usize = 16;

fn main() -> ExitCode {
    common::block_on(run())
}

struct Driver {
    child: Child,
    log: PathBuf,
}

impl Driver {
    fn start(root: &Path, generation: usize) -> BenchResult<Driver> {
        let log = root.join(format!("driver-{generation}.log"));
        let child = Command::new(binary())
            .arg("--node-id=scale-node")
            .arg(format!("--endpoint=unix://{}", socket(root).display()))
            .arg(format!("--data-root={}", root.join("state").display()))
            .arg("--issuer-backend=local-ca")
            .arg(format!("--local-ca-dir={}", root.join("ca").display()))
            .arg(format!(
                "--max-concurrent-renewals={MAX_CONCURRENT_RENEWALS}"
            ))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Driver { child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_lines(&self) -> Vec<String> {
        std::fs::File::open(&self.log)
            .map(|file| BufReader::new(file).lines().map_while(Result::ok).collect())
            .unwrap_or_default()
    }
}

fn socket(root: &Path) -> PathBuf {
    root.join("plugin/csi.sock")
}

fn target_of(root: &Path, volume_id: &str) -> PathBuf {
    root.join(format!(
        "kubelet/pods/{volume_id}/volumes/kubernetes.io~csi/tls/mount"
    ))
}

async fn publish_all(csi: &CsiClient, root: &Path, count: usize) -> BenchResult<Duration> {
    let started = Instant::now();
    common::publish_sample_volumes(
        csi,
        0..count,
        "scale",
        &[(key::KEY_ALGORITHM, "ECDSA"), (key::DURATION, LIFETIME)],
        |volume_id| target_of(root, volume_id),
        IN_FLIGHT,
    )
    .await?;
    Ok(started.elapsed())
}

/// Waits until the process has used no CPU for 2 s in a row (at most 20 s); how long it took.
async fn settle(pid: u32) -> BenchResult<Duration> {
    let started = Instant::now();
    let mut quiet_since = Instant::now();
    let (mut last, _) = common::cpu_and_switches(pid)?;
    while quiet_since.elapsed() < Duration::from_secs(2)
        && started.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (ticks, _) = common::cpu_and_switches(pid)?;
        if ticks != last {
            last = ticks;
            quiet_since = Instant::now();
        }
    }
    Ok(started.elapsed())
}

fn memory(pid: u32) -> BenchResult<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

fn ticks_per_second() -> f64 {
    // The kernel's USER_HZ, 100 on every Linux this runs on.
    100.0
}

/// Seconds since midnight (UTC) of the RFC 3339 timestamp tracing puts first on each line.
fn line_time(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let clock = stamp.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = clock.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

async fn run() -> BenchResult<()> {
    let volumes: usize = std::env::var("SCALE_VOLUMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let is_root = rustix::process::geteuid().is_root();
    let work = tempfile::Builder::new().prefix("cm-csi-scale-").tempdir()?;
    let root = work.path().canonicalize()?;
    println!("scale: {volumes} volumes on the real binary, embedded CA");
    println!("  binary {}", binary());
    println!(
        "  cpu    {} ({} cores)",
        common::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  volumes {} under {}",
        if is_root {
            "real tmpfs mounts"
        } else {
            "plain directories (not root: no mounts)"
        },
        root.display()
    );
    if !is_root {
        return Err("run as root: the driver needs to mount tmpfs volumes".into());
    }

    // Whatever happens (even a panic), every mount under the work directory is taken down.
    let _cleanup = MountCleanup(root.clone());
    measure(&root, volumes).await
}

struct MountCleanup(PathBuf);

impl Drop for MountCleanup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .args(["-9", "-f", "node-id=scale-node"])
            .status();
        let leftovers = cleanup_mounts(&self.0);
        if leftovers > 0 {
            println!("cleanup: detached {leftovers} mounts still up at the end");
        }
    }
}

async fn measure(root: &Path, volumes: usize) -> BenchResult<()> {
    let driver = Driver::start(root, 1)?;
    let csi = common::connect_when_ready(&socket(root), Duration::from_secs(10)).await?;
    let published = publish_all(&csi, root, volumes).await?;
    let issued_by = Instant::now();
    println!(
        "\npublished {volumes} volumes in {:.2} s ({:.0}/s, {IN_FLIGHT} in flight)",
        published.as_secs_f64(),
        volumes as f64 / published.as_secs_f64()
    );

    // Idle: nothing is due for ~40 s. Measured once the driver has settled (the key pool
    // refilled, the heap trimmed): no CPU used for 2 s in a row, or 20 s at most.
    let settled_after = settle(driver.pid()).await?;
    println!(
        "settled {:.1} s after the last publish",
        settled_after.as_secs_f64()
    );
    let (ticks_before, switches_before) = common::cpu_and_switches(driver.pid())?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let (ticks_after, switches_after) = common::cpu_and_switches(driver.pid())?;
    let cpu = (ticks_after - ticks_before) as f64 / ticks_per_second() / IDLE_WINDOW.as_secs_f64();
    let wakeups = common::switches_between(&switches_before, &switches_after) as f64
        / IDLE_WINDOW.as_secs_f64();
    println!(
        "idle over {} s: CPU {:.2}% of one core, {:.1} wake-ups/s in all ({:.5} per volume per second)  target 0 per volume",
        IDLE_WINDOW.as_secs(),
        cpu * 100.0,
        wakeups,
        wakeups / volumes as f64
    );
    let (rss, peak) = memory(driver.pid())?;
    println!(
        "memory: RSS {:.1} MiB, peak {:.1} MiB ({:.2} KiB per volume)  target RSS ≤ 25 MiB",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        rss as f64 / volumes as f64
    );

    // Restart: kill -9, start, time until every volume is reloaded and scheduled, and until the
    // socket answers.
    driver.kill_hard();
    drop(csi);
    let started = Instant::now();
    let driver = Driver::start(root, 2)?;
    let csi = common::connect_when_ready(&socket(root), Duration::from_secs(60)).await?;
    let serving = started.elapsed();
    let reloaded = driver
        .log_lines()
        .into_iter()
        .find(|line| line.contains("volumes reloaded"))
        .unwrap_or_default();
    println!(
        "restart after kill -9: serving (Probe answers, every volume reloaded and scheduled) after {:.0} ms  target ≤ 1 s\n  {}",
        serving.as_secs_f64() * 1000.0,
        reloaded
            .split_once("volumes reloaded")
            .map(|(_, counts)| format!("reloaded:{counts}"))
            .unwrap_or_else(|| "no reload line in the log".into())
    );
    let (rss, _) = memory(driver.pid())?;
    println!("  RSS after the reload {:.1} MiB", rss as f64 / 1024.0);

    // Storm: stop the driver until every certificate is overdue, then start it again.
    driver.kill_hard();
    drop(csi);
    let due = issued_by + RENEWS_AFTER + Duration::from_secs(2);
    let wait = due.saturating_duration_since(Instant::now());
    println!(
        "\nrenewal storm: driver down for {:.0} s so that all {volumes} certificates are overdue, then restarted",
        wait.as_secs_f64()
    );
    tokio::time::sleep(wait).await;
    let driver = Driver::start(root, 3)?;
    let csi = common::connect_when_ready(&socket(root), Duration::from_secs(60)).await?;
    let storm_started = Instant::now();
    loop {
        let renewed = driver
            .log_lines()
            .iter()
            .filter(|line| line.contains("certificate renewed"))
            .count();
        if renewed >= volumes {
            break;
        }
        if storm_started.elapsed() > Duration::from_secs(600) {
            return Err(format!("only {renewed} of {volumes} renewed after 10 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, storm_peak) = memory(driver.pid())?;
    report_storm(&driver.log_lines(), volumes);
    println!(
        "  peak RSS during the storm {:.1} MiB",
        storm_peak as f64 / 1024.0
    );

    // Unpublish everything through the driver.
    let started = Instant::now();
    for index in 0..volumes {
        let volume_id = format!("vol-{index:05}");
        csi.node
            .clone()
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: volume_id.clone(),
                target_path: target_of(root, &volume_id).display().to_string(),
            })
            .await?;
    }
    println!(
        "\nunpublished {volumes} volumes in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    driver.kill_hard();
    Ok(())
}

fn report_storm(lines: &[String], volumes: usize) {
    let mut events: Vec<(f64, i32)> = Vec::new();
    let mut finished = Vec::new();
    for line in lines {
        let Some(at) = line_time(line) else { continue };
        if line.contains("renewing certificate") {
            events.push((at, 1));
        } else if line.contains("certificate renewed") {
            events.push((at, -1));
            finished.push(at);
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut running = 0;
    let mut peak = 0;
    for (_, delta) in &events {
        running += delta;
        peak = peak.max(running);
    }
    finished.sort_by(f64::total_cmp);
    let first_start = events.first().map(|e| e.0).unwrap_or_default();
    let spread = finished.last().copied().unwrap_or_default() - first_start;
    let at_fraction = |fraction: f64| {
        let index = (finished.len() as f64 * fraction).ceil() as usize;
        finished
            .get(index.saturating_sub(1))
            .map_or(0.0, |at| at - first_start)
    };
    println!(
        "  {} renewals (of {volumes}); all done {:.2} s after the first started ({:.0}/s); half by {:.2} s, 99% by {:.2} s",
        finished.len(),
        spread,
        finished.len() as f64 / spread.max(1e-9),
        at_fraction(0.5),
        at_fraction(0.99),
    );
    // The embedded CA signs on this node: a renewal holds a node-work permit (one per core) from
    // its key to its signature, so the cores bound it before the flag does. Against a remote
    // issuer the permit is let go while waiting, and the flag is the bound
    // (tests/cert_manager/renewals.rs, concurrent_renewals_are_bounded_by_the_flag).
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    println!(
        "  peak concurrent renewals {peak} (bound: --max-concurrent-renewals={MAX_CONCURRENT_RENEWALS}, \
         and with the embedded CA, which signs on this node, its {cores} cores)"
    );
}

fn cleanup_mounts(root: &Path) -> usize {
    let mut mounts: Vec<PathBuf> = cert_manager_csi_driver::volume::mountinfo::read_current()
        .unwrap_or_default()
        .into_iter()
        .map(|entry| entry.mount_point)
        .filter(|point| point.starts_with(root))
        .collect();
    mounts.sort();
    let count = mounts.len();
    for mount in mounts.into_iter().rev() {
        let _ = rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH);
    }
    count
}
