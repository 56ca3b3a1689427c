//! The manager's behaviour as a table: each row is a test, named for what it shows, with its
//! setup (the `ManagerConfig` knobs and the issuer's script), the calls kubelet and the driver
//! make with what each must answer, and what the issuer must have seen by the end. Time is
//! tokio's paused clock, so backoff of minutes takes no real time.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::fixtures::{Knobs, Outcome, TestNode, publish_call};
use crate::attributes::key;
use crate::issuer::IssuerError;
use crate::volume::files;
use crate::volume::manager::{VolumeError, VolumeSnapshot};

/// How a call must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    /// `AlreadyExists` for kubelet: the volume is published at another target.
    Conflict,
    Io,
    Issuer,
}

impl Answer {
    fn fits(self, result: &Result<(), VolumeError>) -> bool {
        matches!(
            (self, result),
            (Answer::Ok, Ok(()))
                | (Answer::Conflict, Err(VolumeError::TargetConflict { .. }))
                | (Answer::Io, Err(VolumeError::Io { .. }))
                | (Answer::Issuer, Err(VolumeError::Issuer(_)))
        )
    }
}

/// What the manager holds for a volume, as its snapshot tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Nothing,
    /// No certificate yet.
    Issuing {
        failures: u32,
    },
    /// A certificate, and no failure since.
    Ready,
    /// A certificate, and failures since.
    Failing {
        failures: u32,
    },
}

impl Held {
    fn of(snapshot: Option<VolumeSnapshot>) -> Held {
        match snapshot {
            None => Held::Nothing,
            Some(snapshot) => match (snapshot.certificate.is_some(), snapshot.failures) {
                (false, failures) => Held::Issuing { failures },
                (true, 0) => Held::Ready,
                (true, failures) => Held::Failing { failures },
            },
        }
    }
}

/// One thing that happens to the node, or one check of what it holds. Targets are named by
/// their pod (`"a"` is `<dir>/pods/a/mount`).
#[derive(Debug)]
enum Step {
    /// kubelet's `NodePublishVolume` for a sample pod, with these attributes added, waited for.
    Publish {
        volume: &'static str,
        target: &'static str,
        attributes: Attributes,
        answer: Answer,
    },
    /// A publish left running under `label`.
    Start {
        label: &'static str,
        volume: &'static str,
        target: &'static str,
    },
    /// The publish `label` has not answered after a while.
    StillWaiting(&'static str),
    /// The publish `label` answers.
    Finish {
        label: &'static str,
        answer: Answer,
    },
    Unpublish {
        volume: &'static str,
        target: &'static str,
        answer: Answer,
    },
    /// A renewal, now.
    Renew(&'static str),
    /// Until the issuer has received this many orders in all.
    AwaitOrders(usize),
    /// One hanging order is signed.
    Release,
    Sleep(Duration),
    FailNextMount,
    FailNextUnmount,
    /// The tmpfs at the target is gone behind the driver's back.
    LoseMount(&'static str),
    /// A new manager on the same data root resumes what is recorded.
    Restart {
        resumed: usize,
        cleaned_up: usize,
    },
    Holds(&'static str, Held),
    /// Until the volume is held so (what happens in the background).
    AwaitHolds(&'static str, Held),
    /// The next attempt is due in about this long (give or take the backoff's jitter).
    RetryIn(&'static str, Duration),
    /// The next renewal is due no sooner than this.
    RenewsAfter(&'static str, Duration),
    /// The certificate, key and CA files are (or are not) in the target.
    Files(&'static str, bool),
    Mounted(&'static str, bool),
    TargetGone(&'static str),
    /// Remembers the target's certificate and key, for the next two.
    Remember(&'static str),
    FilesUnchanged(&'static str),
    /// Both the certificate and the key differ from the remembered ones.
    FilesReplaced(&'static str),
    /// The certificate differs from the remembered one, the key does not.
    KeyKept(&'static str),
    PendingKey(&'static str, bool),
    /// `NodeGetVolumeStats` finds the volume healthy.
    Healthy(&'static str, &'static str),
}

type Attributes = &'static [(&'static str, &'static str)];

fn publish(volume: &'static str, target: &'static str) -> Step {
    Step::Publish {
        volume,
        target,
        attributes: &[],
        answer: Answer::Ok,
    }
}

fn unpublish(volume: &'static str, target: &'static str) -> Step {
    Step::Unpublish {
        volume,
        target,
        answer: Answer::Ok,
    }
}

fn start(label: &'static str, volume: &'static str, target: &'static str) -> Step {
    Step::Start {
        label,
        volume,
        target,
    }
}

fn finish(label: &'static str) -> Step {
    Step::Finish {
        label,
        answer: Answer::Ok,
    }
}

impl Step {
    /// The call must end with `expected` instead of succeeding.
    fn answers(mut self, expected: Answer) -> Step {
        match &mut self {
            Step::Publish { answer, .. }
            | Step::Finish { answer, .. }
            | Step::Unpublish { answer, .. } => *answer = expected,
            other => panic!("{other:?} is not a call"),
        }
        self
    }

    /// The publish carries these attributes on top of the sample pod's.
    fn with(mut self, added: Attributes) -> Step {
        match &mut self {
            Step::Publish { attributes, .. } => *attributes = added,
            other => panic!("{other:?} is not a publish"),
        }
        self
    }
}

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn hours(hours: u64) -> Duration {
    Duration::from_secs(hours * 3600)
}

fn unavailable() -> Outcome {
    Outcome::Fail(IssuerError::unavailable("scripted: connection refused"))
}

/// What the issuer must have received by the end. Orders are counted from 1, as in "the second
/// order".
#[derive(Debug, Default)]
struct Expect {
    orders: usize,
    resuming: Option<Vec<bool>>,
    same_csr: Vec<(usize, usize)>,
    new_csr: Vec<(usize, usize)>,
    /// Seconds between one order and the next (`None`: not checked).
    gaps: Vec<Option<u64>>,
    abandoned: usize,
    withdrawn: Option<Vec<(&'static str, bool)>>,
}

impl Expect {
    fn orders(orders: usize) -> Expect {
        Expect {
            orders,
            ..Expect::default()
        }
    }

    fn resuming(self, resuming: &[bool]) -> Expect {
        Expect {
            resuming: Some(resuming.to_vec()),
            ..self
        }
    }

    /// The `later` order presented the CSR of the `earlier` one.
    fn same_csr(mut self, earlier: usize, later: usize) -> Expect {
        self.same_csr.push((earlier, later));
        self
    }

    fn new_csr(mut self, earlier: usize, later: usize) -> Expect {
        self.new_csr.push((earlier, later));
        self
    }

    fn gaps(self, gaps: &[Option<u64>]) -> Expect {
        Expect {
            gaps: gaps.to_vec(),
            ..self
        }
    }

    fn abandoned(self, abandoned: usize) -> Expect {
        Expect { abandoned, ..self }
    }

    /// The issuer was told these volumes went (and whether an issuance was cut short).
    fn withdrawn(self, withdrawn: &[(&'static str, bool)]) -> Expect {
        Expect {
            withdrawn: Some(withdrawn.to_vec()),
            ..self
        }
    }
}

struct Scenario {
    knobs: Knobs,
    script: Vec<Outcome>,
    steps: Vec<Step>,
    expect: Expect,
}

/// No step may take longer than this on the paused clock: a scenario that would hang fails.
const STEP_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Default)]
struct Run {
    running:
        std::collections::HashMap<&'static str, tokio::task::JoinHandle<Result<(), VolumeError>>>,
    remembered: std::collections::HashMap<&'static str, (Vec<u8>, Vec<u8>)>,
}

/// The target's certificate and key, if both are there.
fn certificate_and_key(target: &Path) -> Option<(Vec<u8>, Vec<u8>)> {
    Some((
        files::read_current(target, "tls.crt").ok()?,
        files::read_current(target, "tls.key").ok()?,
    ))
}

async fn run(scenario: Scenario) {
    let mut node = TestNode::new(scenario.knobs, scenario.script);
    let mut run = Run::default();
    for (number, step) in scenario.steps.into_iter().enumerate() {
        let described = format!("step {} ({step:?})", number + 1);
        tokio::time::timeout(STEP_LIMIT, perform(&mut node, &mut run, step, &described))
            .await
            .unwrap_or_else(|_| panic!("{described} never finished"));
    }
    check(&node, &scenario.expect);
}

async fn perform(node: &mut TestNode, run: &mut Run, step: Step, described: &str) {
    match step {
        Step::Publish {
            volume,
            target,
            attributes,
            answer,
        } => {
            let call = attributes
                .iter()
                .fold(
                    publish_call(volume, &node.target(target)),
                    |call, (name, value)| call.attribute(name, value),
                )
                .build();
            let result = node.manager.publish(call).await;
            assert!(answer.fits(&result), "{described}: answered {result:?}");
        }
        Step::Start {
            label,
            volume,
            target,
        } => {
            let call = publish_call(volume, &node.target(target)).build();
            let manager = node.manager.clone();
            let task = tokio::spawn(async move { manager.publish(call).await });
            run.running.insert(label, task);
        }
        Step::StillWaiting(label) => {
            tokio::time::sleep(secs(1)).await;
            assert!(
                !run.running[label].is_finished(),
                "{described}: it answered"
            );
        }
        Step::Finish { label, answer } => {
            let task = run.running.remove(label).expect("a started publish");
            let result = task.await.expect("the publish did not panic");
            assert!(answer.fits(&result), "{described}: answered {result:?}");
        }
        Step::Unpublish {
            volume,
            target,
            answer,
        } => {
            let result = node.manager.unpublish(volume, &node.target(target)).await;
            assert!(answer.fits(&result), "{described}: answered {result:?}");
        }
        Step::Renew(volume) => node.manager.renew(volume).await,
        Step::AwaitOrders(count) => node.issuer.wait_for_orders(count).await,
        Step::Release => node.issuer.release(),
        Step::Sleep(duration) => tokio::time::sleep(duration).await,
        Step::FailNextMount => node
            .mounter
            .fail_next_mount(io::ErrorKind::PermissionDenied),
        Step::FailNextUnmount => node.mounter.fail_next_unmount(io::ErrorKind::ResourceBusy),
        Step::LoseMount(target) => node.mounter.lose(&node.target(target)),
        Step::Restart {
            resumed,
            cleaned_up,
        } => {
            let summary = node.restart();
            assert_eq!(
                (summary.resumed, summary.cleaned_up, summary.failed),
                (resumed, cleaned_up, 0),
                "{described}: resumed, cleaned up, failed"
            );
        }
        Step::Holds(volume, held) => {
            let snapshot = node.manager.snapshot(volume).await;
            assert_eq!(
                Held::of(snapshot.clone()),
                held,
                "{described}: {snapshot:?}"
            );
        }
        Step::AwaitHolds(volume, held) => {
            while Held::of(node.manager.snapshot(volume).await) != held {
                tokio::time::sleep(secs(1)).await;
            }
        }
        Step::RetryIn(volume, expected) => {
            let left = time_to_next_attempt(node, volume).await;
            let (low, high) = (expected.mul_f64(0.9), expected.mul_f64(1.1) + secs(1));
            assert!(
                low <= left && left <= high,
                "{described}: next attempt in {left:?}"
            );
        }
        Step::RenewsAfter(volume, at_least) => {
            let left = time_to_next_attempt(node, volume).await;
            assert!(left >= at_least, "{described}: next renewal in {left:?}");
        }
        Step::Files(target, present) => {
            let target = node.target(target);
            for name in ["tls.crt", "tls.key", "ca.crt"] {
                let found = files::read_current(&target, name).is_ok()
                    && std::fs::metadata(target.join(name)).is_ok();
                assert_eq!(found, present, "{described}: {name}");
            }
        }
        Step::Mounted(target, mounted) => {
            let found = node.mounter.is_mounted_at(&node.target(target));
            assert_eq!(found, mounted, "{described}");
        }
        Step::TargetGone(target) => {
            let target = node.target(target);
            assert!(!target.exists(), "{described}: {} exists", target.display());
        }
        Step::Remember(target) => {
            let files = certificate_and_key(&node.target(target)).expect("files to remember");
            run.remembered.insert(target, files);
        }
        Step::FilesUnchanged(target) => {
            let files = certificate_and_key(&node.target(target));
            assert!(
                files.as_ref() == run.remembered.get(target),
                "{described}: the files changed or went"
            );
        }
        Step::FilesReplaced(target) => {
            let (certificate, key) = certificate_and_key(&node.target(target)).expect("files");
            let (old_certificate, old_key) = &run.remembered[target];
            assert!(
                certificate != *old_certificate && key != *old_key,
                "{described}: not both replaced"
            );
        }
        Step::KeyKept(target) => {
            let (certificate, key) = certificate_and_key(&node.target(target)).expect("files");
            let (old_certificate, old_key) = &run.remembered[target];
            assert!(
                certificate != *old_certificate && key == *old_key,
                "{described}: not the certificate alone replaced"
            );
        }
        Step::PendingKey(volume, pending) => {
            assert_eq!(node.manager.has_pending_key(volume), pending, "{described}");
        }
        Step::Healthy(volume, target) => {
            let condition = node.manager.condition(volume, &node.target(target)).await;
            assert!(matches!(condition, Ok(None)), "{described}: {condition:?}");
        }
    }
}

async fn time_to_next_attempt(node: &TestNode, volume: &str) -> Duration {
    let next = node
        .manager
        .snapshot(volume)
        .await
        .and_then(|snapshot| snapshot.next_renewal)
        .expect("a next attempt is scheduled");
    next.duration_since(SystemTime::now()).unwrap_or_default()
}

fn check(node: &TestNode, expect: &Expect) {
    let orders = node.issuer.orders();
    let seen: Vec<_> = orders
        .iter()
        .map(|order| (order.volume_id.as_str(), order.resuming))
        .collect();
    assert_eq!(orders.len(), expect.orders, "orders received: {seen:?}");
    if let Some(resuming) = &expect.resuming {
        let actual: Vec<bool> = orders.iter().map(|order| order.resuming).collect();
        assert_eq!(&actual, resuming, "which orders resumed a pending request");
    }
    let csr = |number: usize| &orders[number - 1].csr_pem;
    for &(earlier, later) in &expect.same_csr {
        assert_eq!(csr(earlier), csr(later), "orders {earlier} and {later}");
    }
    for &(earlier, later) in &expect.new_csr {
        assert_ne!(csr(earlier), csr(later), "orders {earlier} and {later}");
    }
    for (index, gap) in expect.gaps.iter().enumerate() {
        let Some(expected) = gap else { continue };
        let actual = orders[index + 1].at - orders[index].at;
        let expected = secs(*expected);
        // The backoff's jitter is ±10%; timers have millisecond resolution.
        let slack = Duration::from_millis(50);
        assert!(
            expected.mul_f64(0.9) <= actual + slack && actual <= expected.mul_f64(1.1) + slack,
            "between orders {} and {}: {actual:?}, not about {expected:?}",
            index + 1,
            index + 2
        );
    }
    assert_eq!(
        node.issuer.abandoned(),
        expect.abandoned,
        "abandoned orders"
    );
    if let Some(withdrawn) = &expect.withdrawn {
        let actual = node.issuer.withdrawn();
        let actual: Vec<(&str, bool)> =
            actual.iter().map(|(id, cut)| (id.as_str(), *cut)).collect();
        assert_eq!(&actual, withdrawn, "volumes the issuer was told are gone");
    }
}

/// One test per row.
macro_rules! scenarios {
    ($($(#[$meta:meta])* $name:ident => $row:expr;)*) => {
        $(
            $(#[$meta])*
            #[tokio::test(start_paused = true)]
            async fn $name() {
                run($row).await;
            }
        )*
    };
}

// The rows, by group (after the macro, which they use).
mod publish;
mod renewal;
mod restarts;
