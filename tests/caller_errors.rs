//! Nothing the caller sends makes the driver answer `Internal`: every value over a limit or of the
//! wrong shape is `InvalidArgument` (or, for what is already at a target, `FailedPrecondition`;
//! for a file set that outgrows the volume, `ResourceExhausted`) naming the field and the limit,
//! and nothing is left behind.

mod common;

use cert_manager_csi_driver::csi::proto::{
    NodeGetVolumeStatsRequest, NodePublishVolumeRequest, NodeUnpublishVolumeRequest,
};
use cert_manager_csi_driver::demo::publish_request;
use common::Harness;
use tonic::Code;

/// One publish the caller could send, and what the answer must say.
struct Case {
    what: &'static str,
    request: NodePublishVolumeRequest,
    code: Code,
    says: Vec<&'static str>,
}

fn with_attribute(
    harness: &Harness,
    pod: &str,
    key: &str,
    value: &str,
) -> NodePublishVolumeRequest {
    let target = harness.target(pod);
    publish_request(
        &format!("csi-{pod}"),
        &target,
        harness.context(
            pod,
            &[("csi.cert-manager.io/key-algorithm", "ECDSA"), (key, value)],
        ),
    )
}

#[tokio::test]
async fn nothing_the_caller_sends_is_internal() {
    // A small tmpfs, so a large set of names outgrows it.
    let harness = Harness::start_with(|config| config.volume_size_bytes = 16 * 1024).await;
    let good = |pod: &str| {
        let target = harness.target(pod);
        publish_request(
            &format!("csi-{pod}"),
            &target,
            harness.context(pod, &[("csi.cert-manager.io/key-algorithm", "ECDSA")]),
        )
    };
    let mut cases = Vec::new();
    let mut case = |what, request, code, says: &[&'static str]| {
        cases.push(Case {
            what,
            request,
            code,
            says: says.to_vec(),
        })
    };

    let mut request = good("long-id");
    request.volume_id = "v".repeat(10_000);
    case(
        "10,000-byte volume_id",
        request,
        Code::InvalidArgument,
        &["volume_id", "128"],
    );
    let mut request = good("nul-id");
    request.volume_id = "csi-\0".into();
    case(
        "NUL in volume_id",
        request,
        Code::InvalidArgument,
        &["volume_id", "NUL"],
    );
    let mut request = good("long-path");
    request.target_path = format!("/{}", "p/".repeat(3000));
    case(
        "5,000-byte target_path",
        request,
        Code::InvalidArgument,
        &["target_path", "4096"],
    );
    let mut request = good("long-name");
    request.target_path = format!("/tmp/{}/mount", "n".repeat(300));
    case(
        "300-byte path component",
        request,
        Code::InvalidArgument,
        &["target_path", "255"],
    );
    let mut request = good("dotdot");
    request.target_path = format!("{}/../../escape", harness.target("dotdot").display());
    case(
        "target_path with ..",
        request,
        Code::InvalidArgument,
        &["target_path", ".."],
    );
    let mut request = good("no-parent");
    request.target_path = harness
        .dir
        .path()
        .join("nowhere/volumes/mount")
        .display()
        .to_string();
    case(
        "target_path without a parent",
        request,
        Code::InvalidArgument,
        &["parent"],
    );
    let file_target = harness.target("a-file");
    std::fs::write(&file_target, b"not a directory").unwrap();
    let request = publish_request(
        "csi-a-file",
        &file_target,
        harness.context("a-file", &[("csi.cert-manager.io/key-algorithm", "ECDSA")]),
    );
    case(
        "target_path that is a file",
        request,
        Code::InvalidArgument,
        &["not a directory"],
    );
    let huge = "x".repeat(1_000_000);
    case(
        "1 MB common-name",
        with_attribute(
            &harness,
            "huge-cn",
            "csi.cert-manager.io/common-name",
            &huge,
        ),
        // Subject values have no bound (as in jetstack's driver), the volume context has one.
        Code::InvalidArgument,
        &["volume_context", "65536"],
    );
    let blob = "b".repeat(100 * 1024);
    case(
        "100 KiB volume context",
        with_attribute(&harness, "big-context", "example.com/blob", &blob),
        Code::InvalidArgument,
        &["volume_context", "65536"],
    );
    let mut request = good("group");
    if let Some(cert_manager_csi_driver::csi::proto::volume_capability::AccessType::Mount(mount)) =
        request
            .volume_capability
            .as_mut()
            .and_then(|c| c.access_type.as_mut())
    {
        mount.volume_mount_group = "staff".into();
    }
    case(
        "a group that is not a number",
        request,
        Code::InvalidArgument,
        &["volume_mount_group"],
    );
    let names: Vec<String> = (0..400).map(|n| format!("name-{n}.example.com")).collect();
    case(
        "400 names in a 16 KiB volume",
        with_attribute(
            &harness,
            "many-names",
            "csi.cert-manager.io/dns-names",
            &names.join(","),
        ),
        Code::ResourceExhausted,
        &["--volume-size-limit", "16384"],
    );

    let mut node = harness.client.node.clone();
    for case in cases {
        let status = node.node_publish_volume(case.request).await.unwrap_err();
        assert_eq!(status.code(), case.code, "{}: {status:?}", case.what);
        for expected in &case.says {
            assert!(
                status.message().contains(expected),
                "{}: {expected:?} not in {:?}",
                case.what,
                status.message()
            );
        }
        assert!(
            status.message().len() < 2000,
            "{}: a message kubelet can show",
            case.what
        );
    }
    assert_eq!(harness.state_records(), 0, "nothing recorded");
    assert_eq!(harness.driver().manager().volume_count(), 0);
    assert_eq!(
        std::fs::read(&file_target).unwrap(),
        b"not a directory",
        "nothing touched"
    );
    assert!(common::mounts_under(harness.dir.path()).is_empty());

    // Unpublish holds the same fields to the same rules; stats holds the volume ID to them, and a
    // path no volume is at is NotFound, whatever its shape (the CSI spec's answer).
    for (volume_id, target, field, stats_code) in [
        (
            "v".repeat(10_000),
            "/tmp/x".to_string(),
            "volume_id",
            Code::InvalidArgument,
        ),
        (
            "csi-1".into(),
            "relative".into(),
            "target_path",
            Code::NotFound,
        ),
        (
            "csi-1".into(),
            format!("/{}", "p/".repeat(3000)),
            "target_path",
            Code::NotFound,
        ),
    ] {
        let status = node
            .node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: volume_id.clone(),
                target_path: target.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{status:?}");
        let status = node
            .node_get_volume_stats(NodeGetVolumeStatsRequest {
                volume_id,
                volume_path: target,
                staging_target_path: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), stats_code, "{status:?}");
    }
    // An unpublish of a directory of someone else's files: not removed, and said so.
    let foreign = harness.target("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("theirs"), b"x").unwrap();
    let status = node
        .node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: "csi-foreign".into(),
            target_path: foreign.display().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("did not write"), "{status:?}");
    assert!(foreign.join("theirs").exists());
}

#[tokio::test]
async fn a_volume_id_at_the_limit_of_odd_bytes_is_published_and_unpublished() {
    let harness = Harness::start().await;
    let target = harness.target("odd-id");
    let volume_id = ".".repeat(128);
    let mut node = harness.client.node.clone();
    node.node_publish_volume(publish_request(
        &volume_id,
        &target,
        harness.context("odd-id", &[("csi.cert-manager.io/key-algorithm", "ECDSA")]),
    ))
    .await
    .expect("a 128-byte ID is within the CSI limit");
    assert_eq!(harness.state_records(), 1);
    harness.unpublish(&volume_id, &target).await.unwrap();
    assert_eq!(harness.state_records(), 0);
}
