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

/// A second publish of `csi-a`, at `target`, while the first (at `a`) waits on the issuer: it
/// waits for the first to land, then answers `answer` without another issuance.
fn publish_behind_one_in_flight(target: &'static str, answer: Answer) -> Scenario {
    let mut steps = vec![
        start("first", "csi-a", "a"),
        Step::AwaitOrders(1),
        start("second", "csi-a", target),
        Step::StillWaiting("second"),
        Step::Release,
        finish("first"),
        finish("second").answers(answer),
        Step::Files("a", true),
    ];
    if target != "a" {
        steps.push(Step::TargetGone(target));
    }
    Scenario {
        knobs: Knobs::default(),
        script: vec![Outcome::Hang],
        steps,
        expect: Expect::orders(1),
    }
}

/// A renewal the issuer answers with `error`: the files in place stay, as they are still valid.
fn renewal_failing_with(error: IssuerError) -> Scenario {
    Scenario {
        knobs: Knobs::default(),
        script: vec![Outcome::Sign, Outcome::Fail(error)],
        steps: vec![
            publish("csi-a", "a"),
            Step::Remember("a"),
            Step::Renew("csi-a"),
            Step::Holds("csi-a", Held::Failing { failures: 1 }),
            Step::FilesUnchanged("a"),
            Step::Mounted("a", true),
            Step::Healthy("csi-a", "a"),
        ],
        expect: Expect::orders(2),
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

scenarios! {
    // Publish conflicts.

    a_volume_published_at_one_target_conflicts_at_another => Scenario {
        knobs: Knobs::default(),
        script: vec![],
        steps: vec![
            publish("csi-a", "a"),
            publish("csi-a", "b").answers(Answer::Conflict),
            Step::Files("a", true),
            Step::TargetGone("b"),
            Step::Holds("csi-a", Held::Ready),
        ],
        expect: Expect::orders(1),
    };

    republishing_at_the_same_target_issues_nothing => Scenario {
        knobs: Knobs::default(),
        script: vec![],
        steps: vec![
            publish("csi-a", "a"),
            Step::Remember("a"),
            publish("csi-a", "a"),
            Step::FilesUnchanged("a"),
            Step::Holds("csi-a", Held::Ready),
        ],
        expect: Expect::orders(1),
    };

    a_publish_behind_one_in_flight_waits_for_it_and_issues_nothing_more =>
        publish_behind_one_in_flight("a", Answer::Ok);

    a_publish_at_another_target_behind_one_in_flight_conflicts_once_it_lands =>
        publish_behind_one_in_flight("b", Answer::Conflict);

    a_failed_mount_fails_the_publish_and_leaves_nothing_behind => Scenario {
        knobs: Knobs::default(),
        script: vec![],
        steps: vec![
            Step::FailNextMount,
            publish("csi-a", "a").answers(Answer::Io),
            Step::Holds("csi-a", Held::Nothing),
            Step::TargetGone("a"),
            // kubelet's retry.
            publish("csi-a", "a"),
            Step::Files("a", true),
        ],
        expect: Expect::orders(1),
    };

    a_failed_unmount_keeps_the_volume_for_kubelets_retry => Scenario {
        knobs: Knobs::default(),
        script: vec![],
        steps: vec![
            publish("csi-a", "a"),
            Step::FailNextUnmount,
            unpublish("csi-a", "a").answers(Answer::Io),
            Step::Holds("csi-a", Held::Ready),
            Step::Mounted("a", true),
            unpublish("csi-a", "a"),
            Step::Holds("csi-a", Held::Nothing),
            Step::Mounted("a", false),
            Step::TargetGone("a"),
        ],
        expect: Expect::orders(1).withdrawn(&[("csi-a", false)]),
    };

    a_first_publish_the_issuer_denies_leaves_nothing_behind => Scenario {
        knobs: Knobs::default(),
        script: vec![Outcome::Fail(IssuerError::denied("scripted: denied"))],
        steps: vec![
            publish("csi-a", "a").answers(Answer::Issuer),
            Step::Holds("csi-a", Held::Nothing),
            Step::Mounted("a", false),
            Step::TargetGone("a"),
            // Nothing was recorded for it either.
            Step::Restart { resumed: 0, cleaned_up: 0 },
        ],
        expect: Expect::orders(1),
    };

    a_first_publish_that_times_out_keeps_its_key_for_kubelets_retry => Scenario {
        knobs: Knobs::default(),
        script: vec![Outcome::TimeOut],
        steps: vec![
            publish("csi-a", "a").answers(Answer::Issuer),
            Step::PendingKey("csi-a", true),
            Step::TargetGone("a"),
            publish("csi-a", "a"),
            Step::PendingKey("csi-a", false),
            Step::Files("a", true),
        ],
        expect: Expect::orders(2).resuming(&[false, true]).same_csr(1, 2),
    };

    // --continue-on-not-ready.

    continue_on_not_ready_answers_once_mounted_and_writes_the_files_when_signed => Scenario {
        knobs: Knobs::default().continue_on_not_ready(),
        script: vec![Outcome::Hang],
        steps: vec![
            publish("csi-a", "a"),
            Step::Mounted("a", true),
            Step::Files("a", false),
            Step::AwaitOrders(1),
            Step::Release,
            Step::AwaitHolds("csi-a", Held::Ready),
            Step::Files("a", true),
        ],
        expect: Expect::orders(1),
    };

    continue_on_not_ready_retries_a_failing_issuance_on_backoff_until_signed => Scenario {
        knobs: Knobs::default().continue_on_not_ready().backoff(10, 80).renewal_loop(),
        script: vec![unavailable(), unavailable()],
        steps: vec![
            publish("csi-a", "a"),
            Step::AwaitOrders(1),
            Step::Holds("csi-a", Held::Issuing { failures: 1 }),
            Step::RetryIn("csi-a", secs(10)),
            Step::Files("a", false),
            Step::AwaitOrders(2),
            Step::Holds("csi-a", Held::Issuing { failures: 2 }),
            Step::RetryIn("csi-a", secs(20)),
            Step::AwaitHolds("csi-a", Held::Ready),
            Step::Files("a", true),
        ],
        // The issuer could not be reached: each retry presents the same request again.
        expect: Expect::orders(3)
            .resuming(&[false, true, true])
            .same_csr(1, 2)
            .same_csr(2, 3)
            .gaps(&[Some(10), Some(20)]),
    };

    an_unpublish_ends_a_background_issuance_and_nothing_retries_it => Scenario {
        knobs: Knobs::default().continue_on_not_ready().backoff(10, 80).renewal_loop(),
        script: vec![Outcome::Hang],
        steps: vec![
            publish("csi-a", "a"),
            Step::AwaitOrders(1),
            unpublish("csi-a", "a"),
            Step::Holds("csi-a", Held::Nothing),
            Step::Mounted("a", false),
            Step::TargetGone("a"),
            Step::Sleep(secs(600)),
        ],
        expect: Expect::orders(1).abandoned(1).withdrawn(&[("csi-a", true)]),
    };

    an_unpublish_between_background_retries_stops_them => Scenario {
        knobs: Knobs::default().continue_on_not_ready().backoff(10, 80).renewal_loop(),
        script: vec![unavailable()],
        steps: vec![
            publish("csi-a", "a"),
            Step::AwaitOrders(1),
            Step::Holds("csi-a", Held::Issuing { failures: 1 }),
            unpublish("csi-a", "a"),
            Step::PendingKey("csi-a", false),
            Step::Sleep(secs(600)),
            Step::Holds("csi-a", Held::Nothing),
        ],
        expect: Expect::orders(1).withdrawn(&[("csi-a", false)]),
    };

    // Restarts: a new manager on the same data root.

    after_a_restart_a_volume_with_its_certificate_is_resumed_without_issuing => Scenario {
        knobs: Knobs::default().renewal_loop(),
        script: vec![],
        steps: vec![
            publish("csi-a", "a"),
            Step::Remember("a"),
            Step::Restart { resumed: 1, cleaned_up: 0 },
            Step::Holds("csi-a", Held::Ready),
            // Renewed on the certificate's schedule (720h, renewed 240h before the end).
            Step::RenewsAfter("csi-a", hours(470)),
            // kubelet's republish after the restart.
            publish("csi-a", "a"),
            Step::FilesUnchanged("a"),
        ],
        expect: Expect::orders(1),
    };

    after_a_restart_a_failed_first_issuance_is_retried_at_once_with_a_new_key => Scenario {
        // The old manager would only have retried in ten minutes.
        knobs: Knobs::default().continue_on_not_ready().backoff(600, 600).renewal_loop(),
        script: vec![Outcome::TimeOut],
        steps: vec![
            publish("csi-a", "a"),
            Step::AwaitOrders(1),
            Step::Holds("csi-a", Held::Issuing { failures: 1 }),
            Step::PendingKey("csi-a", true),
            Step::Restart { resumed: 1, cleaned_up: 0 },
            Step::AwaitHolds("csi-a", Held::Ready),
            Step::Files("a", true),
        ],
        // The pending key lived in memory only: the restarted driver makes a new one.
        expect: Expect::orders(2)
            .resuming(&[false, false])
            .new_csr(1, 2)
            .gaps(&[Some(0)]),
    };

    after_a_restart_a_failing_renewal_keeps_its_files_and_its_certificates_schedule => Scenario {
        knobs: Knobs::default().backoff(10, 80).renewal_loop(),
        script: vec![Outcome::Sign, unavailable()],
        steps: vec![
            publish("csi-a", "a"),
            Step::Remember("a"),
            Step::Renew("csi-a"),
            Step::Holds("csi-a", Held::Failing { failures: 1 }),
            Step::Restart { resumed: 1, cleaned_up: 0 },
            // The failures are not recorded: the certificate on disk sets the next renewal.
            Step::Holds("csi-a", Held::Ready),
            Step::RenewsAfter("csi-a", hours(470)),
            Step::FilesUnchanged("a"),
        ],
        expect: Expect::orders(2),
    };

    after_a_restart_a_volume_whose_mount_went_is_cleaned_up_and_published_anew => Scenario {
        knobs: Knobs::default(),
        script: vec![],
        steps: vec![
            publish("csi-a", "a"),
            Step::LoseMount("a"),
            Step::Restart { resumed: 0, cleaned_up: 1 },
            Step::Holds("csi-a", Held::Nothing),
            Step::TargetGone("a"),
            publish("csi-a", "a"),
            Step::Files("a", true),
        ],
        expect: Expect::orders(2),
    };

    // Backoff.

    repeated_failures_are_retried_with_doubling_delays_up_to_the_cap => Scenario {
        knobs: Knobs::default().continue_on_not_ready().backoff(10, 40).renewal_loop(),
        script: (0..5)
            .map(|_| Outcome::Fail(IssuerError::failed("scripted: failed")))
            .collect(),
        steps: vec![
            publish("csi-a", "a"),
            Step::AwaitOrders(6),
            Step::AwaitHolds("csi-a", Held::Ready),
        ],
        // A failed request is final: every retry makes a new one.
        expect: Expect::orders(6)
            .resuming(&[false; 6])
            .new_csr(1, 2)
            .gaps(&[Some(10), Some(20), Some(40), Some(40), Some(40)]),
    };

    a_success_resets_the_failure_count_so_the_next_failure_backs_off_from_the_start => Scenario {
        knobs: Knobs::default().continue_on_not_ready().backoff(10, 80).renewal_loop(),
        script: vec![unavailable(), unavailable(), Outcome::Sign, unavailable(), Outcome::Sign],
        steps: vec![
            publish("csi-a", "a"),
            Step::AwaitOrders(3),
            Step::AwaitHolds("csi-a", Held::Ready),
            Step::Renew("csi-a"),
            Step::Holds("csi-a", Held::Failing { failures: 1 }),
            Step::RetryIn("csi-a", secs(10)),
            Step::AwaitOrders(5),
            Step::AwaitHolds("csi-a", Held::Ready),
        ],
        expect: Expect::orders(5).gaps(&[Some(10), Some(20), None, Some(10)]),
    };

    // Renewal.

    the_renewal_loop_renews_a_certificate_at_two_thirds_of_its_life => Scenario {
        knobs: Knobs::default().renewal_loop(),
        script: vec![],
        steps: vec![
            publish("csi-a", "a").with(&[(key::DURATION, "1h")]),
            Step::Remember("a"),
            Step::RenewsAfter("csi-a", secs(2300)),
            Step::AwaitOrders(2),
            Step::AwaitHolds("csi-a", Held::Ready),
            Step::FilesReplaced("a"),
        ],
        // 40 minutes, less up to 1% of the lifetime of jitter.
        expect: Expect::orders(2).new_csr(1, 2).gaps(&[Some(2390)]),
    };

    a_renewal_with_reuse_private_key_replaces_only_the_certificate => Scenario {
        knobs: Knobs::default(),
        script: vec![],
        steps: vec![
            publish("csi-a", "a").with(&[(key::REUSE_PRIVATE_KEY, "true")]),
            Step::Remember("a"),
            Step::Renew("csi-a"),
            Step::Holds("csi-a", Held::Ready),
            Step::KeyKept("a"),
        ],
        expect: Expect::orders(2),
    };

    // An issuer failure never takes a valid certificate away.

    a_renewal_the_issuer_denies_keeps_the_current_files =>
        renewal_failing_with(IssuerError::denied("scripted: denied"));

    a_renewal_the_issuer_fails_keeps_the_current_files =>
        renewal_failing_with(IssuerError::failed("scripted: failed"));

    a_renewal_the_issuer_rejects_keeps_the_current_files =>
        renewal_failing_with(IssuerError::rejected("scripted: bad CSR"));

    a_renewal_without_a_reachable_issuer_keeps_the_current_files =>
        renewal_failing_with(IssuerError::unavailable("scripted: connection refused"));

    a_renewal_with_a_misconfigured_issuer_keeps_the_current_files =>
        renewal_failing_with(IssuerError::misconfigured("scripted: CA unreadable"));

    a_renewal_that_times_out_keeps_the_files_and_retries_with_the_same_key => Scenario {
        knobs: Knobs::default().backoff(10, 80).renewal_loop(),
        script: vec![Outcome::Sign, Outcome::TimeOut, Outcome::Sign],
        steps: vec![
            publish("csi-a", "a"),
            Step::Remember("a"),
            Step::Renew("csi-a"),
            Step::Holds("csi-a", Held::Failing { failures: 1 }),
            Step::FilesUnchanged("a"),
            Step::AwaitOrders(3),
            Step::AwaitHolds("csi-a", Held::Ready),
            Step::FilesReplaced("a"),
        ],
        expect: Expect::orders(3)
            .resuming(&[false, false, true])
            .same_csr(2, 3)
            .gaps(&[None, Some(10)]),
    };
}
