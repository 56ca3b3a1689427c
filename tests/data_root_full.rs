//! A data root that is full (its file system out of space): the driver cannot record a new
//! volume, so that publish fails with a clear error and leaves nothing behind; volumes it already
//! manages keep being renewed (their files are on their own tmpfs); once space returns, the same
//! publish succeeds. Needs root for the small tmpfs that plays the full disk (CI runs as root).

mod common;

use std::time::Duration;

use cert_manager_csi_driver::attributes::key;
use common::{Harness, is_root, key_matches, mounts_at, serial_of, wait_for};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_root_fails_new_publishes_cleanly_and_renewals_go_on() {
    if !is_root() {
        eprintln!("skipped: needs root for a small tmpfs as the data root (CI runs as root)");
        return;
    }
    let disk = tempfile::Builder::new()
        .prefix("csi-full-")
        .tempdir()
        .unwrap();
    let data_root = disk.path().join("state");
    std::fs::create_dir(&data_root).unwrap();
    rustix::mount::mount(
        "full-test",
        &data_root,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        Some(c"size=256k"),
    )
    .unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
        }
    }
    let _unmount = Unmount(data_root.clone());
    let root = data_root.clone();
    let harness = Harness::start_with(move |config| {
        config.data_root = root;
        config.renewal_backoff = cert_manager_csi_driver::renewal::Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(1),
        };
    })
    .await;
    let renewing = harness.target("renewing");
    harness
        .publish("csi-renewing", &renewing, &[(key::DURATION, "3s")])
        .await
        .unwrap();
    let first = serial_of(&renewing);

    // The disk fills up.
    let filler = data_root.join("filler");
    let mut chunk = 0;
    while std::fs::write(data_root.join(format!("filler-{chunk}")), vec![0u8; 4096]).is_ok() {
        chunk += 1;
    }
    let _ = filler;
    let target = harness.target("new");
    let error = harness.publish("csi-new", &target, &[]).await.unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted, "{error:?}");
    assert!(
        error.message().contains("data root") && error.message().contains("No space left"),
        "{error:?}"
    );
    assert_eq!(mounts_at(&target), 0, "nothing left mounted");
    assert!(!target.exists(), "nothing left at the target");
    assert_eq!(harness.state_records(), 1, "only the first volume's record");

    // The volume it already had is renewed all the same.
    wait_for(
        "renewed with a full data root",
        Duration::from_secs(15),
        || serial_of(&renewing) != first,
    )
    .await;
    assert!(key_matches(&renewing));

    // Space returns: kubelet's retry succeeds.
    for index in 0..chunk {
        let _ = std::fs::remove_file(data_root.join(format!("filler-{index}")));
    }
    harness.publish("csi-new", &target, &[]).await.unwrap();
    assert!(key_matches(&target));
    assert_eq!(harness.state_records(), 2);
}
