//! Step 6 of a volume's path: renewing certificates before they expire.
//!
//! One deadline queue for all volumes, served by one task: while nothing is due the driver sleeps
//! until the earliest deadline, with no timer, task or file read per volume (upstream wakes every
//! volume every second).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The shortest time between two issuances of one volume.
pub const MINIMUM_INTERVAL: Duration = Duration::from_millis(500);

/// When to renew: `not_after − renew_before`, or at two thirds of the actual lifetime when
/// `renew_before` is unset or not shorter than the lifetime (cert-manager's rule).
pub fn renewal_time(
    not_before: SystemTime,
    not_after: SystemTime,
    renew_before: Option<Duration>,
) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let renew_before = match renew_before {
        Some(before) if before < lifetime => before,
        _ => lifetime / 3,
    };
    not_after - renew_before
}

/// Spreads renewals of certificates issued together: up to 1% of the lifetime (at most 1 minute)
/// earlier than the exact time, never later.
pub fn with_jitter(at: SystemTime, lifetime: Duration) -> SystemTime {
    let window = (lifetime / 100).min(Duration::from_secs(60));
    let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    at - Duration::from_nanos(fastrand::u64(..=nanos))
}

/// How failed renewals are retried (`--renewal-backoff-initial`, `--renewal-backoff-max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure; it doubles after each further one.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// Upstream's: 30 s doubling to 5 minutes.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(30),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// Retry delay after `failures` consecutive failed attempts: `initial` doubling up to `max`,
    /// with ±10% jitter so volumes that failed together do not retry together.
    pub fn delay(&self, failures: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(self.max.max(self.initial));
        base.mul_f64(0.9 + fastrand::f64() * 0.2)
    }
}

/// Converts a wall-clock time into the monotonic clock the queue sleeps on.
pub fn instant_at(at: SystemTime) -> Instant {
    let now = Instant::now();
    match at.duration_since(SystemTime::now()) {
        Ok(ahead) => now + ahead,
        Err(_) => now,
    }
}

/// Both indexes share one copy of each volume ID.
#[derive(Default)]
struct Queue {
    by_time: BTreeSet<(Instant, Arc<str>)>,
    by_volume: HashMap<Arc<str>, Instant>,
}

/// The deadline queue. Cheap to clone; all clones share one queue.
#[derive(Clone, Default)]
pub struct Scheduler {
    queue: Arc<Mutex<Queue>>,
    changed: Arc<Notify>,
}

impl Scheduler {
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock()
    }

    /// Sets (or moves) the deadline of a volume.
    pub fn schedule(&self, volume_id: &str, at: Instant) {
        let mut queue = self.lock();
        let volume_id: Arc<str> = match queue.by_volume.get_key_value(volume_id) {
            Some((known, _)) => Arc::clone(known),
            None => volume_id.into(),
        };
        if let Some(previous) = queue.by_volume.insert(Arc::clone(&volume_id), at) {
            queue.by_time.remove(&(previous, Arc::clone(&volume_id)));
        }
        queue.by_time.insert((at, volume_id));
        drop(queue);
        self.changed.notify_one();
    }

    /// Forgets a volume.
    pub fn cancel(&self, volume_id: &str) {
        let mut queue = self.lock();
        if let Some((volume_id, previous)) = queue.by_volume.remove_entry(volume_id) {
            queue.by_time.remove(&(previous, volume_id));
        }
    }

    /// The deadline of a volume, if scheduled.
    pub fn deadline(&self, volume_id: &str) -> Option<Instant> {
        self.lock().by_volume.get(volume_id).copied()
    }

    /// How many volumes are scheduled.
    pub fn len(&self) -> usize {
        self.lock().by_volume.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the earliest deadline and takes that volume off the queue. Meant for one consumer.
    pub async fn next_due(&self) -> String {
        loop {
            let earliest = {
                let mut queue = self.lock();
                match queue.by_time.first().map(|(at, _)| *at) {
                    Some(at) if at <= Instant::now() => {
                        let (_, volume_id) = queue.by_time.pop_first().expect("just seen");
                        queue.by_volume.remove(&volume_id);
                        return volume_id.to_string();
                    }
                    other => other,
                }
            };
            match earliest {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn renews_at_two_thirds_by_default() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + 3 * HOUR;
        assert_eq!(renewal_time(start, end, None), start + 2 * HOUR);
    }

    #[test]
    fn honours_renew_before_shorter_than_lifetime() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + 720 * HOUR;
        assert_eq!(renewal_time(start, end, Some(240 * HOUR)), end - 240 * HOUR);
        // Not shorter than the lifetime: fall back to the one-third rule.
        assert_eq!(renewal_time(start, end, Some(720 * HOUR)), end - 240 * HOUR);
        assert_eq!(
            renewal_time(start, end, Some(1000 * HOUR)),
            end - 240 * HOUR
        );
    }

    #[test]
    fn jitter_only_moves_earlier_and_stays_small() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for _ in 0..1000 {
            let jittered = with_jitter(at, 720 * HOUR);
            assert!(
                jittered <= at && at.duration_since(jittered).unwrap() <= Duration::from_secs(60)
            );
        }
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let within = |d: Duration, secs: f64| {
            let s = d.as_secs_f64();
            s >= secs * 0.9 - 1e-9 && s <= secs * 1.1 + 1e-9
        };
        let backoff = Backoff::default();
        assert!(within(backoff.delay(1), 30.0));
        assert!(within(backoff.delay(2), 60.0));
        assert!(within(backoff.delay(3), 120.0));
        assert!(within(backoff.delay(5), 300.0));
        assert!(within(backoff.delay(40), 300.0));
        let quick = Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(1),
        };
        assert!(within(quick.delay(1), 0.2));
        assert!(within(quick.delay(3), 0.8));
        assert!(within(quick.delay(9), 1.0));
    }

    #[tokio::test(start_paused = true)]
    async fn hands_out_volumes_in_deadline_order() {
        let scheduler = Scheduler::new();
        let now = Instant::now();
        scheduler.schedule("late", now + Duration::from_secs(20));
        scheduler.schedule("early", now + Duration::from_secs(10));
        scheduler.schedule("cancelled", now + Duration::from_secs(5));
        scheduler.cancel("cancelled");
        // Moving a volume replaces its old deadline.
        scheduler.schedule("late", now + Duration::from_secs(15));
        assert_eq!(scheduler.len(), 2);
        assert_eq!(scheduler.next_due().await, "early");
        assert!(Instant::now() >= now + Duration::from_secs(10));
        assert_eq!(scheduler.next_due().await, "late");
        assert!(Instant::now() >= now + Duration::from_secs(15));
        assert!(scheduler.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_wakes_the_sleeper() {
        let scheduler = Scheduler::new();
        let now = Instant::now();
        scheduler.schedule("far", now + Duration::from_secs(3600));
        let waiter = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.next_due().await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        scheduler.schedule("near", now + Duration::from_secs(2));
        assert_eq!(waiter.await.unwrap(), "near");
        assert!(Instant::now() < now + Duration::from_secs(3600));
    }
}
