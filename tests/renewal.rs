//! Renewal on the embedded CA, with certificates of a few seconds: renewals land inside their
//! window, rotation is atomic for readers, modes and groups are re-applied, and
//! reuse-private-key is honoured. (Failure, backoff and recovery against a remote issuer are in
//! `cert_manager.rs`; kill -9 at various points in `restart.rs`.)

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use cert_manager_csi_driver::certificate::{self, CertificateInfo, inspect_leaf};
use common::{Harness, serial_of, wait_for_new_serial};
use tokio::time::Instant;

fn current_certificate(target: &Path) -> CertificateInfo {
    inspect_leaf(&std::fs::read_to_string(target.join("tls.crt")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_lands_inside_its_window() {
    let harness = Harness::start().await;
    let target = harness.target("window");
    // 6 s, renew-before unset: due at two thirds of the lifetime, minus at most 1% jitter.
    harness
        .publish(
            "csi-window",
            &target,
            &[
                ("csi.cert-manager.io/duration", "6s"),
                ("csi.cert-manager.io/renew-before", "1h"),
            ],
        )
        .await
        .unwrap();
    let first = current_certificate(&target);
    let lifetime = first.not_after.duration_since(first.not_before).unwrap();
    let due = first.not_before + lifetime * 2 / 3;
    let earliest = due - lifetime / 100;
    let deadline = Instant::now() + Duration::from_secs(20);
    let renewed_at = loop {
        if serial_of(&target) != first.serial {
            break SystemTime::now();
        }
        assert!(Instant::now() < deadline, "no renewal");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Certificate times have whole seconds; allow for that on the early side, and for the
    // renewal itself (key, CSR, signing, write) and this poll on the late side.
    let early_slack = Duration::from_secs(1);
    let late_slack = Duration::from_secs(1);
    assert!(
        renewed_at + early_slack >= earliest,
        "renewed {:?} before its window opened",
        earliest.duration_since(renewed_at).unwrap_or_default()
    );
    assert!(
        renewed_at <= due + late_slack,
        "renewed {:?} after it was due",
        renewed_at.duration_since(due).unwrap_or_default()
    );
    assert!(renewed_at < first.not_after, "renewed before expiry");
}

/// Reads the pair the way a careful reader does: resolve `..data` once, then read both files of
/// that set. Returns whether key and certificate match, and the serial.
fn read_pair(target: &Path) -> Option<(bool, String)> {
    let set = std::fs::read_link(target.join("..data")).ok()?;
    let key = std::fs::read_to_string(target.join(&set).join("tls.key")).ok()?;
    let chain = std::fs::read_to_string(target.join(&set).join("tls.crt")).ok()?;
    let matches = certificate::key_matches_certificate(&key, &chain).ok()?;
    Some((matches, inspect_leaf(&chain).ok()?.serial))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_mismatched_pair_and_modes_survive_rotation() {
    let harness = Harness::start().await;
    let target = harness.target("atomic");
    // 2 s certificates: a rotation about every 1.3 s; group 2000 must keep reading the key.
    harness
        .publish(
            "csi-atomic",
            &target,
            &[
                ("csi.cert-manager.io/duration", "2s"),
                ("csi.cert-manager.io/renew-before", "1h"),
                ("csi.cert-manager.io/fs-group", "2000"),
            ],
        )
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let target = target.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (mut checks, mut mismatches, mut misses) = (0u64, 0u64, 0u64);
            let mut serials = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                match read_pair(&target) {
                    Some((matches, serial)) => {
                        checks += 1;
                        mismatches += u64::from(!matches);
                        serials.insert(serial);
                    }
                    // The old set was removed between resolving `..data` and opening it: the
                    // reader tries again, as with any file replaced under it.
                    None => misses += 1,
                }
            }
            (checks, mismatches, misses, serials.len())
        })
    };
    tokio::time::sleep(Duration::from_millis(4500)).await;
    stop.store(true, Ordering::Relaxed);
    let (checks, mismatches, misses, serials) = reader.join().unwrap();
    eprintln!("{checks} pair checks, {serials} certificates, {misses} retries");
    assert!(checks >= 1000, "only {checks} checks");
    assert!(
        serials >= 3,
        "only {serials} certificates seen: no rotation happened"
    );
    assert_eq!(
        mismatches, 0,
        "a reader saw a key that is not the certificate's"
    );

    // After the rotations the files still carry the modes and group they were published with.
    let set = target.join(std::fs::read_link(target.join("..data")).unwrap());
    let key = std::fs::metadata(set.join("tls.key")).unwrap();
    assert_eq!(key.mode() & 0o777, 0o640);
    assert_eq!(key.gid(), 2000);
    let cert = std::fs::metadata(set.join("tls.crt")).unwrap();
    assert_eq!(cert.mode() & 0o777, 0o644);
    harness.unpublish("csi-atomic", &target).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_private_key_is_honoured_on_renewal() {
    let harness = Harness::start().await;
    let reused = harness.target("reused");
    let fresh = harness.target("fresh");
    let short = [
        ("csi.cert-manager.io/duration", "2s"),
        ("csi.cert-manager.io/renew-before", "1h"),
    ];
    let mut with_reuse = short.to_vec();
    with_reuse.push(("csi.cert-manager.io/reuse-private-key", "true"));
    harness
        .publish("csi-reused", &reused, &with_reuse)
        .await
        .unwrap();
    harness.publish("csi-fresh", &fresh, &short).await.unwrap();
    let reused_key = std::fs::read(reused.join("tls.key")).unwrap();
    let fresh_key = std::fs::read(fresh.join("tls.key")).unwrap();
    let (reused_serial, fresh_serial) = (serial_of(&reused), serial_of(&fresh));
    wait_for_new_serial(
        &reused,
        &reused_serial,
        Duration::from_secs(20),
        "no renewal",
    )
    .await;
    wait_for_new_serial(&fresh, &fresh_serial, Duration::from_secs(20), "no renewal").await;
    assert_eq!(std::fs::read(reused.join("tls.key")).unwrap(), reused_key);
    assert_ne!(std::fs::read(fresh.join("tls.key")).unwrap(), fresh_key);
    common::verify_volume_with_openssl(&reused);
    common::verify_volume_with_openssl(&fresh);
    harness.unpublish("csi-reused", &reused).await.unwrap();
    harness.unpublish("csi-fresh", &fresh).await.unwrap();
}
