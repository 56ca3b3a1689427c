//! What the default values render: the driver's objects, its flags, the sidecars, probes and
//! mount propagation.

use super::*;

#[test]
fn default_values_render_the_driver_objects_and_nothing_else() {
    let rendered = render(&[]);
    assert_eq!(
        rendered.kinds(),
        [
            "CSIDriver/csi.cert-manager.io",
            "ClusterRole/cert-manager-csi-driver",
            "ClusterRoleBinding/cert-manager-csi-driver",
            "DaemonSet/cert-manager-csi-driver",
            "ServiceAccount/cert-manager-csi-driver",
        ]
    );
    for kind in ["DaemonSet", "ServiceAccount"] {
        assert_eq!(
            rendered.one(kind)["metadata"]["namespace"],
            NAMESPACE,
            "{kind}"
        );
    }
}

#[test]
fn driver_container_runs_with_the_default_flags() {
    let rendered = render(&[]);
    assert_eq!(
        rendered.args("cert-manager-csi-driver"),
        [
            "--log-level=1",
            "--log-format=text",
            "--driver-name=csi.cert-manager.io",
            "--node-id=$(NODE_ID)",
            "--endpoint=$(CSI_ENDPOINT)",
            "--data-root=/var/lib/cert-manager-csi-driver",
            "--adopt-csi-lib-data-root=/csi-data-dir",
            "--kube-api-qps=50",
            "--kube-api-burst=100",
            "--metrics-bind-address=:9402",
        ]
    );
    let driver = rendered.driver();
    assert_eq!(
        env_value(driver, "NODE_ID")["valueFrom"],
        json!({ "fieldRef": { "fieldPath": "spec.nodeName" } })
    );
    assert_eq!(
        env_value(driver, "CSI_ENDPOINT")["value"],
        "unix:///plugin/csi.sock"
    );
}

#[test]
fn rendered_driver_flags_are_flags_the_binary_accepts() {
    for flags in [
        &[][..],
        &[
            "--set",
            "app.driver.useTokenRequest=true",
            "--set",
            "app.driver.continueOnNotReady=true",
            "--set",
            "app.logFormat=json",
            "--set",
            "metrics.enabled=false",
            "--set",
            "app.driver.kubernetesAPIQPS=7.5",
            "--set",
            "app.driver.adoptUpstreamVolumes=false",
            "--set",
            "app.driver.podReadinessGates={pod-ip:any,pod-condition:Ready}",
        ][..],
    ] {
        let rendered = render(flags);
        let driver = rendered.driver();
        let endpoint = env_value(driver, "CSI_ENDPOINT")["value"].as_str().unwrap();
        // What kubelet hands the process after expanding $(VAR) references.
        let args: Vec<String> = rendered
            .args("cert-manager-csi-driver")
            .iter()
            .map(|a| {
                a.replace("$(NODE_ID)", "node-1")
                    .replace("$(CSI_ENDPOINT)", endpoint)
            })
            .collect();
        // The binary's own flag parser, then the same validation the driver does before it
        // starts (addresses, durations, the endpoint).
        let parsed = cert_manager_csi_driver::cli::Cli::try_parse_from(
            std::iter::once("cert-manager-csi-driver".to_string()).chain(args.iter().cloned()),
        )
        .unwrap_or_else(|e| panic!("the driver rejects the chart's args {args:?}:\n{e}"));
        let config = parsed.driver.to_config().unwrap_or_else(|e| {
            panic!("the chart's args {args:?} do not make a configuration: {e}")
        });
        assert_eq!(config.node_id, "node-1");
        let gates: Vec<String> = config
            .readiness_gates
            .iter()
            .map(ToString::to_string)
            .collect();
        if flags.iter().any(|flag| flag.contains("podReadinessGates")) {
            assert_eq!(
                gates,
                ["pod-ip:any", "pod-condition:Ready=True"],
                "{args:?}"
            );
        } else {
            assert!(gates.is_empty(), "{args:?}");
        }
        assert_eq!(
            config.metrics_address.is_some(),
            !flags.contains(&"metrics.enabled=false"),
            "{args:?}"
        );
        // Both directories are where the chart mounts them.
        assert_eq!(
            config.data_root,
            Path::new(
                rendered.mount("cert-manager-csi-driver", "data-root")["mountPath"]
                    .as_str()
                    .unwrap()
            ),
            "{args:?}"
        );
        if flags.contains(&"app.driver.adoptUpstreamVolumes=false") {
            assert_eq!(config.adopt_csi_lib_data_root, None, "{args:?}");
        } else {
            assert_eq!(
                config.adopt_csi_lib_data_root.as_deref(),
                Some(Path::new(
                    rendered.mount("cert-manager-csi-driver", "csi-data-dir")["mountPath"]
                        .as_str()
                        .unwrap()
                )),
                "{args:?}"
            );
        }
    }
}

#[test]
fn optional_driver_flags_follow_their_values() {
    let rendered = render(&[
        "--set",
        "app.driver.continueOnNotReady=true",
        "--set",
        "app.logFormat=json",
        "--set",
        "app.logLevel=5",
        "--set",
        "app.driver.kubernetesAPIQPS=7.5",
        "--set",
        "app.driver.kubernetesAPIBurst=20",
    ]);
    let args = rendered.args("cert-manager-csi-driver");
    assert!(
        args.contains(&"--continue-on-not-ready".to_owned()),
        "{args:?}"
    );
    assert_eq!(flag(&args, "--log-format"), Some("json"));
    assert_eq!(flag(&args, "--log-level"), Some("5"));
    assert_eq!(flag(&args, "--kube-api-qps"), Some("7.5"));
    assert_eq!(flag(&args, "--kube-api-burst"), Some("20"));
    for sidecar in ["node-driver-registrar", "liveness-probe"] {
        assert_eq!(flag(&rendered.args(sidecar), "-v"), Some("5"), "{sidecar}");
    }
    let defaults = render(&[]).args("cert-manager-csi-driver");
    assert!(!defaults.contains(&"--continue-on-not-ready".to_owned()));
}

#[test]
fn sidecars_register_the_socket_and_serve_liveness() {
    let rendered = render(&[]);
    assert_eq!(
        rendered.args("node-driver-registrar"),
        [
            "-v=1",
            "--csi-address=/plugin/csi.sock",
            "--kubelet-registration-path=/var/lib/kubelet/plugins/csi.cert-manager.io/csi.sock",
        ]
    );
    assert_eq!(
        rendered.args("liveness-probe"),
        [
            "-v=1",
            "--csi-address=/plugin/csi.sock",
            "--probe-timeout=3s",
            "--health-port=9809",
        ]
    );
    assert_eq!(
        rendered.mount("node-driver-registrar", "registration-dir")["mountPath"],
        "/registration"
    );
    for container in [
        "node-driver-registrar",
        "liveness-probe",
        "cert-manager-csi-driver",
    ] {
        assert_eq!(
            rendered.mount(container, "plugin-dir")["mountPath"],
            "/plugin"
        );
    }
    // The socket the driver listens on is the one the sidecars dial.
    assert_eq!(
        env_value(rendered.driver(), "CSI_ENDPOINT")["value"]
            .as_str()
            .unwrap()
            .strip_prefix("unix://"),
        Some("/plugin/csi.sock")
    );
}

#[test]
fn liveness_goes_through_the_probe_sidecar_and_readiness_to_the_driver() {
    let rendered = render(&[]);
    let driver = rendered.driver();
    let liveness = &driver["livenessProbe"]["httpGet"];
    assert_eq!(liveness["path"], "/healthz");
    assert_eq!(port(driver, liveness["port"].as_str().unwrap()), Some(9809));
    let readiness = &driver["readinessProbe"]["httpGet"];
    assert_eq!(readiness["path"], "/readyz");
    assert_eq!(readiness["port"], "http-metrics");
    assert_eq!(port(driver, "http-metrics"), Some(9402));
}

#[test]
fn metrics_disabled_binds_nothing_and_drops_the_port_and_readiness_probe() {
    let rendered = render(&["--set", "metrics.enabled=false"]);
    let args = rendered.args("cert-manager-csi-driver");
    assert_eq!(flag(&args, "--metrics-bind-address"), Some("0"));
    assert_eq!(port(rendered.driver(), "http-metrics"), None);
    assert!(rendered.driver().get("readinessProbe").is_none());
    let other_port = render(&["--set", "metrics.port=9500"]);
    assert_eq!(
        flag(
            &other_port.args("cert-manager-csi-driver"),
            "--metrics-bind-address"
        ),
        Some(":9500")
    );
    assert_eq!(port(other_port.driver(), "http-metrics"), Some(9500));
}

#[test]
fn volumes_propagate_mounts_only_where_kubelet_or_adoption_needs_them() {
    let rendered = render(&[]);
    let pods = rendered.mount("cert-manager-csi-driver", "pods-mount-dir");
    assert_eq!(pods["mountPath"], "/var/lib/kubelet/pods");
    assert_eq!(pods["mountPropagation"], "Bidirectional");
    assert_eq!(
        rendered.volume("pods-mount-dir")["hostPath"],
        json!({ "path": "/var/lib/kubelet/pods", "type": "Directory" })
    );
    assert_eq!(
        rendered.volume("plugin-dir")["hostPath"],
        json!({ "path": "/var/lib/kubelet/plugins/csi.cert-manager.io", "type": "DirectoryOrCreate" })
    );
    assert_eq!(
        rendered.volume("registration-dir")["hostPath"],
        json!({ "path": "/var/lib/kubelet/plugins_registry", "type": "Directory" })
    );
    // The driver unmounts the Go driver's mounts in its data dir; those unmounts must reach the host.
    assert_eq!(
        rendered.mount("cert-manager-csi-driver", "csi-data-dir")["mountPropagation"],
        "Bidirectional"
    );
    // Only the driver, and only for the pods directory and the Go driver's data dir, propagates
    // mounts; without adoption, only for the pods directory.
    for (rendered, propagating) in [
        (rendered, &["pods-mount-dir", "csi-data-dir"][..]),
        (
            render(&["--set", "app.driver.adoptUpstreamVolumes=false"]),
            &["pods-mount-dir"][..],
        ),
    ] {
        let mut propagated_mounts = Vec::new();
        for container in rendered.pod_spec()["containers"].as_array().unwrap() {
            for mount in container["volumeMounts"].as_array().unwrap() {
                let propagated = mount.get("mountPropagation").and_then(Value::as_str);
                if propagated.is_none() || propagated == Some("None") {
                    continue;
                }
                assert_eq!(
                    container["name"], "cert-manager-csi-driver",
                    "{} mounts {} with {propagated:?}",
                    container["name"], mount["name"]
                );
                propagated_mounts.push(mount["name"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(propagated_mounts, propagating);
    }
}
