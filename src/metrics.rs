//! What the driver counts, in the Prometheus text format: csi-lib's `certmanager_csi_*` families
//! (which upstream defines but never serves), gRPC calls with their latency, renewal outcomes,
//! and the process's own resources. Kept as plain maps behind one lock: the driver updates a few
//! numbers per issuance, and rendering happens once per scrape.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, MutexGuard};

/// Upper bounds (seconds) of the gRPC latency histogram: from a cached republish to a slow issuer.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0, 60.0,
];

/// The current certificate (request) of one volume, for the `certificate_request_*` families.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestState {
    /// The CertificateRequest's name (cert-manager backend), else the volume ID.
    pub name: String,
    pub namespace: String,
    pub issuer_name: String,
    pub issuer_kind: String,
    pub issuer_group: String,
    /// `True` (issued), `False` (the last attempt failed) or `Unknown`.
    pub ready: &'static str,
    pub not_after: Option<SystemTime>,
    pub renewal_at: Option<SystemTime>,
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// A request as stored: the labels most volumes share (namespace, issuer) are interned, which
/// at 10,000 volumes saves a few MiB.
struct StoredRequest {
    /// `None`: named after its volume (the embedded CA makes no CertificateRequests).
    name: Option<Box<str>>,
    labels: Arc<RequestLabels>,
    ready: &'static str,
    not_after: Option<SystemTime>,
    renewal_at: Option<SystemTime>,
}

/// The labels of a request that many volumes share.
#[derive(PartialEq, Eq, Hash)]
struct RequestLabels {
    namespace: Box<str>,
    issuer_name: Box<str>,
    issuer_kind: Box<str>,
    issuer_group: Box<str>,
}

/// Everything kept per volume, under one key.
#[derive(Default)]
struct VolumeSeries {
    issue_requests: u64,
    issue_errors: u64,
    request: Option<StoredRequest>,
}

#[derive(Default)]
struct State {
    volumes: BTreeMap<Box<str>, VolumeSeries>,
    interned: HashSet<Arc<RequestLabels>>,
    grpc_calls: BTreeMap<(String, String), u64>,
    grpc_latency: BTreeMap<String, Histogram>,
    renewals: BTreeMap<&'static str, u64>,
}

impl State {
    fn volume(&mut self, volume_id: &str) -> &mut VolumeSeries {
        if !self.volumes.contains_key(volume_id) {
            self.volumes
                .insert(volume_id.into(), VolumeSeries::default());
        }
        self.volumes.get_mut(volume_id).expect("inserted above")
    }

    fn intern(&mut self, labels: RequestLabels) -> Arc<RequestLabels> {
        if let Some(existing) = self.interned.get(&labels) {
            return Arc::clone(existing);
        }
        let labels = Arc::new(labels);
        self.interned.insert(Arc::clone(&labels));
        labels
    }

    fn store(&mut self, volume_id: &str, request: RequestState) -> StoredRequest {
        StoredRequest {
            name: (request.name != volume_id).then(|| request.name.into_boxed_str()),
            labels: self.intern(RequestLabels {
                namespace: request.namespace.into(),
                issuer_name: request.issuer_name.into(),
                issuer_kind: request.issuer_kind.into(),
                issuer_group: request.issuer_group.into(),
            }),
            ready: request.ready,
            not_after: request.not_after,
            renewal_at: request.renewal_at,
        }
    }
}

/// The driver's metrics. Shared by the volume manager, the gRPC services and the HTTP endpoint.
pub struct Metrics {
    node: String,
    started: SystemTime,
    state: Mutex<State>,
}

/// Counts that are read from elsewhere at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub managed_volumes: usize,
    /// Of the managed volumes, those taken over from the Go driver.
    pub adopted_volumes: usize,
    pub managed_requests: usize,
    /// Of the managed volumes, those whose issuance waits on their pod (readiness gates).
    pub waiting_volumes: usize,
    /// The key pool's hits, misses and levels (`--key-pool-size`).
    pub key_pool: crate::keys::pool::PoolStats,
    /// Pod Events given up on (not written after their retries, or a full queue).
    pub events_dropped: u64,
}

impl Metrics {
    pub fn new(node: &str) -> Metrics {
        Metrics {
            node: node.to_string(),
            started: SystemTime::now(),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// An issuance (first or renewal) was attempted for a volume.
    pub fn issue_attempted(&self, volume_id: &str) {
        self.state().volume(volume_id).issue_requests += 1;
    }

    /// An issuance failed.
    pub fn issue_failed(&self, volume_id: &str) {
        self.state().volume(volume_id).issue_errors += 1;
    }

    /// A renewal finished (`success` or `failure`).
    pub fn renewal_finished(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        *self.state().renewals.entry(result).or_default() += 1;
    }

    /// The volume's current certificate request.
    pub fn set_request(&self, volume_id: &str, request: RequestState) {
        let mut state = self.state();
        let stored = state.store(volume_id, request);
        state.volume(volume_id).request = Some(stored);
    }

    /// When the volume's certificate is next renewed.
    pub fn set_renewal_time(&self, volume_id: &str, at: SystemTime) {
        if let Some(request) = self
            .state()
            .volumes
            .get_mut(volume_id)
            .and_then(|v| v.request.as_mut())
        {
            request.renewal_at = Some(at);
        }
    }

    /// Marks the volume's request as failing (its last attempt failed), keeping its other facts;
    /// `fallback` describes a volume that never had a certificate.
    pub fn mark_request_failing(&self, volume_id: &str, fallback: RequestState) {
        let mut state = self.state();
        if let Some(request) = state
            .volumes
            .get_mut(volume_id)
            .and_then(|v| v.request.as_mut())
        {
            request.ready = "False";
            return;
        }
        let stored = state.store(volume_id, fallback);
        state.volume(volume_id).request = Some(stored);
    }

    /// Forgets a volume that is gone.
    pub fn forget_volume(&self, volume_id: &str) {
        self.state().volumes.remove(volume_id);
    }

    /// One gRPC call finished.
    pub fn grpc_call(&self, method: &str, code: tonic::Code, took: Duration) {
        let mut state = self.state();
        *state
            .grpc_calls
            .entry((method.to_string(), format!("{code:?}")))
            .or_default() += 1;
        let histogram = state.grpc_latency.entry(method.to_string()).or_default();
        let seconds = took.as_secs_f64();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// The exposition, Prometheus text format 0.0.4.
    pub fn render(&self, gauges: Gauges) -> String {
        let state = self.state();
        let node = escape(&self.node);
        let mut out = String::with_capacity(4096);
        let mut lines = Vec::new();

        let name = header(
            &mut out,
            "certmanager_csi_issue_requests_total",
            "counter",
            "Issuance attempts (first issuance and renewals), by volume.",
        );
        for (volume, series) in &state.volumes {
            lines.push(format!(
                "{name}{{node=\"{node}\",volume=\"{}\"}} {}",
                escape(volume),
                series.issue_requests
            ));
        }
        flush(&mut out, &mut lines);

        let name = header(
            &mut out,
            "certmanager_csi_issue_errors_total",
            "counter",
            "Failed issuance attempts, by volume.",
        );
        for (volume, series) in state.volumes.iter().filter(|(_, s)| s.issue_errors > 0) {
            lines.push(format!(
                "{name}{{node=\"{node}\",volume=\"{}\"}} {}",
                escape(volume),
                series.issue_errors
            ));
        }
        flush(&mut out, &mut lines);

        let name = header(
            &mut out,
            "certmanager_csi_certificate_request_ready_status",
            "gauge",
            "The Ready condition of each volume's current certificate request (1 for the current value).",
        );
        for (volume, request) in requests(&state) {
            for condition in ["True", "False", "Unknown"] {
                lines.push(format!(
                    "{name}{{{},condition=\"{condition}\"}} {}",
                    request_labels(volume, request),
                    u8::from(request.ready == condition)
                ));
            }
        }
        flush(&mut out, &mut lines);

        for (name, help, pick) in [
            (
                "certmanager_csi_certificate_request_expiration_timestamp_seconds",
                "When each volume's current certificate expires (Unix seconds).",
                (|r: &StoredRequest| r.not_after) as fn(&StoredRequest) -> Option<SystemTime>,
            ),
            (
                "certmanager_csi_certificate_request_renewal_timestamp_seconds",
                "When each volume's certificate is next renewed (Unix seconds).",
                |r: &StoredRequest| r.renewal_at,
            ),
        ] {
            let name = header(&mut out, name, "gauge", help);
            for (volume, request) in requests(&state) {
                if let Some(at) = pick(request) {
                    lines.push(format!(
                        "{name}{{{}}} {}",
                        request_labels(volume, request),
                        unix_seconds(at)
                    ));
                }
            }
            flush(&mut out, &mut lines);
        }

        let name = header(
            &mut out,
            "certmanager_csi_managed_volume_count",
            "gauge",
            "Volumes this driver manages.",
        );
        lines.push(format!(
            "{name}{{node=\"{node}\"}} {}",
            gauges.managed_volumes
        ));
        flush(&mut out, &mut lines);
        let name = header(
            &mut out,
            "certmanager_csi_adopted_volume_count",
            "gauge",
            "Managed volumes that were mounted by the Go driver and taken over at start.",
        );
        lines.push(format!(
            "{name}{{node=\"{node}\"}} {}",
            gauges.adopted_volumes
        ));
        flush(&mut out, &mut lines);
        let name = header(
            &mut out,
            "certmanager_csi_waiting_volume_count",
            "gauge",
            "Managed volumes whose certificate waits on their pod (--pod-readiness-gate).",
        );
        lines.push(format!(
            "{name}{{node=\"{node}\"}} {}",
            gauges.waiting_volumes
        ));
        flush(&mut out, &mut lines);
        let pool = &gauges.key_pool;
        let name = header(
            &mut out,
            "certmanager_csi_key_pool_hits_total",
            "counter",
            "First issuances that took a pre-generated private key from the pool.",
        );
        lines.push(format!("{name}{{node=\"{node}\"}} {}", pool.hits));
        flush(&mut out, &mut lines);
        let name = header(
            &mut out,
            "certmanager_csi_key_pool_misses_total",
            "counter",
            "First issuances that generated their own private key (pool empty, or off).",
        );
        lines.push(format!("{name}{{node=\"{node}\"}} {}", pool.misses));
        flush(&mut out, &mut lines);
        let name = header(
            &mut out,
            "certmanager_csi_key_pool_keys",
            "gauge",
            "Pre-generated private keys ready in the pool, by key kind.",
        );
        for level in &pool.levels {
            lines.push(format!(
                "{name}{{node=\"{node}\",algorithm=\"{}\",size=\"{}\"}} {}",
                level.kind.algorithm, level.kind.size, level.keys
            ));
        }
        flush(&mut out, &mut lines);
        let name = header(
            &mut out,
            "certmanager_csi_managed_certificate_request_count",
            "gauge",
            "CertificateRequests of this node that the driver's watch holds.",
        );
        lines.push(format!(
            "{name}{{node=\"{node}\"}} {}",
            gauges.managed_requests
        ));
        flush(&mut out, &mut lines);
        let name = header(
            &mut out,
            "certmanager_csi_events_dropped_total",
            "counter",
            "Pod Events the driver gave up on: not written after its retries, or dropped from a full queue.",
        );
        lines.push(format!(
            "{name}{{node=\"{node}\"}} {}",
            gauges.events_dropped
        ));
        flush(&mut out, &mut lines);

        let name = header(
            &mut out,
            "certmanager_csi_renewals_total",
            "counter",
            "Finished renewals, by result.",
        );
        for result in ["success", "failure"] {
            let count = state.renewals.get(result).copied().unwrap_or(0);
            lines.push(format!("{name}{{result=\"{result}\"}} {count}"));
        }
        flush(&mut out, &mut lines);

        let name = header(
            &mut out,
            "certmanager_csi_grpc_requests_total",
            "counter",
            "CSI gRPC calls, by method and status code.",
        );
        for ((method, code), count) in &state.grpc_calls {
            lines.push(format!(
                "{name}{{method=\"{}\",code=\"{}\"}} {count}",
                escape(method),
                escape(code)
            ));
        }
        flush(&mut out, &mut lines);

        let name = header(
            &mut out,
            "certmanager_csi_grpc_request_duration_seconds",
            "histogram",
            "How long CSI gRPC calls took, by method.",
        );
        for (method, histogram) in &state.grpc_latency {
            let method = escape(method);
            for (bound, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets) {
                lines.push(format!(
                    "{name}_bucket{{method=\"{method}\",le=\"{bound}\"}} {count}"
                ));
            }
            lines.push(format!(
                "{name}_bucket{{method=\"{method}\",le=\"+Inf\"}} {}",
                histogram.count
            ));
            lines.push(format!(
                "{name}_sum{{method=\"{method}\"}} {}",
                histogram.sum
            ));
            lines.push(format!(
                "{name}_count{{method=\"{method}\"}} {}",
                histogram.count
            ));
        }
        flush(&mut out, &mut lines);
        drop(state);

        let process = ProcessStats::read();
        for (name, kind, help, value) in [
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                process.resident_bytes,
            ),
            (
                "process_open_fds",
                "gauge",
                "Open file descriptors.",
                process.open_fds,
            ),
            (
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time spent, in seconds.",
                process.cpu_seconds,
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "When the process started (Unix seconds).",
                unix_seconds(self.started),
            ),
        ] {
            let name = header(&mut out, name, kind, help);
            lines.push(format!("{name} {value}"));
            flush(&mut out, &mut lines);
        }
        out
    }
}

/// Writes a family's HELP and TYPE lines; returns its name for the sample lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) -> String {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name.to_string()
}

fn flush(out: &mut String, lines: &mut Vec<String>) {
    for line in lines.drain(..) {
        out.push_str(&line);
        out.push('\n');
    }
}

/// Each volume's current request, with the volume's ID.
fn requests(state: &State) -> impl Iterator<Item = (&str, &StoredRequest)> {
    state
        .volumes
        .iter()
        .filter_map(|(volume, series)| Some((&**volume, series.request.as_ref()?)))
}

fn request_labels(volume_id: &str, request: &StoredRequest) -> String {
    let labels = &request.labels;
    format!(
        "name=\"{}\",namespace=\"{}\",issuer_name=\"{}\",issuer_kind=\"{}\",issuer_group=\"{}\"",
        escape(request.name.as_deref().unwrap_or(volume_id)),
        escape(&labels.namespace),
        escape(&labels.issuer_name),
        escape(&labels.issuer_kind),
        escape(&labels.issuer_group)
    )
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// The process's own resources, from /proc.
struct ProcessStats {
    resident_bytes: f64,
    open_fds: f64,
    cpu_seconds: f64,
}

impl ProcessStats {
    fn read() -> ProcessStats {
        let resident_bytes = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |pages| pages * page_size());
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0.0, |dir| dir.count() as f64);
        // utime and stime are fields 14 and 15, counted in clock ticks (USER_HZ = 100).
        let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| {
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
            })
            .map_or(0.0, |ticks| ticks / 100.0);
        ProcessStats {
            resident_bytes,
            open_fds,
            cpu_seconds,
        }
    }
}

fn page_size() -> f64 {
    rustix::param::page_size() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_families_with_their_labels() {
        let metrics = Metrics::new("node-1");
        metrics.issue_attempted("csi-a");
        metrics.issue_attempted("csi-a");
        metrics.issue_failed("csi-a");
        metrics.renewal_finished(true);
        metrics.set_request(
            "csi-a",
            RequestState {
                name: "web-0-abc".into(),
                namespace: "apps".into(),
                issuer_name: "ca".into(),
                issuer_kind: "ClusterIssuer".into(),
                issuer_group: "cert-manager.io".into(),
                ready: "True",
                not_after: Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000)),
                renewal_at: Some(UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
            },
        );
        metrics.grpc_call(
            "NodePublishVolume",
            tonic::Code::Ok,
            Duration::from_millis(3),
        );
        let text = metrics.render(Gauges {
            managed_volumes: 1,
            adopted_volumes: 1,
            managed_requests: 2,
            waiting_volumes: 3,
            key_pool: crate::keys::pool::PoolStats {
                hits: 5,
                misses: 2,
                levels: vec![crate::keys::pool::PoolLevel {
                    kind: crate::keys::pool::KeyKind::DEFAULT,
                    keys: 11,
                }],
            },
            events_dropped: 4,
        });
        for expected in [
            "# TYPE certmanager_csi_issue_requests_total counter",
            "certmanager_csi_issue_requests_total{node=\"node-1\",volume=\"csi-a\"} 2",
            "certmanager_csi_issue_errors_total{node=\"node-1\",volume=\"csi-a\"} 1",
            "certmanager_csi_certificate_request_ready_status{name=\"web-0-abc\",namespace=\"apps\",issuer_name=\"ca\",issuer_kind=\"ClusterIssuer\",issuer_group=\"cert-manager.io\",condition=\"True\"} 1",
            "condition=\"False\"} 0",
            "certmanager_csi_certificate_request_expiration_timestamp_seconds{name=\"web-0-abc\",namespace=\"apps\",issuer_name=\"ca\",issuer_kind=\"ClusterIssuer\",issuer_group=\"cert-manager.io\"} 2000000000",
            "certmanager_csi_certificate_request_renewal_timestamp_seconds{name=\"web-0-abc\"",
            "certmanager_csi_managed_volume_count{node=\"node-1\"} 1",
            "certmanager_csi_adopted_volume_count{node=\"node-1\"} 1",
            "certmanager_csi_waiting_volume_count{node=\"node-1\"} 3",
            "certmanager_csi_managed_certificate_request_count{node=\"node-1\"} 2",
            "# TYPE certmanager_csi_events_dropped_total counter",
            "certmanager_csi_events_dropped_total{node=\"node-1\"} 4",
            "# TYPE certmanager_csi_key_pool_hits_total counter",
            "certmanager_csi_key_pool_hits_total{node=\"node-1\"} 5",
            "certmanager_csi_key_pool_misses_total{node=\"node-1\"} 2",
            "certmanager_csi_key_pool_keys{node=\"node-1\",algorithm=\"RSA\",size=\"2048\"} 11",
            "certmanager_csi_renewals_total{result=\"success\"} 1",
            "certmanager_csi_renewals_total{result=\"failure\"} 0",
            "certmanager_csi_grpc_requests_total{method=\"NodePublishVolume\",code=\"Ok\"} 1",
            "certmanager_csi_grpc_request_duration_seconds_bucket{method=\"NodePublishVolume\",le=\"0.0025\"} 0",
            "certmanager_csi_grpc_request_duration_seconds_bucket{method=\"NodePublishVolume\",le=\"0.005\"} 1",
            "certmanager_csi_grpc_request_duration_seconds_count{method=\"NodePublishVolume\"} 1",
            "# TYPE process_resident_memory_bytes gauge",
            "process_open_fds ",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        metrics.forget_volume("csi-a");
        let text = metrics.render(Gauges::default());
        assert!(!text.contains("csi-a"));
        assert!(!text.contains("web-0-abc"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
