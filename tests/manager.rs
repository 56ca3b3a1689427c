//! The volume manager with an issuer the test controls, for behaviour that depends on an issuance
//! being in flight.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cert_manager_csi_driver::demo::{SamplePod, sample_volume_context};
use cert_manager_csi_driver::issuer::local_ca::LocalCa;
use cert_manager_csi_driver::issuer::{IssueFuture, IssueOrder, Issuer};
use cert_manager_csi_driver::keys::pool::KeyPool;
use cert_manager_csi_driver::volume::mount::{Mounter, PlainDirectoryMounter, TmpfsMounter};
use cert_manager_csi_driver::volume::state::StateStore;
use cert_manager_csi_driver::volume::{ManagerConfig, PublishCall, VolumeId, VolumeManager};
use tokio::sync::Semaphore;

/// Signs with a local CA, but every call after the first `free` ones waits for a permit the test
/// hands out: like a remote issuer that takes its time.
struct GatedIssuer {
    ca: LocalCa,
    calls: AtomicUsize,
    free: usize,
    gate: Semaphore,
}

impl GatedIssuer {
    fn new(ca_dir: &std::path::Path, free: usize) -> Arc<GatedIssuer> {
        Arc::new(GatedIssuer {
            ca: LocalCa::load_or_create(ca_dir).unwrap(),
            calls: AtomicUsize::new(0),
            free,
            gate: Semaphore::new(0),
        })
    }
}

impl Issuer for GatedIssuer {
    fn backend_name(&self) -> &'static str {
        "gated"
    }

    fn issue<'a>(&'a self, order: &'a IssueOrder) -> IssueFuture<'a> {
        Box::pin(async move {
            if self.calls.fetch_add(1, Ordering::SeqCst) >= self.free {
                self.gate.acquire().await.expect("gate open").forget();
            }
            self.ca.sign(order)
        })
    }
}

fn manager(dir: &std::path::Path, issuer: Arc<GatedIssuer>) -> Arc<VolumeManager> {
    let mounter: Arc<dyn Mounter> = if common::is_root() {
        Arc::new(TmpfsMounter)
    } else {
        Arc::new(PlainDirectoryMounter)
    };
    VolumeManager::new(
        ManagerConfig {
            volume_size_bytes: 1024 * 1024,
            renewal_concurrency: 1,
            backoff: Default::default(),
            continue_on_not_ready: false,
            strict_attributes: false,
            default_duration: cert_manager_csi_driver::attributes::DEFAULT_DURATION,
            csi_lib_root: None,
            publish_in_csi_lib_layout: false,
            readiness: None,
            key_pool: Arc::new(KeyPool::disabled()),
            requests: Default::default(),
        },
        issuer,
        mounter,
        StateStore::open(&dir.join("state")).unwrap(),
        Arc::new(cert_manager_csi_driver::pod_events::NoEvents),
        Arc::new(cert_manager_csi_driver::metrics::Metrics::new("test-node")),
    )
}

fn publish_request(target: &std::path::Path) -> PublishCall {
    PublishCall {
        volume_id: VolumeId::new("csi-slow").unwrap(),
        target_path: target.to_path_buf(),
        volume_context: sample_volume_context(
            &SamplePod::new("slow"),
            &[("csi.cert-manager.io/key-algorithm", "ECDSA")],
        ),
        volume_mount_group: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_stats_do_not_wait_behind_a_slow_renewal() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = GatedIssuer::new(&dir.path().join("ca"), 1);
    let manager = manager(dir.path(), issuer.clone());
    let target = dir.path().join("mount");
    manager.publish(publish_request(&target)).await.unwrap();

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

/// The renewal queue takes a volume off before the renewal has its lock; if a publish holding the
/// lock issued meanwhile, the renewal must not issue a second certificate right after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_due_behind_a_publish_that_issued_does_not_issue_again() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("mount");
    // What a driver killed mid-publish leaves: the volume mounted and recorded, no certificate.
    {
        let first = manager(dir.path(), GatedIssuer::new(&dir.path().join("ca"), 1));
        first.publish(publish_request(&target)).await.unwrap();
        cert_manager_csi_driver::volume::files::clear(&target).unwrap();
    }
    let issuer = GatedIssuer::new(&dir.path().join("ca"), 0);
    let restarted = manager(dir.path(), issuer.clone());
    // Reloaded without a certificate: due for issuance at once.
    assert_eq!(restarted.resume().unwrap().resumed, 1);
    // kubelet's retry of the publish gets the volume first and waits on the issuer...
    let publishing = {
        let manager = restarted.clone();
        let target = target.clone();
        tokio::spawn(async move { manager.publish(publish_request(&target)).await })
    };
    while issuer.calls.load(Ordering::SeqCst) < 1 {
        tokio::task::yield_now().await;
    }
    // ...while the renewal queue takes the volume off and waits for it.
    let renewals = restarted.spawn_renewal_loop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    issuer.gate.add_permits(10);
    publishing.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        issuer.calls.load(Ordering::SeqCst),
        1,
        "one issuance: the publish's"
    );
    renewals.abort();
    restarted.unpublish("csi-slow", &target).await.unwrap();
}

/// A first publish still waiting on its issuer is not counted as a managed volume yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_in_flight_is_not_counted_as_managed() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = GatedIssuer::new(&dir.path().join("ca"), 0);
    let manager = manager(dir.path(), issuer.clone());
    let target = dir.path().join("mount");
    let publishing = {
        let manager = manager.clone();
        let target = target.clone();
        tokio::spawn(async move { manager.publish(publish_request(&target)).await })
    };
    while issuer.calls.load(Ordering::SeqCst) < 1 {
        tokio::task::yield_now().await;
    }
    assert_eq!(manager.volume_count(), 0, "in flight");
    issuer.gate.add_permits(1);
    publishing.await.unwrap().unwrap();
    assert_eq!(manager.volume_count(), 1, "published");
    manager.unpublish("csi-slow", &target).await.unwrap();
    assert_eq!(manager.volume_count(), 0, "gone");
}
