//! A client-side token bucket for calls to the Kubernetes API (`--kube-api-qps`,
//! `--kube-api-burst`), so that a burst of pods on one node cannot flood the API server, while a
//! default that is generous enough never makes issuance wait behind its own limiter (upstream's
//! 5 QPS / 10 burst is what left volumes empty under churn, its #636).

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
    fn zero_means_the_defaults() {
        let limiter = RateLimiter::new(0.0, 0);
        assert_eq!(limiter.qps(), DEFAULT_QPS);
        assert_eq!(limiter.burst(), f64::from(DEFAULT_BURST));
        assert_eq!(RateLimiter::new(-1.0, 0).qps(), DEFAULT_QPS);
        assert_eq!(RateLimiter::new(1e-300, 1).qps(), MINIMUM_QPS);
        assert_eq!(RateLimiter::new(f64::NAN, 1).qps(), DEFAULT_QPS);
    }
}
