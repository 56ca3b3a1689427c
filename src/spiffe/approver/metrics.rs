//! The approver's counters and its two HTTP endpoints: `/metrics` (Prometheus text) on
//! `--metrics-bind-address` and `/readyz` on `--readiness-probe-bind-address`, as upstream serves
//! them. Both listeners answer both paths (and `/healthz`); nothing secret is ever served.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use parking_lot::Mutex;
use tokio::net::TcpListener;

use super::evaluate::DenialClass;

/// What the approver counts.
pub struct ApproverMetrics {
    lease_name: String,
    approved_spiffe: AtomicU64,
    approved_other: AtomicU64,
    denied: Mutex<BTreeMap<DenialClass, u64>>,
    write_errors: AtomicU64,
    leader: AtomicBool,
    synced: AtomicBool,
}

impl ApproverMetrics {
    pub fn new(lease_name: &str) -> ApproverMetrics {
        ApproverMetrics {
            lease_name: lease_name.to_string(),
            approved_spiffe: AtomicU64::new(0),
            approved_other: AtomicU64::new(0),
            denied: Mutex::new(DenialClass::ALL.iter().map(|class| (*class, 0)).collect()),
            write_errors: AtomicU64::new(0),
            leader: AtomicBool::new(false),
            synced: AtomicBool::new(false),
        }
    }

    /// An approval written: of a SPIFFE request, or (with `--auto-approve-non-spiffe`) another.
    pub fn approved(&self, spiffe: bool) {
        let counter = if spiffe {
            &self.approved_spiffe
        } else {
            &self.approved_other
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn denied(&self, class: DenialClass) {
        *self.denied.lock().entry(class).or_default() += 1;
    }

    pub fn write_failed(&self) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// The CertificateRequest watch has listed everything once.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let prefix = "certmanager_csi_spiffe_approver";
        let _ = writeln!(
            out,
            "# HELP {prefix}_approved_total CertificateRequests approved, by kind of request (spiffe: for the SPIFFE issuer; other: --auto-approve-non-spiffe).\n# TYPE {prefix}_approved_total counter"
        );
        for (kind, counter) in [
            ("spiffe", &self.approved_spiffe),
            ("other", &self.approved_other),
        ] {
            let _ = writeln!(
                out,
                "{prefix}_approved_total{{kind=\"{kind}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP {prefix}_denied_total CertificateRequests denied, by the rule they broke.\n# TYPE {prefix}_denied_total counter"
        );
        for (class, count) in self.denied.lock().iter() {
            let _ = writeln!(
                out,
                "{prefix}_denied_total{{reason=\"{}\"}} {count}",
                class.metric_label()
            );
        }
        let _ = writeln!(
            out,
            "# HELP {prefix}_condition_write_errors_total Approved/Denied conditions that could not be written (retried later).\n# TYPE {prefix}_condition_write_errors_total counter\n{prefix}_condition_write_errors_total {}",
            self.write_errors.load(Ordering::Relaxed)
        );
        let leader = u8::from(self.leader.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP {prefix}_leader Whether this replica holds the leader election lease and so writes conditions.\n# TYPE {prefix}_leader gauge\n{prefix}_leader {leader}"
        );
        // client-go's own gauge, which upstream's controller-runtime serves.
        let _ = writeln!(
            out,
            "# HELP leader_election_master_status Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.\n# TYPE leader_election_master_status gauge\nleader_election_master_status{{name=\"{}\"}} {leader}",
            self.lease_name
        );
        out
    }

    fn answer(&self, path: &str) -> Response<Full<Bytes>> {
        let text = |status: StatusCode, content_type: &'static str, body: String| {
            Response::builder()
                .status(status)
                .header("content-type", content_type)
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_default()
        };
        match path {
            "/metrics" => text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.render(),
            ),
            "/readyz" if self.is_ready() => {
                text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into())
            }
            "/readyz" => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                "the CertificateRequest watch has not listed yet\n".into(),
            ),
            "/healthz" | "/livez" => {
                text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into())
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found: try /metrics or /readyz\n".into(),
            ),
        }
    }
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<ApproverMetrics>) {
    crate::endpoints::serve_http(listener, move |request: Request<hyper::body::Incoming>| {
        let response = metrics.answer(request.uri().path());
        async move { response }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_its_labels() {
        let metrics = ApproverMetrics::new("spiffe.csi.cert-manager.io");
        metrics.approved(true);
        metrics.denied(DenialClass::Namespace);
        metrics.denied(DenialClass::Namespace);
        metrics.set_leader(true);
        let text = metrics.render();
        for line in [
            "certmanager_csi_spiffe_approver_approved_total{kind=\"spiffe\"} 1",
            "certmanager_csi_spiffe_approver_approved_total{kind=\"other\"} 0",
            "certmanager_csi_spiffe_approver_denied_total{reason=\"namespace\"} 2",
            "certmanager_csi_spiffe_approver_denied_total{reason=\"key_type\"} 0",
            "certmanager_csi_spiffe_approver_condition_write_errors_total 0",
            "certmanager_csi_spiffe_approver_leader 1",
            "leader_election_master_status{name=\"spiffe.csi.cert-manager.io\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn ready_once_synced() {
        let metrics = ApproverMetrics::new("x");
        assert_eq!(
            metrics.answer("/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        metrics.set_synced();
        assert_eq!(metrics.answer("/readyz").status(), StatusCode::OK);
        assert_eq!(metrics.answer("/nope").status(), StatusCode::NOT_FOUND);
    }
}
