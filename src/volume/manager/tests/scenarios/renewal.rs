//! Rows: backoff, renewal, and issuer failures that never take a valid certificate away.

use super::*;

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

scenarios! {
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
