//! Rows: restarts, a new manager on the same data root.

use super::*;

scenarios! {
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
}
