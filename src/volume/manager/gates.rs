//! Readiness gates on the issuance path: an issuance asks its pod (through the node's pod watch)
//! before making a key. A pod that does not meet every gate yet puts the volume in waiting: it
//! stays mounted and empty (as `--continue-on-not-ready` promises), a Warning Event says which
//! gate and since when, and the volume is due again the moment the watch delivers a change to its
//! pod. Nothing polls the API server; `--gate-backoff-*` only bounds how long a missed watch event
//! could go unnoticed (the re-check reads the watch's view, not the API).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::issue::Action;
use super::volume::ManagedVolume;
use super::{Readiness, VolumeManager, rfc3339};
use crate::attributes::PodIpSans;
use crate::pod_events::{PodEvent, reason};
use crate::pod_gates::{self, PodFacts};

/// What `GateWait::on` says of a pod that went or is going (nothing is issued any more).
const POD_GONE: &str = "its pod is gone";
const POD_DELETING: &str = "its pod is being deleted";

/// The same Warning again after this long while still waiting (kubelet-style event series).
const REPEAT_EVENT_EVERY: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// What a volume is waiting for before its certificate can be issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GateWait {
    /// The gate (`pod-ip:any`), or what else holds it up (`its pod is being deleted`).
    pub on: String,
    pub since: SystemTime,
    /// The pod went away (or is going): nothing is issued for this volume any more.
    pub pod_gone: bool,
    /// Re-checks so far, for the backoff.
    pub checks: u32,
    /// When the Warning Event was last recorded.
    pub reported: SystemTime,
    /// The pod (this UID) was seen while waiting: if it vanishes now, it is gone.
    pub pod_seen: bool,
}

/// The pod's verdict for one issuance.
pub(super) enum Verdict {
    /// Issue now, for these pod addresses.
    Issue(Vec<IpAddr>),
    /// Not now: the first thing that holds it up, and whether the pod is gone for good.
    Wait { on: String, pod_gone: bool },
}

/// Judges a pod's latest facts for an issuance of `action`. `seen_ours` says whether this pod
/// (this UID) was seen before: only then does its absence mean it is gone.
fn judge(
    readiness: &Readiness,
    facts: Option<&PodFacts>,
    pod_uid: &str,
    action: Action,
    own_ips: PodIpSans,
    seen_ours: bool,
) -> Verdict {
    let ours = facts.filter(|facts| facts.uid == pod_uid || pod_uid.is_empty());
    // A renewal needs nothing of the pod but its addresses (for `${POD_IP}`), and is skipped for
    // a pod being deleted: a pod the watch does not show (yet, or under another UID, as a
    // static pod's mirror may be) never holds a renewal of a certificate without pod addresses.
    if action == Action::Renew && own_ips == PodIpSans::None && !ours.is_some_and(|f| f.deleting) {
        return Verdict::Issue(Vec::new());
    }
    let Some(facts) = ours else {
        return if seen_ours {
            Verdict::Wait {
                on: POD_GONE.into(),
                pod_gone: true,
            }
        } else {
            // kubelet publishes for pods the API server has; the watch has not shown it yet.
            Verdict::Wait {
                on: "its pod to be seen by the driver's pod watch".into(),
                pod_gone: false,
            }
        };
    };
    if facts.deleting {
        return Verdict::Wait {
            on: POD_DELETING.into(),
            pod_gone: true,
        };
    }
    // Gates hold back the first certificate; a renewal only needs what the certificate names.
    if action != Action::Renew
        && let Some(gate) = pod_gates::first_unmet(&readiness.gates, facts)
    {
        return Verdict::Wait {
            on: gate.to_string(),
            pod_gone: false,
        };
    }
    if own_ips != PodIpSans::None && facts.ips.is_empty() {
        return Verdict::Wait {
            on: "an address of its pod (for ${POD_IP})".into(),
            pod_gone: false,
        };
    }
    Verdict::Issue(facts.ips.clone())
}

fn pod_key(volume: &ManagedVolume) -> (String, String) {
    let pod = volume.pod();
    (pod.namespace.clone(), pod.name.clone())
}

impl VolumeManager {
    /// Whether an issuance of `volume` may run now; with no gates configured, always (and no pod
    /// addresses: `${POD_IP}` is refused at publish without them).
    pub(super) fn gate_verdict(&self, volume: &ManagedVolume, action: Action) -> Verdict {
        let Some(attributes) = volume.valid_attributes() else {
            return Verdict::Issue(Vec::new());
        };
        let Some(readiness) = &self.config.readiness else {
            // Reloaded after a restart without the gate: never renewed without its addresses.
            if attributes.spec.pod_ip_sans != PodIpSans::None {
                return Verdict::Wait {
                    on: "a pod-ip readiness gate: the volume names its pod's addresses \
                         (${POD_IP}) and the driver runs without --pod-readiness-gate=pod-ip:…"
                        .into(),
                    pod_gone: true,
                };
            }
            return Verdict::Issue(Vec::new());
        };
        let pod = &attributes.pod;
        let facts = readiness.pods.get(&pod.namespace, &pod.name);
        // A volume with a certificate had its pod seen at least once (by this process or the
        // one before it), so a pod missing from a synced watch is gone.
        let seen_ours = volume.gate_wait.as_ref().is_some_and(|wait| wait.pod_seen)
            || (volume.certificate().is_some() && readiness.pods.is_synced());
        judge(
            readiness,
            facts.as_deref(),
            &pod.uid,
            action,
            attributes.spec.pod_ip_sans,
            seen_ours,
        )
    }

    /// Books a volume that has to wait on its pod: its state, a Warning Event when the reason is
    /// new (and again every few minutes while it lasts, folded into one Event's series), and a
    /// look again the moment the pod changes — or after `--gate-backoff-*` at the latest, in case
    /// a watch event was missed.
    pub(super) fn book_wait(&self, volume: &mut ManagedVolume, on: String, pod_gone: bool) {
        let now = SystemTime::now();
        let pod = pod_key(volume);
        let volume_id = volume.id().to_string();
        let changed = volume.gate_wait.as_ref().is_none_or(|wait| wait.on != on);
        if changed {
            tracing::info!(
                volume_id = %volume.id(),
                pod = %volume.pod(),
                waiting_on = %on,
                "certificate issuance waits for the pod"
            );
            volume.gate_wait = Some(Box::new(GateWait {
                on,
                since: now,
                pod_gone,
                checks: 0,
                reported: now,
                pod_seen: false,
            }));
            self.report_gate_wait(volume);
        } else if let Some(wait) = volume.gate_wait.as_mut()
            && now.duration_since(wait.reported).unwrap_or_default() >= REPEAT_EVENT_EVERY
        {
            wait.reported = now;
            self.report_gate_wait(volume);
        }
        let uid = volume.pod().uid.clone();
        let (Some(readiness), Some(wait)) = (&self.config.readiness, volume.gate_wait.as_mut())
        else {
            self.save_progress(volume);
            return;
        };
        wait.pod_seen |= readiness
            .pods
            .get(&pod.0, &pod.1)
            .is_some_and(|facts| facts.uid == uid);
        if wait.pod_gone {
            // Nothing more is issued for it; kubelet's unpublish takes the volume away.
            self.forget_waiting(&pod, &volume_id);
            self.save_progress(volume);
            return;
        }
        let recheck = readiness.backoff.delay(wait.checks, fastrand::f64());
        wait.checks = wait.checks.saturating_add(1);
        // Scheduled before it is listed as waiting, so a wake-up from the gate loop that comes in
        // between can only bring it forward.
        self.scheduler
            .schedule(&volume_id, tokio::time::Instant::now() + recheck);
        self.waiting
            .lock()
            .entry(pod.clone())
            .or_default()
            .insert(volume_id.clone());
        // The pod may have changed after it was judged and before it was listed (a change the
        // gate loop then had no one to wake for): if it passes now, it is due now.
        if readiness.pods.get(&pod.0, &pod.1).is_some_and(|facts| {
            facts.uid == uid && pod_gates::first_unmet(&readiness.gates, &facts).is_none()
        }) {
            self.scheduler
                .schedule(&volume_id, tokio::time::Instant::now());
        }
        self.save_progress(volume);
    }

    /// How many volumes wait on their pod now (a pod's volumes each count).
    pub fn waiting_count(&self) -> usize {
        self.waiting.lock().values().map(|ids| ids.len()).sum()
    }

    /// The wait is over: the certificate was issued.
    pub(super) fn end_wait(&self, volume: &mut ManagedVolume) {
        if volume.gate_wait.take().is_some() {
            self.forget_waiting(&pod_key(volume), volume.id());
        }
    }

    /// Takes a volume off its pod's waiting list (issued, gone, or unpublished).
    pub(super) fn forget_waiting(&self, pod: &(String, String), volume_id: &str) {
        let mut waiting = self.waiting.lock();
        if let Some(ids) = waiting.get_mut(pod) {
            ids.remove(volume_id);
            if ids.is_empty() {
                waiting.remove(pod);
            }
        }
    }

    fn report_gate_wait(&self, volume: &ManagedVolume) {
        let Some(wait) = &volume.gate_wait else {
            return;
        };
        let what = if wait.pod_gone {
            format!("no certificate is issued any more: {}", wait.on)
        } else {
            format!("certificate issuance waits for {}", wait.on)
        };
        // The same text each time, so the recorder folds repeats into one Event's series.
        self.events.record(
            &volume.pod(),
            PodEvent::warning(
                reason::WAITING_FOR_POD,
                "Issue",
                format!(
                    "volume {}: {what} (since {})",
                    volume.id(),
                    rfc3339(wait.since)
                ),
            ),
        );
    }

    /// Wakes the volumes waiting on a pod the moment the pod watch delivers a change to it: they
    /// are due at once, and the renewal queue runs their issuance, which judges the pod again.
    pub fn spawn_gate_loop(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        let mut changes = self.pod_changes.lock().take()?;
        let this = Arc::clone(self);
        Some(tokio::spawn(async move {
            loop {
                let woken: Vec<String> = match changes.recv().await {
                    Ok(key) => this
                        .waiting
                        .lock()
                        .get(&key)
                        .map(|ids| ids.iter().cloned().collect())
                        .unwrap_or_default(),
                    // Too many changes at once to follow one by one: look at every waiting one.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        this.waiting.lock().values().flatten().cloned().collect()
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let now = tokio::time::Instant::now();
                for volume_id in woken {
                    this.scheduler.schedule(&volume_id, now);
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::pods::PodWatch;
    use crate::pod_gates::{Gate, GateBackoff};

    fn readiness(gates: &[&str]) -> Readiness {
        Readiness {
            gates: gates
                .iter()
                .map(|gate| gate.parse::<Gate>().unwrap())
                .collect(),
            backoff: GateBackoff::default(),
            pods: PodWatch::new(),
        }
    }

    fn facts(uid: &str, ips: &[&str]) -> PodFacts {
        PodFacts {
            uid: uid.into(),
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            ..PodFacts::default()
        }
    }

    fn waits_on(verdict: Verdict) -> Option<(String, bool)> {
        match verdict {
            Verdict::Issue(_) => None,
            Verdict::Wait { on, pod_gone } => Some((on, pod_gone)),
        }
    }

    #[test]
    fn the_pods_verdict() {
        let ip_gate = readiness(&["pod-ip:any"]);
        let none = PodIpSans::None;
        let judge_issue = |f: Option<&PodFacts>, seen| {
            waits_on(judge(
                &ip_gate,
                f,
                "u1",
                Action::Issue,
                PodIpSans::Primary,
                seen,
            ))
        };
        assert!(
            !judge_issue(None, false).unwrap().1,
            "not seen yet is not gone"
        );
        assert_eq!(
            judge_issue(None, true).unwrap(),
            ("its pod is gone".into(), true)
        );
        assert_eq!(
            judge_issue(Some(&facts("u1", &[])), false).unwrap().0,
            "pod-ip:any"
        );
        assert!(judge_issue(Some(&facts("u1", &["10.0.0.7"])), false).is_none());
        assert!(
            judge_issue(Some(&facts("other-uid", &["10.0.0.7"])), false).is_some(),
            "a pod of the same name with another UID is not this volume's"
        );
        let mut deleting = facts("u1", &["10.0.0.7"]);
        deleting.deleting = true;
        assert_eq!(
            waits_on(judge(
                &ip_gate,
                Some(&deleting),
                "u1",
                Action::Renew,
                none,
                true
            ))
            .unwrap(),
            ("its pod is being deleted".into(), true)
        );
        // A renewal is not held back by gates, only by what the certificate names.
        let condition = readiness(&["pod-condition:Ready"]);
        let renewal_waits = |own_ips| {
            let unready = facts("u1", &[]);
            waits_on(judge(
                &condition,
                Some(&unready),
                "u1",
                Action::Renew,
                own_ips,
                true,
            ))
            .is_some()
        };
        assert!(!renewal_waits(none));
        assert!(
            waits_on(judge(&condition, None, "u1", Action::Renew, none, false)).is_none(),
            "a pod the watch does not show does not hold a renewal"
        );
        assert!(
            waits_on(judge(
                &condition,
                Some(&facts("mirror-uid", &[])),
                "u1",
                Action::Renew,
                none,
                true
            ))
            .is_none(),
            "nor does one under another UID"
        );
        assert!(
            renewal_waits(PodIpSans::All),
            "all pod addresses are needed"
        );
        match judge(
            &ip_gate,
            Some(&facts("u1", &["10.0.0.7", "fd00::7"])),
            "u1",
            Action::Issue,
            none,
            false,
        ) {
            Verdict::Issue(ips) => assert_eq!(ips.len(), 2),
            Verdict::Wait { on, .. } => panic!("waits on {on}"),
        }
    }
}
