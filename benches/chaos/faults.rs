//! Faults: kill -9, API outages, lesser API faults.

use super::*;

/// Kills the driver every 15–40 s, wherever it is, and restarts it at once like a DaemonSet.
pub(crate) async fn kill_loop(
    chaos: Arc<Chaos>,
    mut rng: fastrand::Rng,
    deadline: Instant,
) -> BenchResult<()> {
    loop {
        let pause = random_duration(&mut rng, KILL_EVERY_MS);
        if Instant::now() + pause >= deadline {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        let _lifecycle = chaos.lifecycle.lock().await;
        let mid_publish = chaos.publishes_in_flight.load(Ordering::Relaxed) > 0;
        let mid_unpublish = chaos.unpublishes_in_flight.load(Ordering::Relaxed) > 0;
        let renewal_due = chaos.renewals_due.load(Ordering::Relaxed) > 0;
        let during_outage = chaos.frozen.load(Ordering::Relaxed);
        chaos.driver.kill();
        let started = Instant::now();
        chaos.driver.spawn()?;
        let client = connect_when_serving(&chaos.node.socket(), START_LIMIT).await?;
        let took = started.elapsed();
        *chaos.client.lock() = client;
        let mut tally = chaos.tally();
        tally.kills += 1;
        tally.kills_mid_publish += usize::from(mid_publish);
        tally.kills_mid_unpublish += usize::from(mid_unpublish);
        tally.kills_renewal_due += usize::from(renewal_due);
        tally.restarts.push(Restart {
            took,
            during_outage,
        });
    }
}

/// Outages (offset from the start of the chaos, length): twice per 6 minutes and at least once,
/// one per equal slot of the time between the quiet start and end.
pub(crate) fn plan_outages(
    rng: &mut fastrand::Rng,
    chaos_length: Duration,
) -> Vec<(Duration, Duration)> {
    let count = ((chaos_length.as_secs_f64() / 180.0).round() as u32).max(1);
    let span = chaos_length.saturating_sub(QUIET_START + QUIET_END);
    let slot = span / count;
    (0..count)
        .map(|index| {
            let length = random_duration(rng, OUTAGE_LENGTH_MS).min(slot);
            let room = (slot - length).as_millis() as u64;
            let offset = QUIET_START + slot * index + Duration::from_millis(rng.u64(..=room));
            (offset, length)
        })
        .collect()
}

/// A full outage: requests hang and watches go silent until the thaw.
pub(crate) async fn outage_loop(
    chaos: Arc<Chaos>,
    chaos_started: Instant,
    plan: Vec<(Duration, Duration)>,
) {
    for (offset, length) in plan {
        tokio::time::sleep_until(chaos_started + offset).await;
        chaos.api.set_frozen(true);
        chaos.frozen.store(true, Ordering::Relaxed);
        chaos.outages.lock().push(Window {
            start: Instant::now(),
            end: None,
        });
        tokio::time::sleep(length).await;
        chaos.api.set_frozen(false);
        chaos.frozen.store(false, Ordering::Relaxed);
        if let Some(window) = chaos.outages.lock().last_mut() {
            window.end = Some(Instant::now());
        }
    }
}

/// A node reboot, once, somewhere in the middle half of the chaos: the driver dies, every tmpfs
/// on the node is gone (the volumes' mounts; the data root is a disk on a real node and keeps
/// the records), the driver starts again, and kubelet publishes every pod's volume afresh. The
/// records of the vanished mounts must be removed at start and each volume issued anew; the
/// checker resumes once all are back.
pub(crate) async fn reboot_once(
    chaos: Arc<Chaos>,
    mut rng: fastrand::Rng,
    chaos_started: Instant,
    chaos_length: Duration,
) -> BenchResult<()> {
    let at = chaos_length / 4 + chaos_length.mul_f64(rng.f64() / 2.0);
    tokio::time::sleep_until(chaos_started + at).await;
    let started = Instant::now();
    let volumes: Vec<Volume> = {
        let _lifecycle = chaos.lifecycle.lock().await;
        chaos.rebooting.store(true, Ordering::Relaxed);
        chaos.driver.kill();
        // Taken once the driver is dead: nothing is published from here until it is back.
        let volumes = std::mem::take(&mut *chaos.published.lock())
            .into_values()
            .collect();
        let data_root = chaos.node.data_root();
        let mut mounts = chaos.node.mounts();
        mounts.retain(|mount| !mount.starts_with(&data_root));
        mounts.sort();
        for mount in mounts.iter().rev() {
            let _ = rustix::mount::unmount(mount, rustix::mount::UnmountFlags::DETACH);
        }
        chaos.driver.spawn()?;
        *chaos.client.lock() = connect_when_serving(&chaos.node.socket(), START_LIMIT).await?;
        volumes
    };
    let count = volumes.len();
    let republished: Vec<_> = volumes
        .into_iter()
        .map(|volume| tokio::spawn(kubelet_publish(Arc::clone(&chaos), volume)))
        .collect();
    for task in republished {
        task.await?;
    }
    chaos.rebooting.store(false, Ordering::Relaxed);
    chaos.tally().reboots.push((count, started.elapsed()));
    Ok(())
}

/// How long the data root stays full in a spell, and how often a spell comes.
const DISK_FULL_SPELL_MS: std::ops::RangeInclusive<u64> = 10_000..=25_000;
const DISK_FULL_EVERY_MS: std::ops::RangeInclusive<u64> = 60_000..=120_000;

/// Now and then the data root fills up (another writer on the node): a ballast file takes every
/// free byte for a spell, then goes. Publishes that cannot record their volume must fail cleanly
/// (ResourceExhausted) and be retried; renewals go on; nothing is lost when space returns.
pub(crate) async fn disk_full_loop(chaos: Arc<Chaos>, mut rng: fastrand::Rng, deadline: Instant) {
    let ballast = chaos.node.data_root().join("ballast.fill");
    loop {
        let pause = random_duration(&mut rng, DISK_FULL_EVERY_MS);
        let length = random_duration(&mut rng, DISK_FULL_SPELL_MS);
        if Instant::now() + pause + length >= deadline {
            return;
        }
        tokio::time::sleep(pause).await;
        let started = Instant::now();
        let path = ballast.clone();
        let _ = tokio::task::spawn_blocking(move || fill(&path)).await;
        tokio::time::sleep(length).await;
        let _ = std::fs::remove_file(&ballast);
        let mut tally = chaos.tally();
        tally.disk_full_spells += 1;
        tally.disk_full_for += started.elapsed();
    }
}

/// Writes zeros to `path` until the filesystem is full.
fn fill(path: &Path) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if let Err(error) = file.write_all(&chunk) {
            // Whatever is left, byte by byte is not worth it: a few KiB stay free at most.
            return if error.raw_os_error() == Some(libc::ENOSPC) {
                Ok(())
            } else {
                Err(error)
            };
        }
    }
}

/// How long the signer takes during a slow spell, and how long a spell lasts.
const SLOW_SIGNER: Duration = Duration::from_secs(5);
const SLOW_SPELL: Duration = Duration::from_secs(20);

/// Now and then one of the faults a real cluster has:
/// - a watch cut (a load balancer);
/// - a CertificateRequest create failing with a 500 (which kube's client does not retry);
/// - an API server restart: every watch ends, their resourceVersions are too old to resume
///   from (410 Gone, so the driver re-lists), and the next requests fail with 503 while it
///   comes up;
/// - a storm of 429s on create, each asking for a second's wait (priority and fairness);
/// - a slow signer: 5 s per request for 20 s.
pub(crate) async fn api_fault_loop(chaos: Arc<Chaos>, mut rng: fastrand::Rng, deadline: Instant) {
    loop {
        let pause = random_duration(&mut rng, API_FAULT_EVERY_MS);
        if Instant::now() + pause >= deadline {
            return;
        }
        tokio::time::sleep(pause).await;
        match rng.u8(0..5) {
            0 => {
                chaos.api.drop_watches();
                chaos.tally().watch_drops += 1;
            }
            1 => {
                chaos
                    .api
                    .fail_next(1, 500, Some("POST"), Some("certificaterequests"));
                chaos.tally().injected_500s += 1;
            }
            2 => {
                chaos.api.expire_history();
                chaos.api.drop_watches();
                chaos.api.fail_next(20, 503, None, None);
                chaos.tally().api_restarts += 1;
            }
            3 => {
                chaos
                    .api
                    .fail_next(8, 429, Some("POST"), Some("certificaterequests"));
                chaos.tally().storms_429 += 1;
            }
            _ => {
                chaos
                    .signer
                    .set_mode(kube_test_server::SignerMode::Delay(SLOW_SIGNER));
                chaos.tally().slow_signer_spells += 1;
                tokio::time::sleep(
                    SLOW_SPELL.min(deadline.saturating_duration_since(Instant::now())),
                )
                .await;
                chaos.signer.set_mode(kube_test_server::SignerMode::Approve);
            }
        }
    }
}
