//! Shared state of a run: the volumes, the API outages, the tallies.

use super::*;

#[derive(Debug, Clone)]
pub(crate) struct Volume {
    pub(crate) id: String,
    pub(crate) pod: String,
    pub(crate) uid: String,
    pub(crate) target: PathBuf,
}

/// One API outage; `end` is `None` while it lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) start: Instant,
    pub(crate) end: Option<Instant>,
}

impl Window {
    pub(crate) fn overlaps(&self, from: Instant, to: Instant) -> bool {
        self.start <= to && self.end.is_none_or(|end| end >= from)
    }
}

pub(crate) struct Unpublished {
    pub(crate) volume_id: String,
    pub(crate) started: Instant,
    pub(crate) ended: Instant,
    pub(crate) attempts: u32,
}

pub(crate) struct Restart {
    pub(crate) took: Duration,
    pub(crate) during_outage: bool,
}

#[derive(Default)]
pub(crate) struct Tally {
    /// Time from the first attempt to success, and attempts, of each successful publish.
    pub(crate) publishes: Vec<(Duration, u32)>,
    pub(crate) publish_errors: BTreeMap<String, usize>,
    pub(crate) never_published: Vec<Volume>,
    pub(crate) unpublishes: Vec<Unpublished>,
    pub(crate) unpublish_errors: BTreeMap<String, usize>,
    pub(crate) never_unpublished: Vec<Volume>,
    pub(crate) kills: usize,
    pub(crate) kills_mid_publish: usize,
    pub(crate) kills_mid_unpublish: usize,
    pub(crate) kills_renewal_due: usize,
    pub(crate) restarts: Vec<Restart>,
    pub(crate) watch_drops: usize,
    pub(crate) injected_500s: usize,
    pub(crate) api_restarts: usize,
    pub(crate) storms_429: usize,
    pub(crate) slow_signer_spells: usize,
    /// Spells with the data root full, and how long they lasted in all.
    pub(crate) disk_full_spells: usize,
    pub(crate) disk_full_for: Duration,
    /// Node reboots: how many volumes each brought back, and how long until all were.
    pub(crate) reboots: Vec<(usize, Duration)>,
}

pub(crate) struct Chaos {
    pub(crate) node: Node,
    pub(crate) driver: Arc<Driver>,
    pub(crate) api: TestApiServer,
    /// The cert-manager-like signer (a slow spell changes its mode).
    pub(crate) signer: Signer,
    pub(crate) client: Mutex<CsiClient>,
    /// What kubelet considers published (ordered, so random picks follow the seed).
    pub(crate) published: Mutex<BTreeMap<String, Volume>>,
    pub(crate) outages: Mutex<Vec<Window>>,
    pub(crate) frozen: AtomicBool,
    pub(crate) publishes_in_flight: AtomicUsize,
    pub(crate) unpublishes_in_flight: AtomicUsize,
    /// Published volumes whose certificate is past its renewal point (the checker's last view).
    pub(crate) renewals_due: AtomicUsize,
    /// Set after the drain period: kubelet stops retrying.
    pub(crate) give_up: AtomicBool,
    pub(crate) tally: Mutex<Tally>,
    /// Held while the driver is killed and started again (a kill, a reboot), so that two never
    /// overlap.
    pub(crate) lifecycle: tokio::sync::Mutex<()>,
    /// A node reboot is under way: the pods are down, the checker looks at nothing.
    pub(crate) rebooting: AtomicBool,
}

impl Chaos {
    pub(crate) fn client(&self) -> CsiClient {
        self.client.lock().clone()
    }

    pub(crate) fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock()
    }

    pub(crate) fn outages(&self) -> Vec<Window> {
        self.outages.lock().clone()
    }

    pub(crate) fn is_published(&self, volume_id: &str) -> bool {
        self.published.lock().contains_key(volume_id)
    }
}

/// A seedable stream per concern, so that one loop's draws do not shift another's.
pub(crate) fn stream(seed: u64, concern: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed ^ concern.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

pub(crate) fn random_duration(
    rng: &mut fastrand::Rng,
    millis: std::ops::RangeInclusive<u64>,
) -> Duration {
    Duration::from_millis(rng.u64(millis))
}
