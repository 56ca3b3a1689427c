//! Checker: every published volume, read the way a pod reads it.

use super::*;

#[derive(Debug)]
pub(crate) struct Certificate {
    pub(crate) serial: String,
    pub(crate) not_after: SystemTime,
    pub(crate) renew_at: SystemTime,
}

pub(crate) enum Observation {
    Valid(Certificate),
    Expired(Certificate),
    Broken(&'static str, String),
}

#[derive(Default)]
pub(crate) struct Checked {
    pub(crate) rounds: u64,
    pub(crate) checks: u64,
    pub(crate) renewals: u64,
    /// Reads that found the set they resolved already replaced (the driver removes an old set
    /// right after the swap); read again through the new `..data`, not a violation.
    pub(crate) swap_races: u64,
    /// Distinct (volume, kind) incidents and the observations of them.
    pub(crate) incidents: BTreeMap<&'static str, usize>,
    pub(crate) observations: BTreeMap<&'static str, usize>,
    pub(crate) examples: BTreeMap<&'static str, Vec<String>>,
    /// Certificates seen expired while an outage excused it.
    pub(crate) expired_excused: usize,
    /// For those later replaced: time from the end of the outage to the new certificate.
    pub(crate) replaced_after_outage: Vec<Duration>,
    /// Those whose volume was unpublished before a new certificate was seen.
    pub(crate) expired_unpublished_first: usize,
}

impl Checked {
    pub(crate) fn record(&mut self, kind: &'static str, fresh: bool, detail: String) {
        *self.observations.entry(kind).or_default() += 1;
        if fresh {
            *self.incidents.entry(kind).or_default() += 1;
            let examples = self.examples.entry(kind).or_default();
            if examples.len() < EXAMPLES_PER_KIND {
                examples.push(detail);
            }
        }
    }
}

pub(crate) struct Checker {
    pub(crate) chaos: Arc<Chaos>,
    pub(crate) started: Instant,
    /// The serial last seen per volume, to count renewals.
    pub(crate) serials: HashMap<String, String>,
    /// Violations currently open per volume: one incident until the volume is healthy again.
    pub(crate) open: HashMap<String, HashSet<&'static str>>,
    /// Volumes with an excused expired certificate: its serial and the outage that excused it.
    pub(crate) awaiting_replacement: HashMap<String, (String, usize)>,
    pub(crate) checked: Checked,
}

impl Checker {
    pub(crate) fn new(chaos: Arc<Chaos>) -> Checker {
        Checker {
            chaos,
            started: Instant::now(),
            serials: HashMap::new(),
            open: HashMap::new(),
            awaiting_replacement: HashMap::new(),
            checked: Checked::default(),
        }
    }

    pub(crate) fn run(mut self, stop: &AtomicBool) -> Checked {
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            self.round();
            next += CHECK_EVERY;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        self.checked
    }

    pub(crate) fn round(&mut self) {
        // A node reboot takes every pod down with it: nothing to read until kubelet has
        // published their volumes again.
        if self.chaos.rebooting.load(Ordering::Relaxed) {
            return;
        }
        self.checked.rounds += 1;
        let volumes: Vec<Volume> = self.chaos.published.lock().values().cloned().collect();
        let mounts: HashSet<PathBuf> = self.chaos.node.mounts().into_iter().collect();
        let mut renewals_due = 0;
        let live: HashSet<&str> = volumes.iter().map(|v| v.id.as_str()).collect();
        self.serials.retain(|id, _| live.contains(id.as_str()));
        let awaiting = self.awaiting_replacement.len();
        self.awaiting_replacement
            .retain(|id, _| live.contains(id.as_str()));
        self.checked.expired_unpublished_first += awaiting - self.awaiting_replacement.len();
        for volume in &volumes {
            let observation = self.observe(&volume.target, &mounts);
            let (now, now_system) = (Instant::now(), SystemTime::now());
            // An unpublish may have started meanwhile: only what was seen while kubelet still
            // considered the volume published counts.
            if !self.chaos.is_published(&volume.id) {
                continue;
            }
            self.checked.checks += 1;
            match observation {
                Observation::Valid(certificate) => {
                    renewals_due += usize::from(now_system >= certificate.renew_at);
                    self.seen_certificate(&volume.id, &certificate, now);
                    self.open.remove(&volume.id);
                }
                Observation::Expired(certificate) => {
                    renewals_due += 1;
                    self.seen_certificate(&volume.id, &certificate, now);
                    self.expired(&volume.id, certificate, now, now_system);
                }
                Observation::Broken(kind, detail) => self.violation(&volume.id, kind, detail),
            }
        }
        self.chaos
            .renewals_due
            .store(renewals_due, Ordering::Relaxed);
    }

    pub(crate) fn seen_certificate(
        &mut self,
        volume_id: &str,
        certificate: &Certificate,
        now: Instant,
    ) {
        let previous = self
            .serials
            .insert(volume_id.to_string(), certificate.serial.clone());
        if previous.is_some_and(|serial| serial != certificate.serial) {
            self.checked.renewals += 1;
        }
        if let Some((serial, outage)) = self.awaiting_replacement.get(volume_id)
            && *serial != certificate.serial
        {
            if let Some(end) = self.chaos.outages().get(*outage).and_then(|w| w.end) {
                self.checked
                    .replaced_after_outage
                    .push(now.saturating_duration_since(end));
            }
            self.awaiting_replacement.remove(volume_id);
        }
    }

    /// An expired certificate is excused only while an outage that overlapped its renewal window
    /// (renewal point to notAfter) lasts, and for a short grace after it.
    pub(crate) fn expired(
        &mut self,
        volume_id: &str,
        certificate: Certificate,
        now: Instant,
        now_system: SystemTime,
    ) {
        let as_instant = |at: SystemTime| {
            let ago = now_system.duration_since(at).unwrap_or_default();
            now.checked_sub(ago).unwrap_or(self.started)
        };
        let (renew_at, not_after) = (
            as_instant(certificate.renew_at),
            as_instant(certificate.not_after),
        );
        let excuse = self.chaos.outages().iter().position(|window| {
            window.overlaps(renew_at, not_after)
                && window.end.is_none_or(|end| now <= end + EXPIRY_GRACE)
        });
        match excuse {
            Some(outage) => {
                if !self.awaiting_replacement.contains_key(volume_id) {
                    self.checked.expired_excused += 1;
                }
                self.awaiting_replacement
                    .insert(volume_id.to_string(), (certificate.serial, outage));
                self.open.remove(volume_id);
            }
            None => {
                let detail = format!(
                    "{volume_id}: serial {} expired {:.1} s ago",
                    certificate.serial,
                    now.saturating_duration_since(not_after).as_secs_f64()
                );
                self.violation(volume_id, EXPIRED, detail);
            }
        }
    }

    pub(crate) fn violation(&mut self, volume_id: &str, kind: &'static str, detail: String) {
        let fresh = self
            .open
            .entry(volume_id.to_string())
            .or_default()
            .insert(kind);
        let at = self.started.elapsed().as_secs_f64();
        self.checked
            .record(kind, fresh, format!("+{at:.1} s {detail}"));
    }

    /// Mounted, then the files read through one resolution of `..data`.
    pub(crate) fn observe(&mut self, target: &Path, mounts: &HashSet<PathBuf>) -> Observation {
        if !mounts.contains(target) {
            return Observation::Broken(
                LOST_MOUNT,
                format!("{} is not a mount point", target.display()),
            );
        }
        match read_set(target) {
            Ok(observation) => observation,
            Err((resolved, reason)) => {
                let now_resolves = std::fs::read_link(target.join("..data")).ok();
                if resolved.is_some() && now_resolves.is_some() && now_resolves != resolved {
                    self.checked.swap_races += 1;
                    return read_set(target)
                        .unwrap_or_else(|(_, reason)| Observation::Broken(UNREADABLE, reason));
                }
                Observation::Broken(UNREADABLE, reason)
            }
        }
    }
}

/// Reads key and certificate from the set `..data` points at, resolved once (as a pod that opens
/// both files through one directory would); on failure, what it resolved to and why.
pub(crate) fn read_set(target: &Path) -> Result<Observation, (Option<PathBuf>, String)> {
    let set = std::fs::read_link(target.join("..data"))
        .map_err(|e| (None, format!("{}/..data: {e}", target.display())))?;
    let dir = target.join(&set);
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        (
            Some(set.clone()),
            format!("{}: {what}: {error}", dir.display()),
        )
    };
    let key = std::fs::read_to_string(dir.join("tls.key")).map_err(|e| failed("tls.key", &e))?;
    let chain = std::fs::read_to_string(dir.join("tls.crt")).map_err(|e| failed("tls.crt", &e))?;
    let leaf = inspect_leaf(&chain).map_err(|e| failed("tls.crt", &e))?;
    let matches = key_matches_certificate(&key, &chain).map_err(|e| failed("tls.key", &e))?;
    if !matches {
        return Ok(Observation::Broken(
            MISMATCH,
            format!(
                "{}: tls.key is not the key of serial {}",
                dir.display(),
                leaf.serial
            ),
        ));
    }
    // cert-manager's rule without renew-before: renew when a third of the lifetime is left.
    let lifetime = leaf.lifetime();
    let certificate = Certificate {
        serial: leaf.serial,
        not_after: leaf.not_after,
        renew_at: leaf.not_after - lifetime / 3,
    };
    Ok(if SystemTime::now() >= certificate.not_after {
        Observation::Expired(certificate)
    } else {
        Observation::Valid(certificate)
    })
}
