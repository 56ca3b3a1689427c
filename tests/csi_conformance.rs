//! The Node service's answers, RPC by RPC, against the CSI spec's error tables and csi-sanity's
//! node specs (kubernetes-csi/csi-test `pkg/sanity/node.go`): one table per RPC of request → gRPC
//! code, driven over the driver's unix socket as kubelet and csi-sanity drive it.
//!
//! The order of the checks matters where two could answer: a required field that is missing is
//! `InvalidArgument`; a volume that is not at the path asked about is `NotFound`, whatever the
//! path looks like (csi-sanity asks for `some/path`).

mod common;

use std::path::Path;

use cert_manager_csi_driver::csi::proto::node_service_capability::{Type, rpc};
use cert_manager_csi_driver::csi::proto::volume_capability::{AccessType, BlockVolume};
use cert_manager_csi_driver::csi::proto::{
    NodeExpandVolumeRequest, NodeGetCapabilitiesRequest, NodeGetInfoRequest,
    NodeGetVolumeStatsRequest, NodePublishVolumeRequest, NodeStageVolumeRequest,
    NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest,
};
use cert_manager_csi_driver::demo::publish_request;
use common::Harness;
use tonic::Code;

/// What a call must answer: a code, and for errors a word the message must contain.
fn check<T>(what: &str, result: Result<T, tonic::Status>, code: Code, says: &str) {
    match result {
        Ok(_) => assert_eq!(code, Code::Ok, "{what}: succeeded"),
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            assert!(
                status.message().contains(says),
                "{what}: {says:?} not in {:?}",
                status.message()
            );
        }
    }
}

fn stats(volume_id: &str, volume_path: &str) -> NodeGetVolumeStatsRequest {
    NodeGetVolumeStatsRequest {
        volume_id: volume_id.into(),
        volume_path: volume_path.into(),
        staging_target_path: String::new(),
    }
}

fn unpublish(volume_id: &str, target_path: &str) -> NodeUnpublishVolumeRequest {
    NodeUnpublishVolumeRequest {
        volume_id: volume_id.into(),
        target_path: target_path.into(),
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test]
async fn node_publish_volume() {
    let harness = Harness::start().await;
    let target = harness.target("publish");
    let other_target = harness.target("publish-elsewhere");
    let good = || publish_request("csi-publish", &target, harness.context("publish", &[]));
    let mut node = harness.client.node.clone();

    let mut no_capability = good();
    no_capability.volume_capability = None;
    let mut no_capability_nor_readonly = good();
    no_capability_nor_readonly.volume_capability = None;
    no_capability_nor_readonly.readonly = false;
    let mut relative = good();
    relative.target_path = "some/path".into();
    let mut writable = good();
    writable.readonly = false;
    let mut block = good();
    block.volume_capability.as_mut().unwrap().access_type = Some(AccessType::Block(BlockVolume {}));
    let mut elsewhere = good();
    elsewhere.target_path = shown(&other_target);

    let cases: Vec<(&str, NodePublishVolumeRequest, Code, &str)> = vec![
        // csi-sanity: "should fail when no volume id is provided".
        (
            "empty request",
            NodePublishVolumeRequest::default(),
            Code::InvalidArgument,
            "volume_id",
        ),
        // csi-sanity: "should fail when no target path is provided".
        (
            "volume id only",
            NodePublishVolumeRequest {
                volume_id: "csi-publish".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
            "target_path",
        ),
        // csi-sanity: "should fail when no volume capability is provided" (readonly unset too).
        (
            "no volume capability",
            no_capability,
            Code::InvalidArgument,
            "volume_capability",
        ),
        (
            "no volume capability, not read-only",
            no_capability_nor_readonly,
            Code::InvalidArgument,
            "volume_capability",
        ),
        (
            "relative target",
            relative,
            Code::InvalidArgument,
            "absolute",
        ),
        ("writable", writable, Code::InvalidArgument, "readonly"),
        ("block access", block, Code::InvalidArgument, "block"),
        ("first publish", good(), Code::Ok, ""),
        // CSI: publishing again with the same arguments is OK.
        ("same publish again", good(), Code::Ok, ""),
        // CSI: "Volume published but is incompatible" → ALREADY_EXISTS.
        (
            "same volume at another target",
            elsewhere,
            Code::AlreadyExists,
            "already published",
        ),
    ];
    for (what, request, code, says) in cases {
        check(what, node.node_publish_volume(request).await, code, says);
    }
    assert!(
        !other_target.exists(),
        "nothing is made at the conflicting target"
    );
    assert_eq!(harness.driver().manager().volume_count(), 1);
}

#[tokio::test]
async fn node_unpublish_volume() {
    let harness = Harness::start().await;
    let target = harness.target("unpublish");
    harness
        .publish("csi-unpublish", &target, &[])
        .await
        .unwrap();
    let nowhere = harness.dir.path().join("kubelet/pods/gone/mount");
    let mut node = harness.client.node.clone();

    let cases = [
        // csi-sanity: "should fail when no volume id is provided".
        (
            "empty request",
            unpublish("", ""),
            Code::InvalidArgument,
            "volume_id",
        ),
        // csi-sanity: "should fail when no target path is provided".
        (
            "volume id only",
            unpublish("csi-unpublish", ""),
            Code::InvalidArgument,
            "target_path",
        ),
        // Never acted on: a relative path would be resolved against the driver's working
        // directory. The CSI spec requires target_path to be absolute.
        (
            "relative target",
            unpublish("csi-unknown", "some/path"),
            Code::InvalidArgument,
            "absolute",
        ),
        // Unpublish is idempotent: a volume that is not (or no longer) here is OK, not
        // NOT_FOUND: kubelet retries a failed unpublish forever, and the pod would never finish
        // terminating after a volume's record was lost.
        (
            "unknown volume",
            unpublish("csi-unknown", &shown(&nowhere)),
            Code::Ok,
            "",
        ),
        (
            "the volume at its target",
            unpublish("csi-unpublish", &shown(&target)),
            Code::Ok,
            "",
        ),
        (
            "the same unpublish again",
            unpublish("csi-unpublish", &shown(&target)),
            Code::Ok,
            "",
        ),
    ];
    for (what, request, code, says) in cases {
        check(what, node.node_unpublish_volume(request).await, code, says);
    }
    // csi-sanity: "should remove target path".
    assert!(!target.exists(), "the target directory is removed");
    assert_eq!(harness.driver().manager().volume_count(), 0);
}

#[tokio::test]
async fn node_get_volume_stats() {
    let harness = Harness::start().await;
    let target = harness.target("stats");
    harness.publish("csi-stats", &target, &[]).await.unwrap();
    let elsewhere = harness.target("stats-elsewhere");
    let mut node = harness.client.node.clone();

    let cases = [
        // csi-sanity: "should fail when no volume id is provided".
        (
            "no volume id",
            stats("", "some/path"),
            Code::InvalidArgument,
            "volume_id",
        ),
        // csi-sanity: "should fail when no volume path is provided".
        (
            "no volume path",
            stats("csi-stats", ""),
            Code::InvalidArgument,
            "volume_path",
        ),
        (
            "volume id over the CSI limit",
            stats(&"v".repeat(1000), &shown(&target)),
            Code::InvalidArgument,
            "128",
        ),
        // csi-sanity: "should fail when volume is not found".
        (
            "unknown volume, relative path",
            stats("csi-unknown", "some/path"),
            Code::NotFound,
            "csi-unknown",
        ),
        (
            "unknown volume, absolute path",
            stats("csi-unknown", &shown(&target)),
            Code::NotFound,
            "csi-unknown",
        ),
        // csi-sanity: "should fail when volume does not exist on the specified path".
        (
            "the volume, relative path",
            stats("csi-stats", "some/path"),
            Code::NotFound,
            "some/path",
        ),
        (
            "the volume, another absolute path",
            stats("csi-stats", &shown(&elsewhere)),
            Code::NotFound,
            "stats-elsewhere",
        ),
        (
            "the volume, a path with ..",
            stats("csi-stats", &format!("{}/../mount", shown(&target))),
            Code::NotFound,
            "csi-stats",
        ),
        (
            "the volume at its target",
            stats("csi-stats", &shown(&target)),
            Code::Ok,
            "",
        ),
    ];
    for (what, request, code, says) in cases {
        check(what, node.node_get_volume_stats(request).await, code, says);
    }
    let usage = node
        .node_get_volume_stats(stats("csi-stats", &shown(&target)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.usage.len(), 2, "bytes and inodes");
    assert!(!usage.volume_condition.unwrap().abnormal);
}

#[tokio::test]
async fn node_info_capabilities_and_what_is_not_offered() {
    let harness = Harness::start().await;
    let mut node = harness.client.node.clone();
    let info = node
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!info.node_id.is_empty());
    assert!(info.max_volumes_per_node >= 0);

    let offered: Vec<i32> = node
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities
        .into_iter()
        .map(|capability| match capability.r#type {
            Some(Type::Rpc(rpc)) => rpc.r#type,
            None => panic!("a capability without a type"),
        })
        .collect();
    assert_eq!(
        offered,
        [
            rpc::Type::VolumeMountGroup as i32,
            rpc::Type::GetVolumeStats as i32,
            rpc::Type::VolumeCondition as i32,
        ]
    );
    // Not advertised, so csi-sanity skips their specs; the CSI spec's answer for an RPC a plugin
    // does not offer is UNIMPLEMENTED, even for a request missing every field.
    check(
        "NodeStageVolume",
        node.node_stage_volume(NodeStageVolumeRequest::default())
            .await,
        Code::Unimplemented,
        "not supported",
    );
    check(
        "NodeUnstageVolume",
        node.node_unstage_volume(NodeUnstageVolumeRequest::default())
            .await,
        Code::Unimplemented,
        "not supported",
    );
    check(
        "NodeExpandVolume",
        node.node_expand_volume(NodeExpandVolumeRequest::default())
            .await,
        Code::Unimplemented,
        "not supported",
    );
}
