//! The PrometheusRule (`metrics.prometheusRule`): rendered, checked by `promtool check rules`,
//! and unit-tested by `promtool test rules` with the files in `tests/alerts/`, where each alert
//! fires and where it must not. A mutation test breaks each alert's expression in turn and
//! expects those tests to fail, so a test that cannot fail is caught.
//!
//! promtool comes from `$PROMTOOL`, else `promtool` on PATH, else `deploy/tools/install-promtool.sh`
//! installs Debian's `prometheus` package (as root), so a plain `cargo test` works on a fresh machine.

use super::*;

use std::collections::{BTreeMap, BTreeSet};
use tokio::time::Instant;

/// The rule file name the tests in `tests/alerts/` load (their `rule_files`).
const RULE_FILE: &str = "cert-manager-csi-driver.rules.yaml";
const ALERT_TESTS: &str = "tests/alerts";

pub(crate) fn promtool() -> &'static Path {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL.get_or_init(|| {
        let found = std::env::var_os("PROMTOOL")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| find_on_path("promtool"));
        // Not skipped when missing: the alerts would then go untested without anyone noticing.
        // deploy/tools/install-promtool.sh installs it (as root, with apt-get), as helm is fetched.
        found.unwrap_or_else(|| {
            let script = repo().join("deploy/tools/install-promtool.sh");
            let output = Command::new("bash")
                .arg(&script)
                .output()
                .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
            assert!(
                output.status.success(),
                "promtool not found ($PROMTOOL or PATH) and {} could not install it: {}",
                script.display(),
                String::from_utf8_lossy(&output.stderr)
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            PathBuf::from(
                stdout
                    .lines()
                    .last()
                    .expect("the script prints the path")
                    .trim(),
            )
        })
    })
}

/// Runs promtool in `dir`; returns whether it succeeded and everything it printed.
pub(crate) fn run_promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", promtool().display()));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// The rendered PrometheusRule's `spec.groups`.
fn rule_groups(flags: &[&str]) -> Value {
    let mut all = vec!["--set", "metrics.prometheusRule.enabled=true"];
    all.extend_from_slice(flags);
    render(&all).one("PrometheusRule")["spec"]["groups"].clone()
}

/// Every alerting rule of `groups`, mutably, by alert name.
fn alerts_mut(groups: &mut Value) -> Vec<&mut Value> {
    groups
        .as_array_mut()
        .expect("groups")
        .iter_mut()
        .flat_map(|group| group["rules"].as_array_mut().expect("rules").iter_mut())
        .filter(|rule| rule.get("alert").is_some())
        .collect()
}

fn alert_names(groups: &Value) -> Vec<String> {
    let mut groups = groups.clone();
    alerts_mut(&mut groups)
        .iter()
        .map(|rule| rule["alert"].as_str().unwrap().to_owned())
        .collect()
}

/// A Prometheus rule file: the PrometheusRule's `spec` is one already. JSON is YAML.
pub(crate) fn write_rule_file(path: &Path, groups: &Value) {
    std::fs::write(
        path,
        serde_json::to_string_pretty(&json!({ "groups": groups })).unwrap(),
    )
    .unwrap();
}

fn alert_test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(ALERT_TESTS))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no tests in {ALERT_TESTS}");
    files
}

/// `promtool test rules` on every file in `tests/alerts/`, against `groups` written as the rule
/// file they load. Descriptions are left out: promtool compares annotations whole, and the
/// runbook text would have to be repeated in every expected alert; summaries stay, and
/// `descriptions_name_only_labels_their_alert_carries` checks what descriptions refer to.
/// With `only_alert`, only the files that test that alert run: promtool checks an alert only
/// where a test names it, so the other files cannot fail on it.
fn promtool_test_rules(groups: &Value, only_alert: Option<&str>) -> (bool, String) {
    let mut groups = groups.clone();
    for rule in alerts_mut(&mut groups) {
        if let Some(annotations) = rule["annotations"].as_object_mut() {
            annotations.remove("description");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    write_rule_file(&dir.path().join(RULE_FILE), &groups);
    let mut names = Vec::new();
    for file in alert_test_files() {
        if let Some(alert) = only_alert {
            let text = std::fs::read_to_string(&file).unwrap();
            if !text.contains(&format!("alertname: {alert}\n")) {
                continue;
            }
        }
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        std::fs::copy(&file, dir.path().join(&name)).unwrap();
        names.push(name);
    }
    assert!(
        !names.is_empty(),
        "no test in {ALERT_TESTS}/ names {only_alert:?}"
    );
    let mut args = vec!["test", "rules"];
    args.extend(names.iter().map(String::as_str));
    run_promtool(dir.path(), &args)
}

#[test]
fn prometheus_rule_exists_only_when_enabled_with_metrics() {
    assert!(render(&[]).all("PrometheusRule").is_empty());
    assert!(
        render(&[
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.enabled=false",
        ])
        .all("PrometheusRule")
        .is_empty()
    );
    let rendered = render(&["--set", "metrics.prometheusRule.enabled=true"]);
    let rule = rendered.one("PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], NAMESPACE);
    // The same instance label convention as the PodMonitor's.
    assert_eq!(rule["metadata"]["labels"]["prometheus"], "default");

    let rendered = render(&[
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.namespace=monitoring",
        "--set",
        "metrics.prometheusRule.prometheusInstance=main",
        "--set",
        "metrics.prometheusRule.labels.release=kube-prometheus-stack",
        "--set",
        "metrics.prometheusRule.annotations.owner=platform",
    ]);
    let metadata = &rendered.one("PrometheusRule")["metadata"];
    assert_eq!(metadata["namespace"], "monitoring");
    assert_eq!(metadata["labels"]["prometheus"], "main");
    assert_eq!(metadata["labels"]["release"], "kube-prometheus-stack");
    assert_eq!(metadata["annotations"], json!({ "owner": "platform" }));
}

#[test]
fn rendered_rules_pass_promtool_check() {
    for flags in [
        &[][..],
        &["--set", "metrics.prometheusRule.job=kubernetes-pods"][..],
        &["-f", UPSTREAM_VALUES][..],
    ] {
        let groups = rule_groups(flags);
        let dir = tempfile::tempdir().unwrap();
        write_rule_file(&dir.path().join(RULE_FILE), &groups);
        let (ok, printed) = run_promtool(dir.path(), &["check", "rules", RULE_FILE]);
        assert!(ok, "promtool check rules ({flags:?}):\n{printed}");
    }
}

#[test]
fn alert_unit_tests_pass() {
    let groups = rule_groups(&[]);
    let started = Instant::now();
    let (ok, printed) = promtool_test_rules(&groups, None);
    assert!(ok, "promtool test rules on {ALERT_TESTS}/:\n{printed}");
    eprintln!("promtool test rules: {:?}", started.elapsed());
}

/// Breaks each alert's expression in turn, once so that it never fires and once so that it
/// always fires, and expects the unit tests to fail each time: every alert has a test where it
/// must fire and one where it must not.
#[test]
fn alert_unit_tests_fail_when_an_alert_is_broken() {
    let groups = rule_groups(&[]);
    let started = Instant::now();
    let mut mutants = Vec::new();
    for alert in alert_names(&groups) {
        for (how, expression) in [
            ("never fires", "vector(1) == 0"),
            ("always fires", "vector(1)"),
        ] {
            let mut mutant = groups.clone();
            for rule in alerts_mut(&mut mutant) {
                if rule["alert"] == alert.as_str() {
                    rule["expr"] = json!(expression);
                }
            }
            mutants.push((
                alert.clone(),
                format!("{alert} {how} ({expression})"),
                mutant,
            ));
        }
    }
    // promtool is single-threaded; two at a time keeps the test to a few seconds.
    let survivors: Vec<String> = std::thread::scope(|scope| {
        let (first, second) = mutants.split_at(mutants.len() / 2);
        let handles: Vec<_> = [first, second]
            .into_iter()
            .map(|half| {
                scope.spawn(move || {
                    half.iter()
                        .filter(|(alert, _, mutant)| promtool_test_rules(mutant, Some(alert)).0)
                        .map(|(_, mutation, _)| mutation.clone())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect()
    });
    assert!(
        survivors.is_empty(),
        "the tests in {ALERT_TESTS}/ still pass with these alerts broken: {survivors:#?}"
    );
    eprintln!(
        "{} mutants, all caught, in {:?}",
        mutants.len(),
        started.elapsed()
    );
}

/// The labels an alert carries when it fires, from the expected alerts in `tests/alerts/`.
fn expected_labels_by_alert() -> BTreeMap<String, Vec<BTreeSet<String>>> {
    let mut by_alert: BTreeMap<String, Vec<BTreeSet<String>>> = BTreeMap::new();
    for file in alert_test_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let tests: Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for test in tests["tests"].as_array().expect("tests") {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                for expected in case["exp_alerts"].as_array().into_iter().flatten() {
                    let labels = expected["exp_labels"]
                        .as_object()
                        .expect("exp_labels")
                        .keys()
                        .cloned()
                        .collect();
                    by_alert
                        .entry(case["alertname"].as_str().unwrap().to_owned())
                        .or_default()
                        .push(labels);
                }
            }
        }
    }
    by_alert
}

/// `$labels.<name>` references in a template.
fn label_references(template: &str) -> BTreeSet<String> {
    template
        .split("$labels.")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// An annotation naming a label the alert does not carry renders as "<no value>" for whoever is
/// paged; promtool checks only that templates parse.
#[test]
fn descriptions_name_only_labels_their_alert_carries() {
    let mut groups = rule_groups(&[]);
    let expected = expected_labels_by_alert();
    for rule in alerts_mut(&mut groups) {
        let alert = rule["alert"].as_str().unwrap();
        let firings = expected
            .get(alert)
            .unwrap_or_else(|| panic!("{ALERT_TESTS}/ never expects {alert} to fire"));
        for (annotation, template) in rule["annotations"].as_object().unwrap() {
            for label in label_references(template.as_str().unwrap()) {
                for labels in firings {
                    assert!(
                        labels.contains(&label),
                        "{alert}'s {annotation} names $labels.{label}, which it does not carry \
                         when it fires (it carries {labels:?})"
                    );
                }
            }
        }
        let description = rule["annotations"]["description"].as_str().unwrap();
        assert!(
            description.contains("/cert-manager-csi-driver status"),
            "{alert}'s description does not name the status command"
        );
    }
}

#[test]
fn thresholds_and_job_follow_the_values() {
    let groups = rule_groups(&[
        "--set",
        "metrics.prometheusRule.job=kubernetes-pods",
        "--set",
        "metrics.prometheusRule.certificateExpiry.renewalGracePeriod=5m",
        "--set",
        "metrics.prometheusRule.certificateExpiry.warningWithin=7d",
        "--set",
        "metrics.prometheusRule.certificateExpiry.criticalWithin=90s",
        "--set",
        "metrics.prometheusRule.renewalFailing.for=1h",
        "--set",
        "metrics.prometheusRule.publishLatency.threshold=2m",
        "--set",
        "metrics.prometheusRule.publishLatency.window=30m",
    ]);
    let mut groups = groups;
    let alerts = alerts_mut(&mut groups);
    let rule = |name: &str| {
        alerts
            .iter()
            .find(|rule| rule["alert"] == name)
            .unwrap_or_else(|| panic!("no alert {name}"))
    };
    let expr = |name: &str| rule(name)["expr"].as_str().unwrap().to_owned();
    let warning = expr("CertManagerCSICertificateNotRenewed");
    assert!(warning.contains("- time() < 604800"), "{warning}");
    assert!(warning.contains("> time() - 300"), "{warning}");
    assert!(
        expr("CertManagerCSICertificateAboutToExpire").contains("- time() < 90"),
        "{}",
        expr("CertManagerCSICertificateAboutToExpire")
    );
    assert_eq!(rule("CertManagerCSIRenewalFailing")["for"], "1h");
    let latency = expr("CertManagerCSIPublishSlow");
    assert!(latency.contains("[30m]"), "{latency}");
    assert!(latency.trim_end().ends_with("> 120"), "{latency}");
    for alert in &alerts {
        let expr = alert["expr"].as_str().unwrap();
        if expr.contains("certmanager_csi_") || expr.contains("up{") {
            assert!(
                expr.contains("job=\"kubernetes-pods\""),
                "{}: {expr}",
                alert["alert"]
            );
            assert!(!expr.contains("job=\"cert-manager-csi-driver\""), "{expr}");
        }
    }
}

#[test]
fn malformed_thresholds_are_rejected() {
    for (value, key) in [
        (
            "metrics.prometheusRule.certificateExpiry.warningWithin=3 days",
            "warningWithin",
        ),
        (
            "metrics.prometheusRule.publishLatency.threshold=500ms",
            "threshold",
        ),
        ("metrics.prometheusRule.driverDown.for=15", "for"),
        ("metrics.prometheusRule.driverDwn.for=15m", "driverDwn"),
    ] {
        let error = render_error(&[
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            value,
        ]);
        assert!(error.contains(key), "{value}: {error}");
    }
    // One failed call stays in the window: a window as long as `for` would fire on it alone.
    let error = render_error(&[
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.prometheusRule.publishFailing.window=15m",
    ]);
    assert!(error.contains("publishFailing.window"), "{error}");
}
