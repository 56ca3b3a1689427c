//! Publishing through the cert-manager backend, against the test API server (HTTPS, h2 or
//! HTTP/1.1 by ALPN) with a signer that answers at once: publish latency at 1 and 64 in flight,
//! API requests per issuance, the time from the signer's status update to the publish returning,
//! and the connections each phase opened.
//!
//! Next to the driver, in the same run, through the same server and signer: the floor, a bare
//! kube client that only creates a CertificateRequest and waits for the signer's status update on
//! its watch (one shared client, on the same transport the driver uses). The driver's overhead is
//! the difference: at 1 in flight (p50), and as the wall time of bursts of 64 at once.
//!
//! Run: `cargo bench --bench cert_manager` (as root for real tmpfs mounts; `TMPDIR=/dev/shm` keeps
//! file-system churn of the work directory out of the figures).

mod common;
mod floor;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use cert_manager_csi_driver::csi::client::{self, CsiClient};
use cert_manager_csi_driver::csi::proto::NodeUnpublishVolumeRequest;
use cert_manager_csi_driver::demo::{SamplePod, publish_request, sample_volume_context};
use cert_manager_csi_driver::driver;
use kube_test_server::{Signer, TestApiServer};
use tokio::time::Instant;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const SEQUENTIAL: usize = 300;
const CONCURRENT: usize = 1280;
const IN_FLIGHT: usize = 64;
/// Bursts of `IN_FLIGHT` at once, alternating driver and floor so that a noisy neighbour hits both.
const BURSTS: usize = 7;
/// The targets for the driver's overhead over the floor.
const TARGET_OVERHEAD_P50: Duration = Duration::from_millis(1);
const TARGET_BURST_RATIO: f64 = 1.1;

fn main() -> ExitCode {
    common::block_on(run())
}

/// One publish: which volume, when it returned, how long it took.
struct Published {
    volume_id: String,
    returned_at: Instant,
    latency: Duration,
}

async fn run() -> BenchResult<()> {
    let mount_mode = common::mount_mode();
    let work = tempfile::Builder::new().prefix("cm-csi-bench-").tempdir()?;
    let root = work.path().canonicalize()?;
    println!("cert-manager backend: publish through the test API server (instant signer)");
    println!(
        "  cpu    {} ({} cores)",
        common::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  volumes {}, work dir {}",
        common::mounts_described(mount_mode),
        root.display()
    );
    println!("  keys   ECDSA P-256; API over HTTPS on loopback (ALPN h2, http/1.1)\n");

    let api = TestApiServer::start().await;
    let signer = Signer::start(&api);
    let kubeconfig = root.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "driver-token");
    let config = common::cert_manager_config(&root, mount_mode, kubeconfig.clone());
    let running = driver::start(config.clone()).await?;
    let csi = client::connect(running.socket_path()).await?;

    // Warm up: connections, the watch's first list, allocator.
    let warm = publish_many(&csi, &root, "warm", 20, 1).await?;
    unpublish_all(&csi, &root, &warm).await?;
    let floor = floor::Floor::start(&kubeconfig).await?;
    floor.sequential(20).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_start = api.connections();
    println!(
        "connections after warm-up: {} accepted (h2 {}, http/1.1 {})",
        at_start.accepted, at_start.h2, at_start.http1
    );

    api.clear_requests();
    let before = api.connections();
    let sequential = publish_many(&csi, &root, "seq", SEQUENTIAL, 1).await?;
    let driver_sequential_connections = opened_since(&api, before);
    // Events are written in the background; let them land before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let audit = api.requests();
    report_latency("1 in flight", &sequential);
    report_api_requests(&audit, SEQUENTIAL);
    report_wake_up(&api, &signer, &sequential);
    unpublish_all(&csi, &root, &sequential).await?;

    let before = api.connections();
    let floor_sequential = sorted(floor.sequential(SEQUENTIAL).await?);
    let floor_sequential_connections = opened_since(&api, before);

    // Bursts of IN_FLIGHT at once: driver, floor, driver, floor...
    let mut driver_walls = Vec::with_capacity(BURSTS);
    let mut floor_walls = Vec::with_capacity(BURSTS);
    let (mut driver_burst_connections, mut floor_burst_connections) = (0, 0);
    for round in 0..BURSTS {
        let before = api.connections();
        let started = Instant::now();
        let burst =
            publish_many(&csi, &root, &format!("burst{round}"), IN_FLIGHT, IN_FLIGHT).await?;
        driver_walls.push(started.elapsed());
        driver_burst_connections += opened_since(&api, before);
        unpublish_all(&csi, &root, &burst).await?;

        let before = api.connections();
        floor_walls.push(floor.burst(IN_FLIGHT).await?);
        floor_burst_connections += opened_since(&api, before);
    }
    let (driver_walls, floor_walls) = (sorted(driver_walls), sorted(floor_walls));

    let driver_sequential = sorted(sequential.iter().map(|p| p.latency).collect());
    report_floor(&FloorFigures {
        driver_sequential: &driver_sequential,
        floor_sequential: &floor_sequential,
        driver_walls: &driver_walls,
        floor_walls: &floor_walls,
    });
    println!("connections opened per phase (server-side accepts):");
    println!(
        "  driver, {SEQUENTIAL} at 1 in flight: {driver_sequential_connections}; floor, {SEQUENTIAL} at 1 in flight: {floor_sequential_connections}"
    );
    println!(
        "  driver, {BURSTS} bursts of {IN_FLIGHT}: {driver_burst_connections}; floor, {BURSTS} bursts of {IN_FLIGHT}: {floor_burst_connections}"
    );

    let before = api.connections();
    let started = Instant::now();
    let concurrent = publish_many(&csi, &root, "par", CONCURRENT, IN_FLIGHT).await?;
    let elapsed = started.elapsed();
    report_latency(&format!("{IN_FLIGHT} in flight"), &concurrent);
    println!(
        "  throughput {:.0} volumes/s ({CONCURRENT} volumes in {:.2} s), connections opened {}",
        CONCURRENT as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        opened_since(&api, before)
    );
    report_wake_up(&api, &signer, &concurrent);
    unpublish_all(&csi, &root, &concurrent).await?;

    let total = api.connections();
    println!(
        "connections over the whole run: {} accepted (h2 {}, http/1.1 {}, failed handshakes {})",
        total.accepted, total.h2, total.http1, total.tls_failed
    );
    running.stop().await?;
    Ok(())
}

/// Connections the server accepted since `before`.
fn opened_since(api: &TestApiServer, before: kube_test_server::Connections) -> usize {
    api.connections().accepted - before.accepted
}

struct FloorFigures<'a> {
    driver_sequential: &'a [Duration],
    floor_sequential: &'a [Duration],
    driver_walls: &'a [Duration],
    floor_walls: &'a [Duration],
}

fn report_floor(figures: &FloorFigures) {
    let triple = |samples: &[Duration]| {
        format!(
            "p50 {}, p90 {}, p99 {}",
            ms(common::percentile(samples, 50.0)),
            ms(common::percentile(samples, 90.0)),
            ms(common::percentile(samples, 99.0))
        )
    };
    println!("driver against the floor (bare kube client: create + wait on its watch):");
    println!(
        "  1 in flight ({} each)  driver {}",
        figures.driver_sequential.len(),
        triple(figures.driver_sequential)
    );
    println!(
        "                         floor  {}",
        triple(figures.floor_sequential)
    );
    let driver_p50 = common::percentile(figures.driver_sequential, 50.0);
    let floor_p50 = common::percentile(figures.floor_sequential, 50.0);
    let overhead = driver_p50.saturating_sub(floor_p50);
    println!(
        "  overhead p50 {}  target ≤ {}: {}",
        ms(overhead),
        ms(TARGET_OVERHEAD_P50),
        verdict(overhead <= TARGET_OVERHEAD_P50)
    );
    let walls = |samples: &[Duration]| {
        samples
            .iter()
            .map(|wall| format!("{:.1}", wall.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let driver_wall = common::percentile(figures.driver_walls, 50.0);
    let floor_wall = common::percentile(figures.floor_walls, 50.0);
    println!(
        "  burst of {IN_FLIGHT} at once, wall ({} bursts each, median)  driver {}  floor {}",
        figures.driver_walls.len(),
        ms(driver_wall),
        ms(floor_wall)
    );
    println!(
        "    every burst, ms: driver [{}], floor [{}]",
        walls(figures.driver_walls),
        walls(figures.floor_walls)
    );
    let ratio = driver_wall.as_secs_f64() / floor_wall.as_secs_f64().max(f64::EPSILON);
    println!(
        "  burst wall ratio driver/floor {ratio:.2}×  target ≤ {TARGET_BURST_RATIO}×: {}",
        verdict(ratio <= TARGET_BURST_RATIO)
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

fn target_of(root: &Path, volume_id: &str) -> PathBuf {
    root.join(format!(
        "kubelet/pods/{volume_id}/volumes/kubernetes.io~csi/tls/mount"
    ))
}

fn context_of(volume_id: &str) -> HashMap<String, String> {
    let pod = SamplePod {
        name: volume_id.to_string(),
        namespace: "bench".into(),
        uid: format!("uid-{volume_id}"),
    };
    sample_volume_context(&pod, &[(key::KEY_ALGORITHM, "ECDSA")])
}

/// Publishes `count` volumes, `in_flight` at a time, over one shared connection (the
/// connection-per-call cost is measured by the `publish` benchmark).
async fn publish_many(
    csi: &CsiClient,
    root: &Path,
    prefix: &str,
    count: usize,
    in_flight: usize,
) -> BenchResult<Vec<Published>> {
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = Vec::with_capacity(count);
    for index in 0..count {
        let volume_id = format!("{prefix}-{index}");
        let target = target_of(root, &volume_id);
        std::fs::create_dir_all(target.parent().unwrap())?;
        let request = publish_request(&volume_id, &target, context_of(&volume_id));
        let mut node = csi.node.clone();
        let permit = Arc::clone(&permits).acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let result = node.node_publish_volume(request).await;
            let returned_at = Instant::now();
            drop(permit);
            result.map(|_| Published {
                volume_id,
                returned_at,
                latency: returned_at - started,
            })
        }));
    }
    let mut published = Vec::with_capacity(count);
    for task in tasks {
        published.push(task.await??);
    }
    Ok(published)
}

async fn unpublish_all(csi: &CsiClient, root: &Path, published: &[Published]) -> BenchResult<()> {
    for volume in published {
        csi.node
            .clone()
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: volume.volume_id.clone(),
                target_path: target_of(root, &volume.volume_id).display().to_string(),
            })
            .await?;
    }
    Ok(())
}

fn sorted(mut samples: Vec<Duration>) -> Vec<Duration> {
    samples.sort_unstable();
    samples
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn report_latency(label: &str, published: &[Published]) {
    let latencies = sorted(published.iter().map(|p| p.latency).collect());
    println!(
        "publish latency, {label} ({} volumes): p50 {}, p99 {}, max {}",
        latencies.len(),
        ms(common::percentile(&latencies, 50.0)),
        ms(common::percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default())
    );
}

fn report_api_requests(audit: &[kube_test_server::AuditEntry], issuances: usize) {
    let per = |filter: &dyn Fn(&kube_test_server::AuditEntry) -> bool| {
        audit.iter().filter(|e| filter(e)).count() as f64 / issuances as f64
    };
    let is_write = |e: &kube_test_server::AuditEntry| e.method != "GET";
    let on_requests = |e: &kube_test_server::AuditEntry| e.path.contains("certificaterequests");
    let on_events = |e: &kube_test_server::AuditEntry| e.path.contains("/events");
    println!("API requests per issuance ({issuances} issuances, sequential):");
    println!(
        "  writes      {:.2} (CertificateRequest {:.2}, Event {:.2})  target ≤ 2",
        per(&|e| is_write(e)),
        per(&|e| is_write(e) && on_requests(e)),
        per(&|e| is_write(e) && on_events(e)),
    );
    println!(
        "  reads       {:.2} (polling GETs of requests: {:.2})  target 0 polling reads",
        per(&|e| !is_write(e) && !e.watch),
        per(&|e| !is_write(e) && !e.watch && on_requests(e)),
    );
    println!(
        "  watch (re)connects during the run: {}",
        audit.iter().filter(|e| e.watch).count()
    );
}

/// For each publish, the time from the signer writing Ready=True to the publish returning.
fn report_wake_up(api: &TestApiServer, signer: &Signer, published: &[Published]) {
    let by_volume: HashMap<String, String> = api
        .list_objects("cert-manager.io/v1", "certificaterequests")
        .into_iter()
        .filter_map(|request| {
            let volume = request["metadata"]["annotations"]["csi.cert-manager.io/volume-id"]
                .as_str()?
                .to_string();
            let name = request["metadata"]["name"].as_str()?.to_string();
            Some((volume, name))
        })
        .collect();
    let gaps = sorted(
        published
            .iter()
            .filter_map(|p| {
                let name = by_volume.get(&p.volume_id)?;
                let signed = signer.signed_at("bench", name)?;
                Some(p.returned_at.saturating_duration_since(signed))
            })
            .collect(),
    );
    println!(
        "  signer status update → publish returned ({} matched): p50 {}, p99 {}, max {}  target p99 ≤ 5 ms",
        gaps.len(),
        ms(common::percentile(&gaps, 50.0)),
        ms(common::percentile(&gaps, 99.0)),
        ms(gaps.last().copied().unwrap_or_default())
    );
}
