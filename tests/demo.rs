//! The README's first command: `cert-manager-csi-driver demo` on a fresh machine.

mod common;

use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_cert-manager-csi-driver");

fn assert_demo_story(stdout: &str) {
    for expected in [
        "1. kubelet calls NodePublishVolume",
        "csi.cert-manager.io/dns-names: ${POD_NAME}.app.example.com,app.example.com",
        "DNS:app-with-csi-cert.app.example.com",
        "signed by ca.crt:       yes",
        "tls.key matches tls.crt: yes",
        "..data switched after",
        "new key (reuse-private-key is false): yes",
        "old set removed:        yes",
        "target directory removed: yes",
        "nothing mounted there:    yes",
        "driver state records:     0 left",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(!stdout.contains(" NO"), "a check failed:\n{stdout}");
}

#[test]
fn demo_mounts_rotates_and_cleans_up() {
    let output = Command::new(BINARY).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_demo_story(&stdout);
    if common::is_root() {
        assert!(stdout.contains("volumes    tmpfs"), "{stdout}");
        assert!(stdout.contains("mount: tmpfs"), "{stdout}");
    }
}

#[test]
fn demo_without_mounts_announces_the_fallback() {
    let output = Command::new(BINARY)
        .args(["demo", "--no-mount"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("volumes are plain directories"), "{stdout}");
    assert_demo_story(&stdout);
}

/// As a normal user the demo re-runs itself in a user + mount namespace to use real mounts, or
/// announces the plain-directory fallback where user namespaces are unavailable.
#[test]
fn demo_works_for_a_normal_user() {
    if !common::is_root() {
        eprintln!("skipped: needs root to switch to an unprivileged user");
        return;
    }
    // The checkout may sit under a directory the unprivileged user cannot enter (e.g. /root), so
    // the binary is copied somewhere it can.
    use std::os::unix::fs::PermissionsExt;
    let place = tempfile::Builder::new()
        .prefix("csi-demo-bin-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(place.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = place.path().join("cert-manager-csi-driver");
    std::fs::copy(BINARY, &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&binary)
        .arg("demo")
        .env("HOME", "/")
        .current_dir("/")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("private user + mount namespace") || stdout.contains("plain directories"),
        "{stdout}"
    );
    assert_demo_story(&stdout);
}
