//! Rows: publish conflicts and failures, and --continue-on-not-ready.

use super::*;

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
}
