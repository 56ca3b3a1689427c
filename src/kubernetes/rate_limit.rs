//! A client-side token bucket for calls to the Kubernetes API (`--kube-api-qps`,
//! `--kube-api-burst`), so that a burst of pods on one node cannot flood the API server, while a
//! default that is generous enough never makes issuance wait behind its own limiter (upstream's
//! 5 QPS / 10 burst is what left volumes empty under churn, its #636).
//!
//! The configured rate is split in two buckets ([`ApiBudget`]): pod Events get a fifth, every
//! other call the rest. Events are the one write a burst of pods multiplies that nobody waits
//! for, so they must never hold up the CertificateRequest a publish is blocked on; and the two
//! shares add up to the configured figures, so what the driver can send in total stays what the
//! operator set.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Used when `--kube-api-qps` is 0: enough for a node creating pods as fast as kubelet starts them
/// (each issuance costs about two writes), far below what an API server copes with.
pub const DEFAULT_QPS: f64 = 50.0;
/// The smallest rate honoured.
pub const MINIMUM_QPS: f64 = 1.0 / 3600.0;
/// Used when `--kube-api-burst` is 0.
pub const DEFAULT_BURST: u32 = 100;

/// The share of `--kube-api-qps` and `--kube-api-burst` that pod Events get. A fifth: an issuance
/// costs one CertificateRequest create (plus a delete once history is pruned) and one Event, so at
/// the busiest the Events fall behind the requests, and the Event writer coalesces them
/// ([`super::event_recorder`]) rather than take API capacity from the work itself. At the defaults:
/// Events 10/s (burst 20), everything else 40/s (burst 80). Upstream has no separate limit: its
/// Events share client-go's 5/10 with its requests.
pub const EVENT_SHARE: f64 = 0.2;

/// The two buckets the configured rate is split into: what the driver sends at most is the sum,
/// which is the configured rate and burst (the burst is one more when `--kube-api-burst` is 1,
/// as each bucket needs a whole permit).
#[derive(Debug)]
pub struct ApiBudget {
    requests: RateLimiter,
    events: RateLimiter,
}

impl ApiBudget {
    /// Splits `qps` and `burst` (0 = the defaults, as for [`RateLimiter::new`]).
    pub fn new(qps: f64, burst: u32) -> ApiBudget {
        let total = RateLimiter::new(qps, burst);
        let event_burst = (total.burst * EVENT_SHARE).round().max(1.0);
        ApiBudget {
            requests: RateLimiter::exact(
                total.qps * (1.0 - EVENT_SHARE),
                (total.burst - event_burst).max(1.0),
            ),
            events: RateLimiter::exact(total.qps * EVENT_SHARE, event_burst),
        }
    }

    /// Every call but Event writes: CertificateRequest creates and deletes.
    pub fn requests(&self) -> &RateLimiter {
        &self.requests
    }

    /// Event creates and series updates.
    pub fn events(&self) -> &RateLimiter {
        &self.events
    }
}

/// Hands out permits at `qps` per second, up to `burst` at once.
#[derive(Debug)]
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Permits available at `updated`; negative when callers are queued for future permits.
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `qps` ≤ 0 and `burst` = 0 pick the defaults. A burst smaller than one permit is raised to
    /// one, or nothing could ever be sent.
    pub fn new(qps: f64, burst: u32) -> RateLimiter {
        let qps = if qps > 0.0 && qps.is_finite() {
            // Below one request an hour nothing useful happens, and waits stay representable.
            qps.max(MINIMUM_QPS)
        } else {
            DEFAULT_QPS
        };
        let burst = f64::from(if burst == 0 { DEFAULT_BURST } else { burst }).max(1.0);
        RateLimiter::exact(qps, burst)
    }

    /// `qps` and `burst` as given: a share of an already checked limit.
    fn exact(qps: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            qps,
            burst,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                updated: Instant::now(),
            }),
        }
    }

    pub fn qps(&self) -> f64 {
        self.qps
    }

    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// Reserves one permit and says how long to wait before using it. Callers are served in the
    /// order they reserve.
    fn reserve(&self) -> Duration {
        let mut bucket = self.bucket.lock();
        let now = Instant::now();
        let refilled = now.saturating_duration_since(bucket.updated).as_secs_f64() * self.qps;
        bucket.tokens = (bucket.tokens + refilled).min(self.burst);
        bucket.updated = now;
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / self.qps)
        }
    }

    /// Waits for a permit.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// How many permits could be taken now without waiting (negative while callers queue).
    #[cfg(test)]
    fn available(&self) -> f64 {
        let bucket = self.bucket.lock();
        let refilled = Instant::now()
            .saturating_duration_since(bucket.updated)
            .as_secs_f64()
            * self.qps;
        (bucket.tokens + refilled).min(self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_passes_at_once_then_permits_come_at_the_rate() {
        let limiter = RateLimiter::new(10.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_refills_up_to_the_burst_only() {
        let limiter = RateLimiter::new(10.0, 2);
        limiter.acquire().await;
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn queued_callers_are_spaced_out() {
        let limiter = std::sync::Arc::new(RateLimiter::new(4.0, 1));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                limiter.acquire().await;
                Instant::now()
            }));
        }
        let mut done = Vec::new();
        for task in tasks {
            done.push(task.await.unwrap().duration_since(start));
        }
        done.sort();
        assert_eq!(done.last().copied(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn the_shares_add_up_to_the_configured_limit() {
        let budget = ApiBudget::new(0.0, 0);
        assert_eq!(budget.events().qps(), DEFAULT_QPS * EVENT_SHARE);
        assert_eq!(budget.events().burst(), 20.0);
        assert_eq!(budget.requests().burst(), 80.0);
        for (qps, burst) in [(50.0, 100), (5.0, 10), (1.0, 2), (0.01, 3), (333.0, 7)] {
            let budget = ApiBudget::new(qps, burst);
            let total_qps = budget.requests().qps() + budget.events().qps();
            assert!((total_qps - qps).abs() < 1e-9, "{qps}: {total_qps}");
            assert_eq!(
                budget.requests().burst() + budget.events().burst(),
                f64::from(burst),
                "burst {burst}"
            );
            assert!(budget.events().burst() >= 1.0 && budget.requests().burst() >= 1.0);
        }
        // One permit cannot be split: each bucket gets one.
        let budget = ApiBudget::new(5.0, 1);
        assert_eq!(budget.requests().burst(), 1.0);
        assert_eq!(budget.events().burst(), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_never_wait_for_events() {
        // Events 1/s with a burst of 1, requests 4/s with a burst of 4.
        let budget = ApiBudget::new(5.0, 5);
        let start = Instant::now();
        // A backlog of Events, queued for permits an hour ahead.
        for _ in 0..3600 {
            budget.events().reserve();
        }
        assert!(budget.events().available() < -3000.0);
        for _ in 0..4 {
            budget.requests().acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        budget.requests().acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(250));
    }

    #[test]
    fn zero_means_the_defaults() {
        let limiter = RateLimiter::new(0.0, 0);
        assert_eq!(limiter.qps(), DEFAULT_QPS);
        assert_eq!(limiter.burst(), f64::from(DEFAULT_BURST));
        assert_eq!(RateLimiter::new(-1.0, 0).qps(), DEFAULT_QPS);
        assert_eq!(RateLimiter::new(1e-300, 1).qps(), MINIMUM_QPS);
        assert_eq!(RateLimiter::new(f64::NAN, 1).qps(), DEFAULT_QPS);
    }
}
