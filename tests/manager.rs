//! The volume manager with an issuer the test controls, for behaviour that depends on an issuance
//! being in flight.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cert_manager_csi_driver::demo::{SamplePod, sample_volume_context};
use cert_manager_csi_driver::issuer::local_ca::LocalCa;
use cert_manager_csi_driver::issuer::{IssueFuture, IssueRequest, Issuer};
use cert_manager_csi_driver::volume::mount::{Mounter, PlainDirectoryMounter, TmpfsMounter};
use cert_manager_csi_driver::volume::state::StateStore;
use cert_manager_csi_driver::volume::{ManagerConfig, PublishRequest, VolumeManager};
use tokio::sync::Semaphore;

/// Signs with a local CA, but every call after the first waits for a permit the test hands out:
/// like a remote issuer that takes its time.
struct GatedIssuer {
    ca: LocalCa,
    calls: AtomicUsize,
    gate: Semaphore,
}

impl Issuer for GatedIssuer {
    fn backend_name(&self) -> &'static str {
        "gated"
    }

    fn issue<'a>(&'a self, request: &'a IssueRequest) -> IssueFuture<'a> {
        Box::pin(async move {
            if self.calls.fetch_add(1, Ordering::SeqCst) > 0 {
                self.gate.acquire().await.expect("gate open").forget();
            }
            self.ca.sign(request)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_stats_do_not_wait_behind_a_slow_renewal() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Arc::new(GatedIssuer {
        ca: LocalCa::load_or_create(&dir.path().join("ca")).unwrap(),
        calls: AtomicUsize::new(0),
        gate: Semaphore::new(0),
    });
    let mounter: Arc<dyn Mounter> = if common::is_root() {
        Arc::new(TmpfsMounter)
    } else {
        Arc::new(PlainDirectoryMounter)
    };
    let manager = VolumeManager::new(
        ManagerConfig {
            volume_size_bytes: 1024 * 1024,
            renewal_concurrency: 1,
            backoff: Default::default(),
            continue_on_not_ready: false,
            strict_attributes: false,
            default_duration: cert_manager_csi_driver::attributes::DEFAULT_DURATION,
            csi_lib_root: None,
        },
        issuer.clone(),
        mounter,
        StateStore::open(&dir.path().join("state")).unwrap(),
        Arc::new(cert_manager_csi_driver::events::NoEvents),
        Arc::new(cert_manager_csi_driver::metrics::Metrics::new("test-node")),
    );
    let target = dir.path().join("mount");
    let context = sample_volume_context(
        &SamplePod::new("slow"),
        &[("csi.cert-manager.io/key-algorithm", "ECDSA")],
    );
    manager
        .publish(PublishRequest {
            volume_id: "csi-slow".into(),
            target_path: target.clone(),
            volume_context: context,
            volume_mount_group: None,
        })
        .await
        .unwrap();

    // A renewal starts and hangs in the issuer, holding the volume.
    let renewing = {
        let manager = manager.clone();
        tokio::spawn(async move { manager.renew("csi-slow").await })
    };
    while issuer.calls.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    // Stats answer at once (the timeout only guards against a hang), and report it healthy.
    let condition = tokio::time::timeout(
        Duration::from_secs(30),
        manager.condition("csi-slow", &target),
    )
    .await
    .expect("stats must not wait for the renewal")
    .unwrap();
    assert_eq!(condition, None);

    issuer.gate.add_permits(1);
    renewing.await.unwrap();
    assert_eq!(manager.condition("csi-slow", &target).await.unwrap(), None);
    manager.unpublish("csi-slow", &target).await.unwrap();
    common::unmount_all_under(dir.path());
}
