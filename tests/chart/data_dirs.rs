//! This driver's data root and the Go driver's data dir (for adoption): where they are mounted
//! and which values are refused.

use super::*;

#[test]
fn data_root_default_is_on_the_node_but_not_under_tmp() {
    let rendered = render(&[]);
    assert_eq!(
        rendered.volume("data-root")["hostPath"],
        json!({ "path": "/var/lib/cert-manager-csi-driver", "type": "DirectoryOrCreate" })
    );
    // The driver's --data-root is where that volume is mounted, which is the binary's default
    // --data-root, so `status` in the container needs no flag.
    let mount = rendered.mount("cert-manager-csi-driver", "data-root");
    assert_eq!(
        mount["mountPath"],
        cert_manager_csi_driver::cli::DEFAULT_DATA_ROOT
    );
    assert_eq!(
        flag(&rendered.args("cert-manager-csi-driver"), "--data-root"),
        Some(cert_manager_csi_driver::cli::DEFAULT_DATA_ROOT)
    );
    assert!(mount.get("mountPropagation").is_none(), "{mount}");
}

/// The DaemonSet mounts this driver's data root (from `data_root`, no propagation, `--data-root`)
/// and the Go driver's data dir (from `go_data_dir`, at upstream's `/csi-data-dir`, Bidirectional,
/// `--adopt-csi-lib-data-root`).
fn assert_mounts_both_data_dirs(rendered: &Rendered, data_root: &str, go_data_dir: &str) {
    assert_eq!(
        rendered.volume("data-root")["hostPath"],
        json!({ "path": data_root, "type": "DirectoryOrCreate" })
    );
    assert_eq!(
        rendered.volume("csi-data-dir")["hostPath"],
        json!({ "path": go_data_dir, "type": "DirectoryOrCreate" })
    );
    let ours = rendered.mount("cert-manager-csi-driver", "data-root");
    assert_eq!(
        ours,
        &json!({ "name": "data-root", "mountPath": "/var/lib/cert-manager-csi-driver" })
    );
    let go = rendered.mount("cert-manager-csi-driver", "csi-data-dir");
    assert_eq!(
        go,
        &json!({
            "name": "csi-data-dir",
            "mountPath": "/csi-data-dir",
            "mountPropagation": "Bidirectional",
        })
    );
    let args = rendered.args("cert-manager-csi-driver");
    assert_eq!(
        flag(&args, "--data-root"),
        Some("/var/lib/cert-manager-csi-driver")
    );
    assert_eq!(
        flag(&args, "--adopt-csi-lib-data-root"),
        Some("/csi-data-dir")
    );
    // Only the driver container sees either directory.
    for sidecar in ["node-driver-registrar", "liveness-probe"] {
        for mount in rendered.container(sidecar)["volumeMounts"]
            .as_array()
            .unwrap()
        {
            assert!(
                mount["name"] != "data-root" && mount["name"] != "csi-data-dir",
                "{sidecar} mounts {}",
                mount["name"]
            );
        }
    }
}

#[test]
fn default_values_mount_our_data_root_and_the_go_drivers_data_dir_for_adoption() {
    assert_mounts_both_data_dirs(
        &render(&[]),
        "/var/lib/cert-manager-csi-driver",
        "/tmp/cert-manager-csi-driver",
    );
}

#[test]
fn upstream_values_adopt_from_their_csi_data_dir_and_keep_our_data_root_out_of_tmp() {
    assert_mounts_both_data_dirs(
        &render(&["-f", UPSTREAM_VALUES]),
        "/var/lib/cert-manager-csi-driver",
        "/tmp/cert-manager-csi-driver",
    );
    assert_mounts_both_data_dirs(
        &render(&[
            "-f",
            UPSTREAM_VALUES,
            "--set",
            "app.driver.csiDataDir=/var/lib/csi-lib",
        ]),
        "/var/lib/cert-manager-csi-driver",
        "/var/lib/csi-lib",
    );
}

#[test]
fn adopt_upstream_volumes_false_drops_the_go_data_dir_and_the_flag() {
    for flags in [&[][..], &["-f", UPSTREAM_VALUES][..]] {
        let mut flags = flags.to_vec();
        flags.extend(["--set", "app.driver.adoptUpstreamVolumes=false"]);
        let rendered = render(&flags);
        assert!(!rendered.has_volume("csi-data-dir"), "{flags:?}");
        assert!(!rendered.mounted_anywhere("csi-data-dir"), "{flags:?}");
        let args = rendered.args("cert-manager-csi-driver");
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--adopt-csi-lib-data-root")),
            "{args:?}"
        );
        // Our own data root stays.
        assert_eq!(
            rendered.volume("data-root")["hostPath"]["path"],
            "/var/lib/cert-manager-csi-driver"
        );
        assert_eq!(
            flag(&args, "--data-root"),
            Some("/var/lib/cert-manager-csi-driver")
        );
    }
}

#[test]
fn data_root_value_moves_our_host_path_only() {
    let rendered = render(&["--set", "app.driver.dataRoot=/srv/x"]);
    assert_mounts_both_data_dirs(&rendered, "/srv/x", "/tmp/cert-manager-csi-driver");
}

#[test]
fn data_root_under_tmp_is_refused() {
    for data_root in [
        "/tmp",
        "/tmp/",
        "/tmp/cert-manager-csi-driver-state",
        "/var/tmp/x",
    ] {
        let error = render_error(&[
            "--set",
            &format!("app.driver.dataRoot={data_root}"),
            "--set",
            "app.driver.adoptUpstreamVolumes=false",
        ]);
        assert!(error.contains("systemd-tmpfiles"), "{data_root}: {error}");
    }
    // A name that only starts with "tmp" is fine.
    render(&["--set", "app.driver.dataRoot=/tmpfs-state"]);
}

#[test]
fn data_root_overlapping_the_go_data_dir_is_refused_while_adopting() {
    for (data_root, go_data_dir) in [
        // Upstream users who moved csiDataDir out of /tmp to our default data root.
        (
            "/var/lib/cert-manager-csi-driver",
            "/var/lib/cert-manager-csi-driver",
        ),
        (
            "/var/lib/cert-manager-csi-driver",
            "/var/lib/cert-manager-csi-driver/",
        ),
        ("/var/lib/cert-manager-csi-driver", "/var/lib"),
        ("/var/lib/csi", "/var/lib/csi/go"),
    ] {
        let flags = [
            "--set".to_owned(),
            format!("app.driver.dataRoot={data_root}"),
            "--set".to_owned(),
            format!("app.driver.csiDataDir={go_data_dir}"),
        ];
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let error = render_error(&flags);
        assert!(
            error.contains("overlap"),
            "{data_root} / {go_data_dir}: {error}"
        );
        // Without adoption the Go driver's data dir is not mounted, so nothing overlaps.
        let mut without_adoption = flags.clone();
        without_adoption.extend(["--set", "app.driver.adoptUpstreamVolumes=false"]);
        render(&without_adoption);
    }
    // Siblings do not overlap.
    render(&[
        "--set",
        "app.driver.csiDataDir=/var/lib/cert-manager-csi-driver-go",
    ]);
}

#[test]
fn publish_in_go_driver_layout_adds_its_flag_and_needs_adoption() {
    let default_args = render(&[]).args("cert-manager-csi-driver");
    assert!(
        !default_args
            .iter()
            .any(|a| a.starts_with("--publish-in-csi-lib-layout")),
        "off by default: {default_args:?}"
    );
    let rendered = render(&["--set", "app.driver.publishInGoDriverLayout=true"]);
    let args = rendered.args("cert-manager-csi-driver");
    assert!(
        args.iter().any(|a| a == "--publish-in-csi-lib-layout"),
        "{args:?}"
    );
    assert_eq!(
        flag(&args, "--adopt-csi-lib-data-root"),
        Some("/csi-data-dir")
    );
    // New volumes are bind-mounted from the Go driver's data directory: its mount propagates.
    assert!(rendered.mounted_anywhere("csi-data-dir"));
    let error = render_error(&[
        "--set",
        "app.driver.publishInGoDriverLayout=true",
        "--set",
        "app.driver.adoptUpstreamVolumes=false",
    ]);
    assert!(
        error.contains("needs app.driver.adoptUpstreamVolumes=true"),
        "{error}"
    );
}
