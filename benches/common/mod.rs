//! Shared by the benchmark programs: running one, the driver configuration they start from,
//! describing the machine the figures come from, and summarising latency samples.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use cert_manager_csi_driver::driver::{DriverConfig, IssuerBackend, MountMode};

/// The CPU model from /proc/cpuinfo, so printed figures say what they were measured on.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown (no model name in /proc/cpuinfo)".to_string())
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The kernel release (`uname -r`): mounts and process kills are kernel work.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| release.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The tmpfs size cap of every volume, as in the demo.
pub const VOLUME_SIZE_BYTES: u64 = 1024 * 1024;

/// Runs a benchmark's `run` on a multi-threaded runtime; a failure is printed and exits non-zero.
pub fn block_on<E: std::fmt::Display>(run: impl Future<Output = Result<(), E>>) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nbenchmark failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A driver under `root` on the embedded CA; a benchmark changes what it measures.
pub fn driver_config(root: &Path, mount_mode: MountMode) -> DriverConfig {
    DriverConfig {
        node_id: "bench-node".into(),
        driver_name: "csi.cert-manager.io".into(),
        socket_path: root.join("plugin/csi.sock"),
        data_root: root.join("driver-state"),
        issuer_backend: IssuerBackend::LocalCa,
        local_ca_dir: root.join("local-ca"),
        max_volumes_per_node: 0,
        volume_size_bytes: VOLUME_SIZE_BYTES,
        renewal_concurrency: 4,
        key_pool_size: cert_manager_csi_driver::keys::pool::DEFAULT_SIZE,
        renewal_backoff: Default::default(),
        continue_on_not_ready: false,
        metrics_address: None,
        mount_mode,
        strict_attributes: false,
        kube: Default::default(),
        cert_manager: Default::default(),
        default_duration: cert_manager_csi_driver::attributes::DEFAULT_DURATION,
        adopt_csi_lib_data_root: None,
        publish_in_csi_lib_layout: false,
        readiness_gates: Vec::new(),
        gate_backoff: Default::default(),
    }
}

/// Real tmpfs mounts as root (as the driver runs), plain directories otherwise.
pub fn mount_mode() -> MountMode {
    if rustix::process::geteuid().is_root() {
        MountMode::Tmpfs
    } else {
        MountMode::PlainDirectories
    }
}

/// What the volumes are, for the header of the figures.
pub fn mounts_described(mode: MountMode) -> &'static str {
    match mode {
        MountMode::Tmpfs => "real tmpfs mounts",
        MountMode::PlainDirectories => "plain directories (not root)",
    }
}

/// The driver on the cert-manager backend, talking to the test API server through `kubeconfig`,
/// with the client-side limiter out of the way: the figures are about the driver.
pub fn cert_manager_config(
    root: &Path,
    mount_mode: MountMode,
    kubeconfig: PathBuf,
) -> DriverConfig {
    DriverConfig {
        issuer_backend: IssuerBackend::CertManager,
        local_ca_dir: root.join("unused-ca"),
        kube: cert_manager_csi_driver::kubernetes::KubeSettings {
            kubeconfig: Some(kubeconfig),
            qps: 100_000.0,
            burst: 100_000,
        },
        ..driver_config(root, mount_mode)
    }
}

/// The CPU, its cores and the kernel, for the header of the figures.
pub fn machine() -> String {
    format!(
        "{} ({} cores), kernel {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel_release()
    )
}

/// A work directory for a run (removed when the guard drops) and its canonical path.
pub fn work_dir(prefix: &str) -> std::io::Result<(tempfile::TempDir, PathBuf)> {
    let work = tempfile::Builder::new().prefix(prefix).tempdir()?;
    let root = work.path().canonicalize()?;
    Ok((work, root))
}

/// CPU ticks (user + system) and context switches of each of the process's threads, by thread
/// id: a blocking-pool thread that exits between two readings takes its count with it, so only
/// threads present in both are compared (see [`switches_between`]).
pub fn cpu_and_switches(
    pid: u32,
) -> Result<(u64, HashMap<String, u64>), Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields.get(11).ok_or("short stat")?.parse::<u64>()?
        + fields.get(12).ok_or("short stat")?.parse::<u64>()?;
    let mut switches = HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?;
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let mut count = 0;
        for line in status.lines() {
            if let Some(value) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                count += value.trim().parse::<u64>().unwrap_or(0);
            }
        }
        switches.insert(task.file_name().to_string_lossy().into_owned(), count);
    }
    Ok((ticks, switches))
}

/// Context switches between two readings, of the threads present in both, plus every switch of
/// a thread that appeared in between.
pub fn switches_between(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, count)| count.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// Connects to the driver's CSI socket once it answers `Probe`, polling every 2 ms (fine enough
/// for the restart times the scale benchmark prints); an error after `deadline`.
pub async fn connect_when_ready(
    socket: &Path,
    deadline: Duration,
) -> Result<cert_manager_csi_driver::csi::client::CsiClient, String> {
    let started = tokio::time::Instant::now();
    loop {
        if let Ok(mut csi) = cert_manager_csi_driver::csi::client::connect(socket).await
            && csi
                .identity
                .probe(cert_manager_csi_driver::csi::proto::ProbeRequest {})
                .await
                .is_ok()
        {
            return Ok(csi);
        }
        if started.elapsed() > deadline {
            return Err(format!("the driver did not come up in {deadline:?}"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Publishes sample volumes `vol-<index>` (pods `pod-<index>` in `namespace`, targets from
/// `target_of`) with `overrides` on the sample attributes, `in_flight` at a time, as kubelet
/// would for that many pods at once. Fails on the first publish that fails.
pub async fn publish_sample_volumes(
    csi: &cert_manager_csi_driver::csi::client::CsiClient,
    indexes: std::ops::Range<usize>,
    namespace: &str,
    overrides: &[(&str, &str)],
    target_of: impl Fn(&str) -> PathBuf,
    in_flight: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    use cert_manager_csi_driver::demo::{SamplePod, publish_request, sample_volume_context};
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = Vec::with_capacity(indexes.len());
    for index in indexes {
        let volume_id = format!("vol-{index:05}");
        let target = target_of(&volume_id);
        std::fs::create_dir_all(target.parent().ok_or("a target has a parent")?)?;
        let pod = SamplePod {
            name: format!("pod-{index:05}"),
            namespace: namespace.into(),
            uid: format!("uid-{index:05}"),
        };
        let mut context: HashMap<String, String> = sample_volume_context(&pod, overrides);
        // Without `renew-before` in the overrides: renewal at two thirds of the lifetime.
        if !overrides
            .iter()
            .any(|(key, _)| *key == cert_manager_csi_driver::attributes::key::RENEW_BEFORE)
        {
            context.remove(cert_manager_csi_driver::attributes::key::RENEW_BEFORE);
        }
        let request = publish_request(&volume_id, &target, context);
        let mut node = csi.node.clone();
        let permit = std::sync::Arc::clone(&permits).acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let result = node.node_publish_volume(request).await;
            drop(permit);
            result
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
