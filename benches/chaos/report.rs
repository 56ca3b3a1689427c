//! Report: violations by kind and the latencies kubelet would see.

use super::*;

pub(crate) struct Report<'a> {
    pub(crate) options: Options,
    pub(crate) node: &'a Node,
    pub(crate) chaos_took: Duration,
    pub(crate) tally: &'a Tally,
    pub(crate) outages: &'a [Window],
    pub(crate) chaos_started: Instant,
    /// The same moment as a UTC time, to line offsets up with the driver log's timestamps.
    pub(crate) chaos_started_utc: time::OffsetDateTime,
    pub(crate) checked: &'a Checked,
    pub(crate) teardown: &'a Teardown,
    pub(crate) leftovers: &'a [String],
    pub(crate) requests_left: usize,
    pub(crate) log: &'a LogScan,
    pub(crate) driver_starts: usize,
}

pub(crate) fn ms(duration: Duration) -> String {
    if duration >= Duration::from_secs(1) {
        format!("{:.2} s", duration.as_secs_f64())
    } else {
        format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
    }
}

/// `p50 …, p90 …, max …` of unsorted samples.
pub(crate) fn spread(mut samples: Vec<Duration>) -> String {
    if samples.is_empty() {
        return "none".into();
    }
    samples.sort_unstable();
    format!(
        "p50 {}, p90 {}, max {}",
        ms(common::percentile(&samples, 50.0)),
        ms(common::percentile(&samples, 90.0)),
        ms(*samples.last().unwrap_or(&Duration::ZERO))
    )
}

pub(crate) fn counts(map: &BTreeMap<String, usize>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(kind, count)| format!("\n    {count:>6} × {kind}"))
        .collect::<String>()
}

impl Report<'_> {
    pub(crate) fn print(&self) {
        self.header();
        self.publishes();
        self.unpublishes();
        self.faults();
        self.violations();
        self.end();
    }

    /// `+12.3 s` from the start of the chaos.
    pub(crate) fn at(&self, instant: Instant) -> String {
        let offset = instant
            .checked_duration_since(self.chaos_started)
            .map_or(0.0, |d| d.as_secs_f64());
        format!("+{offset:.1} s")
    }

    pub(crate) fn header(&self) {
        let options = &self.options;
        println!(
            "chaos: the real binary (cert-manager backend, test API server) under churn, kill -9 and API outages"
        );
        println!(
            "  machine  {} ({} cores), Linux {}",
            common::cpu_model(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            common::kernel_release()
        );
        println!(
            "  run      {:.1} min of chaos from {} (+0 s below), {} live volumes, seed {} (--seed {} repeats the draws)",
            self.chaos_took.as_secs_f64() / 60.0,
            self.chaos_started_utc
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            options.volumes,
            options.seed,
            options.seed
        );
        println!(
            "  node     {} (real tmpfs mounts); driver log {}{}",
            self.node.dir.display(),
            self.node.log().display(),
            if options.keep {
                ""
            } else {
                " (removed; --keep keeps it)"
            }
        );
        println!(
            "  volumes  {LIFETIME} ECDSA certificates renewed at 2/3; one pod replaced every {:.1}–{:.1} s",
            *CHURN_EVERY_MS.start() as f64 / 1000.0,
            *CHURN_EVERY_MS.end() as f64 / 1000.0
        );
    }

    pub(crate) fn publishes(&self) {
        let tally = self.tally;
        let retries: u32 = tally
            .publishes
            .iter()
            .map(|(_, attempts)| attempts - 1)
            .sum();
        let retried = tally.publishes.iter().filter(|(_, a)| *a > 1).count();
        println!(
            "\npublishes    {} succeeded ({} after retries, {} retries in all); {} never succeeded",
            tally.publishes.len(),
            retried,
            retries,
            tally.never_published.len()
        );
        println!(
            "  time to success       {}",
            spread(tally.publishes.iter().map(|(took, _)| *took).collect())
        );
        println!("  failed attempts       {}", counts(&tally.publish_errors));
    }

    /// The outage an unpublish overlapped, if any.
    pub(crate) fn outage_of(&self, unpublished: &Unpublished) -> Option<usize> {
        self.outages
            .iter()
            .position(|window| window.overlaps(unpublished.started, unpublished.ended))
    }

    pub(crate) fn unpublishes(&self) {
        let tally = self.tally;
        let latency = |u: &&Unpublished| u.ended - u.started;
        let (during, outside): (Vec<&Unpublished>, Vec<&Unpublished>) = tally
            .unpublishes
            .iter()
            .partition(|u| self.outage_of(u).is_some());
        let retries: u32 = tally.unpublishes.iter().map(|u| u.attempts - 1).sum();
        println!(
            "unpublishes  {} ({} retries); {} never succeeded during the run",
            tally.unpublishes.len(),
            retries,
            tally.never_unpublished.len()
        );
        println!(
            "  all                   {}",
            spread(tally.unpublishes.iter().map(|u| latency(&u)).collect())
        );
        println!(
            "  during outages ({:>3})  {}",
            during.len(),
            spread(during.iter().map(latency).collect())
        );
        println!(
            "  outside outages ({:>3}) {}",
            outside.len(),
            spread(outside.iter().map(latency).collect())
        );
        println!(
            "  failed attempts       {}",
            counts(&tally.unpublish_errors)
        );
        let mut slowest: Vec<&Unpublished> = tally.unpublishes.iter().collect();
        slowest.sort_by_key(|u| std::cmp::Reverse(latency(u)));
        for unpublished in slowest.into_iter().take(3) {
            let context = match self.outage_of(unpublished) {
                Some(index) => {
                    let window = self.outages[index];
                    let into = unpublished.started.checked_duration_since(window.start);
                    format!(
                        "outage {} ({})",
                        index + 1,
                        into.map_or("started before it".into(), |d| format!(
                            "{:.1} s into it",
                            d.as_secs_f64()
                        ))
                    )
                }
                None => "no outage".into(),
            };
            println!(
                "  slow: {} {} at {}, {} attempts, {context}",
                unpublished.volume_id,
                ms(latency(&unpublished)),
                self.at(unpublished.started),
                unpublished.attempts
            );
        }
    }

    pub(crate) fn faults(&self) {
        let tally = self.tally;
        println!(
            "renewals     {} (certificate serial changes seen by the checker)",
            self.checked.renewals
        );
        println!(
            "kills        {} (kill -9): {} with a publish in flight, {} with an unpublish in flight, {} with a renewal due",
            tally.kills,
            tally.kills_mid_publish,
            tally.kills_mid_unpublish,
            tally.kills_renewal_due
        );
        let restarts = |in_outage: bool| {
            spread(
                tally
                    .restarts
                    .iter()
                    .filter(|r| r.during_outage == in_outage)
                    .map(|r| r.took)
                    .collect(),
            )
        };
        println!(
            "  restart → serving (Probe ready), API up: {}",
            restarts(false)
        );
        println!(
            "  restart → serving, during outages ({}): {}",
            tally.restarts.iter().filter(|r| r.during_outage).count(),
            restarts(true)
        );
        let windows: Vec<String> = self
            .outages
            .iter()
            .map(|window| {
                let end = window.end.unwrap_or(window.start);
                format!(
                    "{}–{} ({:.1} s)",
                    self.at(window.start),
                    self.at(end),
                    (end - window.start).as_secs_f64()
                )
            })
            .collect();
        println!(
            "outages      {}: {}",
            self.outages.len(),
            windows.join(", ")
        );
        println!(
            "API faults   {} watch drops, {} CertificateRequest creates failed with 500, {} API \
             server restarts (watches ended, 410 Gone, 20 requests failed with 503), {} storms of \
             8 429s on create (Retry-After 1 s), {} slow-signer spells (5 s a request for 20 s)",
            tally.watch_drops,
            tally.injected_500s,
            tally.api_restarts,
            tally.storms_429,
            tally.slow_signer_spells
        );
        println!(
            "reboots      {}",
            if tally.reboots.is_empty() {
                "none".to_string()
            } else {
                tally
                    .reboots
                    .iter()
                    .map(|(count, took)| {
                        format!(
                            "every tmpfs gone, the driver restarted, {count} volumes published \
                             afresh by kubelet, all back in {:.1} s",
                            took.as_secs_f64()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        );
        println!(
            "disk full    {} spells with the data root full ({:.0} s in all): publishes that cannot \
             record their volume fail with ResourceExhausted and are retried",
            tally.disk_full_spells,
            tally.disk_full_for.as_secs_f64()
        );
    }

    pub(crate) fn violations(&self) {
        let checked = self.checked;
        println!(
            "checks       {} volume checks in {} rounds every {} ms ({} reads raced a ..data swap and were read again)",
            checked.checks,
            checked.rounds,
            CHECK_EVERY.as_millis(),
            checked.swap_races
        );
        println!("violations   incidents (observations)");
        let mut incidents = checked.incidents.clone();
        let mut examples = checked.examples.clone();
        let never: Vec<String> = self
            .tally
            .never_published
            .iter()
            .map(|v| v.id.clone())
            .collect();
        incidents.insert(NEVER_PUBLISHED, never.len());
        examples.insert(NEVER_PUBLISHED, never);
        incidents.insert(LEFTOVERS, self.leftovers.len());
        examples.insert(LEFTOVERS, self.leftovers.to_vec());
        for kind in VIOLATION_KINDS {
            let observed = checked
                .observations
                .get(kind)
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            println!(
                "  {kind:<27} {}{observed}",
                incidents.get(kind).copied().unwrap_or(0)
            );
            for example in examples
                .get(kind)
                .into_iter()
                .flatten()
                .take(EXAMPLES_PER_KIND)
            {
                println!("      {example}");
            }
        }
        let mut replaced = checked.replaced_after_outage.clone();
        replaced.sort_unstable();
        println!(
            "expired in outages  {} certificates (allowed); {} replaced after the API came back{}; {} unpublished first",
            checked.expired_excused,
            replaced.len(),
            match (replaced.first(), replaced.last()) {
                (Some(first), Some(last)) => format!(", min {}, max {}", ms(*first), ms(*last)),
                _ => String::new(),
            },
            checked.expired_unpublished_first
        );
    }

    pub(crate) fn end(&self) {
        let teardown = self.teardown;
        println!(
            "teardown     {} volumes unpublished with the driver up in {}{}; {} CertificateRequests left in the API",
            teardown.volumes,
            ms(teardown.took),
            if teardown.failed.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} failed: {})",
                    teardown.failed.len(),
                    teardown.failed.join(", ")
                )
            },
            self.requests_left
        );
        println!(
            "driver log   {} starts; {} lines with \"panicked\", {} ERROR, {} WARN",
            self.driver_starts,
            self.log.panics.len(),
            self.log.errors,
            self.log.warnings
        );
        for line in self.log.panics.iter().take(EXAMPLES_PER_KIND) {
            println!("      {line}");
        }
    }
}
