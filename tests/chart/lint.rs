//! `helm lint` with default, upstream-style and edge-case values, and values it must reject.

use super::*;

fn lint(flags: &[&str]) {
    let mut args = vec!["lint", "--strict", CHART];
    args.extend_from_slice(flags);
    let output = run_helm(&args);
    assert!(
        output.status.success(),
        "helm {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn lint_passes_with_default_values() {
    lint(&[]);
}

#[test]
fn lint_passes_with_upstream_style_values() {
    lint(&["-f", UPSTREAM_VALUES]);
}

#[test]
fn lint_passes_with_token_requests_and_without_metrics() {
    lint(&[
        "--set",
        "app.driver.useTokenRequest=true",
        "--set",
        "metrics.enabled=false",
    ]);
}

#[test]
fn lint_passes_with_alerts_and_dashboard() {
    lint(&[
        "--set",
        "metrics.prometheusRule.enabled=true",
        "--set",
        "metrics.dashboard.enabled=true",
    ]);
}

#[test]
fn misspelled_values_are_rejected_not_ignored() {
    let error = render_error(&["--set", "app.driver.useTokenRequests=true"]);
    assert!(error.contains("useTokenRequests"), "{error}");
    let error = render_error(&["--set", "app.logFormat=xml"]);
    assert!(error.contains("logFormat"), "{error}");
}
