//! Readiness gates: the time from kubelet's pod-status patch (the pod's IP) to the certificate with
//! that IP being in the volume, for 1 pod and for 64 pods pending at once; and how many times the
//! driver read pods from the API server (other than its one watch) while volumes waited.
//!
//! Run: `cargo bench --bench readiness` (as root for real tmpfs mounts).

mod common;
#[path = "../tests/common/kubelet.rs"]
mod kubelet;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::csi::client::{self, CsiClient};
use cert_manager_csi_driver::csi::proto::NodeUnpublishVolumeRequest;
use cert_manager_csi_driver::demo::{SamplePod, publish_request, sample_volume_context};
use cert_manager_csi_driver::driver::{self, DriverConfig, RunningDriver};
use kube_test_server::{DRIVER_USER, Signer, TestApiServer};
use kubelet::{Kubelet, pod_reads, pod_watches};
use tokio::time::Instant;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const SINGLE_TRIALS: usize = 100;
const BATCH: usize = 64;
const BATCH_ROUNDS: usize = 5;
/// How long the 64 stay pending before their IPs come: past the first gate re-check (1 s), so a
/// driver that polled would show it in the audit log.
const PENDING_FOR: Duration = Duration::from_millis(1500);
const NAMESPACE: &str = "bench";

fn main() -> ExitCode {
    common::block_on(run())
}

struct Bench {
    api: TestApiServer,
    kubelet: Arc<Kubelet>,
    running: RunningDriver,
    csi: CsiClient,
    root: PathBuf,
}

async fn run() -> BenchResult<()> {
    let mount_mode = common::mount_mode();
    let (_work, root) = common::work_dir("gates-bench-")?;
    println!("readiness gates: pod-status patch (IP) → certificate with that IP in the volume");
    println!("  machine {}", common::machine());
    println!(
        "  volumes {}; gate pod-ip:any, ip-sans ${{POD_IP}}; ECDSA P-256; instant signer; API over HTTP/1.1 on loopback\n",
        common::mounts_described(mount_mode),
    );

    let api = TestApiServer::start().await;
    let _signer = Signer::start(&api);
    let kubeconfig = root.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, kube_test_server::DRIVER_TOKEN);
    let config = DriverConfig {
        continue_on_not_ready: true,
        readiness_gates: vec!["pod-ip:any".parse()?],
        // The driver's default (--max-concurrent-renewals): gated first issuances run on the
        // renewal queue, so this bounds how many of 64 woken pods issue at once.
        renewal_concurrency: 16,
        key_pool_size: cert_manager_csi_driver::keys::pool::DEFAULT_SIZE,
        ..common::cert_manager_config(&root, mount_mode, kubeconfig)
    };
    let kubelet = Arc::new(Kubelet::connect(&api, &config.node_id, &root).await);
    let running = driver::start(config).await?;
    let csi = client::connect(running.socket_path()).await?;
    let bench = Bench {
        api,
        kubelet,
        running,
        csi,
        root,
    };

    // Warm up: connections, the pod watch's first list, allocator.
    for round in 0..3 {
        bench
            .round(&format!("warm{round}"), 8, Duration::ZERO)
            .await?;
    }
    let watches_at_start = pod_watches(&bench.api.requests(), DRIVER_USER).len();
    bench.api.clear_requests();

    let mut single = Vec::with_capacity(SINGLE_TRIALS);
    for trial in 0..SINGLE_TRIALS {
        single.extend(
            bench
                .round(&format!("one{trial}"), 1, Duration::ZERO)
                .await?,
        );
    }
    report(
        &format!("1 pod pending ({SINGLE_TRIALS} trials)"),
        single,
        "  target p99 ≤ 5 ms",
    );

    let mut batch = Vec::with_capacity(BATCH * BATCH_ROUNDS);
    for round in 0..BATCH_ROUNDS {
        batch.extend(
            bench
                .round(&format!("b{round}"), BATCH, PENDING_FOR)
                .await?,
        );
    }
    report(
        &format!(
            "{BATCH} pods pending at once ({BATCH_ROUNDS} rounds, each pending {} ms)",
            PENDING_FOR.as_millis()
        ),
        batch,
        // 64 issuances at once queue behind --renewal-concurrency (4 here), so this is mostly the
        // issuance queue, not the wake-up.
        "",
    );

    let audit = bench.api.requests();
    let reads = pod_reads(&audit, DRIVER_USER);
    println!(
        "driver's pod GET/LIST requests during the waits: {}  target 0 (pod watch: {} opened before, {} (re)opened during)",
        reads.len(),
        watches_at_start,
        pod_watches(&audit, DRIVER_USER).len()
    );
    for read in reads.iter().take(5) {
        println!("  {} {}?{}", read.method, read.path, read.query);
    }
    bench.running.stop().await?;
    Ok(())
}

impl Bench {
    /// `count` pods whose volumes wait on their IP, then kubelet patches all their IPs at once;
    /// for each, the time from the start of its patch to its certificate being readable with it.
    async fn round(
        &self,
        prefix: &str,
        count: usize,
        pending_for: Duration,
    ) -> BenchResult<Vec<Duration>> {
        let mut pods = Vec::with_capacity(count);
        for index in 0..count {
            let pod = self
                .kubelet
                .create_pod(NAMESPACE, &format!("{prefix}-{index}"));
            let target = target_of(&self.root, &pod.name);
            std::fs::create_dir_all(target.parent().unwrap())?;
            self.csi
                .node
                .clone()
                .node_publish_volume(publish_request(&pod.name, &target, context_of(&pod)))
                .await?;
            // Distinct addresses, so each file is checked for its own pod's IP.
            let ip = format!(
                "10.{}.{}.{}",
                100 + count % 100,
                index / 250,
                index % 250 + 1
            );
            pods.push((pod, target, ip));
        }
        for (pod, _, _) in &pods {
            self.wait_until_waiting(&pod.name).await?;
        }
        tokio::time::sleep(pending_for).await;

        let targets: Vec<(PathBuf, String)> = pods
            .iter()
            .map(|(_, target, ip)| (target.clone(), format!("IP:{ip}")))
            .collect();
        let observer = tokio::task::spawn_blocking(move || observe(&targets));
        let mut patches = Vec::with_capacity(count);
        for (pod, _, ip) in &pods {
            let kubelet = Arc::clone(&self.kubelet);
            let (pod, ip) = (pod.clone(), ip.clone());
            patches.push(tokio::spawn(async move {
                let started = Instant::now();
                kubelet.set_ips(&pod, &[ip.as_str()]).await;
                started
            }));
        }
        let mut started = Vec::with_capacity(count);
        for patch in patches {
            started.push(patch.await?);
        }
        let seen = observer.await??;
        let latencies = started
            .iter()
            .zip(&seen)
            .map(|(started, seen)| seen.saturating_duration_since(*started))
            .collect();

        for (pod, target, _) in &pods {
            self.csi
                .node
                .clone()
                .node_unpublish_volume(NodeUnpublishVolumeRequest {
                    volume_id: pod.name.clone(),
                    target_path: target.display().to_string(),
                })
                .await?;
            self.api.delete_object("v1", "pods", NAMESPACE, &pod.name);
        }
        Ok(latencies)
    }

    async fn wait_until_waiting(&self, volume_id: &str) -> BenchResult<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let snapshot = self.running.manager().snapshot(volume_id).await;
            if snapshot.is_some_and(|s| s.waiting_on.is_some()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{volume_id} never waited on its pod").into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Watches the targets from one thread (so that 64 waiters do not crowd two cores) and returns,
/// for each, when its certificate was first readable and named `san`.
fn observe(targets: &[(PathBuf, String)]) -> BenchResult<Vec<Instant>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen: Vec<Option<Instant>> = vec![None; targets.len()];
    while seen.iter().any(Option::is_none) {
        for ((target, san), seen) in targets.iter().zip(seen.iter_mut()) {
            if seen.is_none() && names(target, san) {
                *seen = Some(Instant::now());
            }
        }
        if Instant::now() > deadline {
            return Err("certificates did not appear within 30 s".into());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok(seen.into_iter().flatten().collect())
}

fn names(target: &Path, san: &str) -> bool {
    let Ok(chain) = std::fs::read_to_string(target.join("tls.crt")) else {
        return false;
    };
    cert_manager_csi_driver::certificate::inspect_leaf(&chain)
        .is_ok_and(|leaf| leaf.subject_alt_names.iter().any(|name| name == san))
}

fn target_of(root: &Path, volume_id: &str) -> PathBuf {
    root.join(format!(
        "kubelet/pods/{volume_id}/volumes/kubernetes.io~csi/tls/mount"
    ))
}

fn context_of(pod: &SamplePod) -> std::collections::HashMap<String, String> {
    sample_volume_context(
        pod,
        &[(key::KEY_ALGORITHM, "ECDSA"), (key::IP_SANS, "${POD_IP}")],
    )
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn report(label: &str, mut samples: Vec<Duration>, target: &str) {
    samples.sort_unstable();
    println!(
        "patch → certificate in the volume, {label}: p50 {}, p99 {}, max {}{target}",
        ms(common::percentile(&samples, 50.0)),
        ms(common::percentile(&samples, 99.0)),
        ms(samples.last().copied().unwrap_or_default())
    );
}
