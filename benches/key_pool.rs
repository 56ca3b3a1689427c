//! `cargo bench --bench key_pool`: the default path (no `key-algorithm`: RSA 2048) with and
//! without pre-generated keys, against ECDSA P-256 in the same run.
//!
//! A program, not a test: it prints figures and the targets next to them, and judges
//! nothing. Each phase starts its own driver in-process on the embedded CA (real tmpfs mounts as
//! root) and plays kubelet over the real unix socket, one shared connection:
//!
//! 1. one publish at a time, each with the pool full (ECDSA, then RSA 2048 from the pool);
//! 2. one publish at a time while the refill thread is making RSA keys (the pool drained first),
//!    for ECDSA and for pooled RSA, against the same with the pool full: what refilling costs
//!    the publishes it must not compete with;
//! 3. a burst of 16 publishes at once a few seconds after the driver started: RSA 2048 with the
//!    pool, ECDSA, and RSA 2048 with `--key-pool-size 0` (what every publish paid before the pool).
//!
//! Run: `cargo xtask bench key_pool` (as root for real tmpfs mounts).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::csi::client::{self, CsiClient};
use cert_manager_csi_driver::csi::proto::NodeUnpublishVolumeRequest;
use cert_manager_csi_driver::demo::{SamplePod, publish_request, sample_volume_context};
use cert_manager_csi_driver::driver::{self, MountMode, RunningDriver};
use cert_manager_csi_driver::keys::pool::{DEFAULT_SIZE, KeyKind};
use tokio::time::Instant;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Samples per one-at-a-time series: enough for a p99 that is not the maximum.
const SEQUENTIAL: usize = 200;
/// The rollout the default pool size is made for.
const BURST: usize = 16;
/// Bursts per kind; each on a fresh driver, so each finds a full pool.
const BURST_ROUNDS: usize = 3;
/// How long a driver runs before its burst: "a few seconds after start".
const SETTLE: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    common::block_on(run())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// The default attributes: no `key-algorithm`, so RSA 2048.
    Default,
    Ecdsa,
}

impl Keys {
    fn label(self) -> &'static str {
        match self {
            Keys::Default => "RSA 2048 (default attributes)",
            Keys::Ecdsa => "ECDSA P-256",
        }
    }
}

struct Node {
    running: RunningDriver,
    csi: CsiClient,
    root: PathBuf,
    _work: tempfile::TempDir,
    serial: usize,
}

impl Node {
    async fn start(mount_mode: MountMode, key_pool_size: usize) -> BenchResult<Node> {
        let (work, root) = common::work_dir("cm-csi-key-pool-")?;
        let config = driver::DriverConfig {
            key_pool_size,
            ..common::driver_config(&root, mount_mode)
        };
        let running = driver::start(config).await?;
        let csi = client::connect(running.socket_path()).await?;
        Ok(Node {
            running,
            csi,
            root,
            _work: work,
            serial: 0,
        })
    }

    fn pooled_rsa(&self) -> usize {
        self.running
            .manager()
            .key_pool_stats()
            .levels
            .iter()
            .find(|level| level.kind == KeyKind::DEFAULT)
            .map_or(0, |level| level.keys)
    }

    /// Waits until the pool holds `keys` RSA 2048 keys (at most a minute).
    async fn wait_for_pool(&self, keys: usize) -> BenchResult<Duration> {
        let started = Instant::now();
        while self.pooled_rsa() < keys {
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!("the pool did not reach {keys} keys in a minute").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(started.elapsed())
    }

    fn next_volume(&mut self) -> String {
        self.serial += 1;
        format!("kp-{}", self.serial)
    }

    /// One publish and its latency; the volume is unpublished after timing.
    async fn publish_one(&mut self, keys: Keys) -> BenchResult<Duration> {
        let volume_id = self.next_volume();
        let (request, target) = self.request(&volume_id, keys)?;
        let started = Instant::now();
        self.csi.node.clone().node_publish_volume(request).await?;
        let took = started.elapsed();
        self.unpublish(&volume_id, &target).await?;
        Ok(took)
    }

    /// `count` publishes sent at once; the wall time until the last returned.
    async fn burst(&mut self, keys: Keys, count: usize) -> BenchResult<Duration> {
        let mut prepared = Vec::with_capacity(count);
        for _ in 0..count {
            let volume_id = self.next_volume();
            let (request, target) = self.request(&volume_id, keys)?;
            prepared.push((volume_id, request, target));
        }
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(count);
        for (_, request, _) in &prepared {
            let mut node = self.csi.node.clone();
            let request = request.clone();
            tasks.push(tokio::spawn(async move {
                node.node_publish_volume(request).await
            }));
        }
        for task in tasks {
            task.await??;
        }
        let wall = started.elapsed();
        for (volume_id, _, target) in &prepared {
            self.unpublish(volume_id, target).await?;
        }
        Ok(wall)
    }

    fn request(
        &self,
        volume_id: &str,
        keys: Keys,
    ) -> BenchResult<(
        cert_manager_csi_driver::csi::proto::NodePublishVolumeRequest,
        PathBuf,
    )> {
        let target = self.root.join(format!(
            "kubelet/pods/{volume_id}/volumes/kubernetes.io~csi/tls/mount"
        ));
        std::fs::create_dir_all(target.parent().unwrap())?;
        let pod = SamplePod {
            name: volume_id.to_string(),
            namespace: "bench".into(),
            uid: format!("uid-{volume_id}"),
        };
        let overrides: &[(&str, &str)] = match keys {
            Keys::Default => &[],
            Keys::Ecdsa => &[(key::KEY_ALGORITHM, "ECDSA"), (key::KEY_SIZE, "256")],
        };
        let context: HashMap<String, String> = sample_volume_context(&pod, overrides);
        Ok((publish_request(volume_id, &target, context), target))
    }

    async fn unpublish(&self, volume_id: &str, target: &Path) -> BenchResult<()> {
        self.csi
            .node
            .clone()
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: volume_id.to_string(),
                target_path: target.display().to_string(),
            })
            .await?;
        Ok(())
    }

    async fn stop(self) -> BenchResult<()> {
        self.running.stop().await?;
        Ok(())
    }
}

/// p50 / p99 / max of one series.
struct Figures {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Figures {
    fn of(mut samples: Vec<Duration>) -> Figures {
        samples.sort_unstable();
        Figures {
            p50: common::percentile(&samples, 50.0),
            p99: common::percentile(&samples, 99.0),
            max: samples.last().copied().unwrap_or_default(),
        }
    }

    fn print(&self, label: &str) {
        println!(
            "  {label:<52} p50 {}  p99 {}  max {}",
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        );
    }
}

fn ms(duration: Duration) -> String {
    format!("{:>7.2} ms", duration.as_secs_f64() * 1000.0)
}

fn verdict(label: &str, measured: f64, target: f64) {
    let met = if measured <= target { "met" } else { "NOT met" };
    println!("  {label:<60} {measured:>5.2}×  target ≤ {target}×  {met}");
}

async fn run() -> BenchResult<()> {
    let mount_mode = common::mount_mode();
    println!("key pool: the default path (RSA 2048) with pre-generated keys, against ECDSA P-256");
    println!("  machine  {}", common::machine());
    println!(
        "  volumes  {}, embedded CA, one gRPC connection, pool size {DEFAULT_SIZE}\n",
        common::mounts_described(mount_mode)
    );

    // 1. One at a time, the pool full before each publish.
    let mut node = Node::start(mount_mode, DEFAULT_SIZE).await?;
    let warmed_in = node.wait_for_pool(DEFAULT_SIZE).await?;
    println!(
        "pool warm {DEFAULT_SIZE} RSA 2048 keys {:.2} s after start (refill thread at SCHED_IDLE)\n",
        warmed_in.as_secs_f64()
    );
    for _ in 0..20 {
        node.publish_one(Keys::Ecdsa).await?;
    }
    println!("1. one publish at a time, pool full ({SEQUENTIAL} each)");
    let mut ecdsa_full = Vec::with_capacity(SEQUENTIAL);
    let mut rsa_full = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        node.wait_for_pool(DEFAULT_SIZE).await?;
        ecdsa_full.push(node.publish_one(Keys::Ecdsa).await?);
        node.wait_for_pool(DEFAULT_SIZE).await?;
        rsa_full.push(node.publish_one(Keys::Default).await?);
    }
    let ecdsa_full = Figures::of(ecdsa_full);
    let rsa_full = Figures::of(rsa_full);
    ecdsa_full.print(Keys::Ecdsa.label());
    rsa_full.print(&format!("{}, key from the pool", Keys::Default.label()));

    // 2. The same while the refill thread works: drain the pool, then publish while it refills.
    // Pooled RSA publishes take a key each; the series stops taking once the pool is nearly empty
    // so every RSA sample is a pool hit, and drains again when the pool is nearly full.
    println!("\n2. one publish at a time while the pool refills ({SEQUENTIAL} each)");
    let mut ecdsa_refilling = Vec::with_capacity(SEQUENTIAL);
    let mut rsa_refilling = Vec::with_capacity(SEQUENTIAL);
    let misses_before = node.running.manager().key_pool_stats().misses;
    while ecdsa_refilling.len() < SEQUENTIAL || rsa_refilling.len() < SEQUENTIAL {
        if node.pooled_rsa() >= DEFAULT_SIZE - 1 {
            // Keep the refill busy: take most of the pool at once (these are not timed).
            node.burst(Keys::Default, DEFAULT_SIZE - 2).await?;
        }
        let mut timed = false;
        if ecdsa_refilling.len() < SEQUENTIAL {
            ecdsa_refilling.push(node.publish_one(Keys::Ecdsa).await?);
            timed = true;
        }
        if rsa_refilling.len() < SEQUENTIAL && node.pooled_rsa() >= 1 {
            rsa_refilling.push(node.publish_one(Keys::Default).await?);
            timed = true;
        }
        if !timed {
            // Only RSA samples are missing and the pool is empty: let the refill catch up.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let misses = node.running.manager().key_pool_stats().misses - misses_before;
    let ecdsa_refilling = Figures::of(ecdsa_refilling);
    let rsa_refilling = Figures::of(rsa_refilling);
    ecdsa_refilling.print(&format!("{}, pool refilling", Keys::Ecdsa.label()));
    rsa_refilling.print(&format!("{}, pool refilling", Keys::Default.label()));
    println!(
        "  pool misses during the series: {misses} (ECDSA volumes make their own pool on first use)"
    );
    node.stop().await?;

    // 3. Bursts of 16 a few seconds after start, each on a fresh driver.
    println!(
        "\n3. a burst of {BURST} publishes at once, {SETTLE:?} after start ({BURST_ROUNDS} rounds, fresh driver each)"
    );
    let mut walls: Vec<(&str, Vec<Duration>)> = Vec::new();
    for (label, keys, pool_size) in [
        ("RSA 2048 (default), pool on", Keys::Default, DEFAULT_SIZE),
        ("ECDSA P-256", Keys::Ecdsa, DEFAULT_SIZE),
        ("RSA 2048 (default), --key-pool-size 0", Keys::Default, 0),
    ] {
        let mut rounds = Vec::with_capacity(BURST_ROUNDS);
        for _ in 0..BURST_ROUNDS {
            let mut node = Node::start(mount_mode, pool_size).await?;
            tokio::time::sleep(SETTLE).await;
            let pooled = node.pooled_rsa();
            rounds.push(node.burst(keys, BURST).await?);
            if pool_size > 0 && pooled < BURST {
                println!("  (note: only {pooled} RSA keys pooled when the burst began)");
            }
            node.stop().await?;
        }
        let shown: Vec<String> = rounds
            .iter()
            .map(|wall| format!("{:.0} ms", wall.as_secs_f64() * 1000.0))
            .collect();
        println!("  {label:<44} wall {}", shown.join(" / "));
        walls.push((label, rounds));
    }
    let median = |rounds: &[Duration]| {
        let mut sorted = rounds.to_vec();
        sorted.sort_unstable();
        sorted[sorted.len() / 2]
    };
    let burst_rsa = median(&walls[0].1);
    let burst_ecdsa = median(&walls[1].1);
    let burst_unpooled = median(&walls[2].1);

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!("\ntargets (medians of the bursts)");
    verdict(
        "RSA 2048 warm pool p50 / ECDSA p50, 1 in flight",
        ratio(rsa_full.p50, ecdsa_full.p50),
        1.5,
    );
    verdict(
        "burst of 16: RSA 2048 with the pool / ECDSA, wall",
        ratio(burst_rsa, burst_ecdsa),
        2.0,
    );
    verdict(
        "ECDSA p99 while the pool refills / pool full",
        ratio(ecdsa_refilling.p99, ecdsa_full.p99),
        1.2,
    );
    verdict(
        "RSA 2048 p99 while the pool refills / pool full",
        ratio(rsa_refilling.p99, rsa_full.p99),
        1.2,
    );
    println!(
        "  (burst of 16 RSA 2048 without the pool: {:.0} ms, {:.1}× ECDSA)",
        burst_unpooled.as_secs_f64() * 1000.0,
        ratio(burst_unpooled, burst_ecdsa)
    );
    Ok(())
}
