//! CSI Node: publish, unpublish, stats, info. Validation of the call's own fields happens here;
//! everything about the volume happens in the manager.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::fields;
use super::proto::node_server::Node;
use super::proto::node_service_capability::{Rpc, rpc};
use super::proto::volume_capability::AccessType;
use super::proto::{
    NodeExpandVolumeRequest, NodeExpandVolumeResponse, NodeGetCapabilitiesRequest,
    NodeGetCapabilitiesResponse, NodeGetInfoRequest, NodeGetInfoResponse,
    NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
    NodePublishVolumeResponse, NodeServiceCapability, NodeStageVolumeRequest,
    NodeStageVolumeResponse, NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse,
    NodeUnstageVolumeRequest, NodeUnstageVolumeResponse, VolumeCondition, VolumeUsage,
    volume_usage,
};
use crate::attributes::PodInfo;
use crate::volume::{PublishCall, VolumeError, VolumeManager};

/// The Node service.
pub struct NodeService {
    pub node_id: String,
    /// 0 = no limit.
    pub max_volumes_per_node: i64,
    pub manager: Arc<VolumeManager>,
}

/// Each failure's code is decided by [`VolumeError::code`].
impl From<VolumeError> for Status {
    fn from(error: VolumeError) -> Status {
        Status::new(error.code(), error.to_string())
    }
}

/// Longer values are cut short in logs: a caller's 1 MB attribute is not logged whole.
const LOGGED_VALUE_CHARS: usize = 256;

/// A caller's string as logged.
fn shown(value: &str) -> String {
    if value.chars().count() <= LOGGED_VALUE_CHARS {
        return value.to_string();
    }
    let start: String = value.chars().take(LOGGED_VALUE_CHARS).collect();
    format!("{start}… ({} bytes)", value.len())
}

/// The volume context as logged: secrets redacted, long values cut short.
fn shown_context(
    context: &std::collections::HashMap<String, String>,
) -> std::collections::BTreeMap<&str, String> {
    crate::attributes::redacted_context(context)
        .into_iter()
        .map(|(key, value)| (key, shown(value)))
        .collect()
}

/// Logs a failed call with what identifies the volume, then returns it.
fn logged(method: &str, volume_id: &str, pod: &str, started: Instant, status: Status) -> Status {
    tracing::warn!(
        method,
        %volume_id,
        pod,
        code = ?status.code(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        message = %status.message(),
        "call failed"
    );
    status
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        _request: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "NodeStageVolume is not supported: ephemeral volumes are not staged",
        ))
    }

    async fn node_unstage_volume(
        &self,
        _request: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "NodeUnstageVolume is not supported: ephemeral volumes are not staged",
        ))
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        let volume_id = request.volume_id.clone();
        let pod = PodInfo::read_from(&request.volume_context).to_string();
        tracing::debug!(
            method = "NodePublishVolume",
            volume_id = %shown(&volume_id),
            %pod,
            target = %shown(&request.target_path),
            readonly = request.readonly,
            context = ?shown_context(&request.volume_context),
            "received"
        );
        let result = async {
            let volume_id = fields::volume_id(&request.volume_id)?;
            fields::path(&request.target_path, "target_path")?;
            let capability = request
                .volume_capability
                .as_ref()
                .ok_or_else(|| Status::invalid_argument("volume_capability is required"))?;
            if !request.readonly {
                return Err(Status::invalid_argument(
                    "readonly must be true: set `readOnly: true` on the pod's csi volume",
                ));
            }
            let volume_mount_group = match &capability.access_type {
                Some(AccessType::Mount(mount)) => {
                    Some(mount.volume_mount_group.clone()).filter(|group| !group.is_empty())
                }
                Some(AccessType::Block(_)) => {
                    return Err(Status::invalid_argument(
                        "block volumes are not supported: this driver publishes a filesystem",
                    ));
                }
                None => None,
            };
            self.manager
                .publish(PublishCall {
                    volume_id,
                    target_path: PathBuf::from(&request.target_path),
                    volume_context: request.volume_context,
                    volume_mount_group,
                })
                .await
                .map_err(Status::from)
        }
        .await;
        match result {
            Ok(()) => Ok(Response::new(NodePublishVolumeResponse {})),
            Err(status) => Err(logged(
                "NodePublishVolume",
                &volume_id,
                &pod,
                started,
                status,
            )),
        }
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let started = Instant::now();
        let request = request.into_inner();
        tracing::debug!(
            method = "NodeUnpublishVolume",
            volume_id = %shown(&request.volume_id),
            target = %shown(&request.target_path),
            "received"
        );
        let result = async {
            fields::volume_id(&request.volume_id)?;
            fields::path(&request.target_path, "target_path")?;
            self.manager
                .unpublish(&request.volume_id, &PathBuf::from(&request.target_path))
                .await
                .map_err(Status::from)
        }
        .await;
        match result {
            Ok(()) => Ok(Response::new(NodeUnpublishVolumeResponse {})),
            Err(status) => Err(logged(
                "NodeUnpublishVolume",
                &request.volume_id,
                "-",
                started,
                status,
            )),
        }
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        let request = request.into_inner();
        tracing::trace!(
            method = "NodeGetVolumeStats",
            volume_id = %shown(&request.volume_id),
            path = %shown(&request.volume_path),
            "received"
        );
        fields::volume_id(&request.volume_id)?;
        // The CSI spec's answer for a volume that is not at this path is NotFound, whatever the
        // path looks like (csi-sanity asks for `some/path`): no volume of this driver has a
        // relative or malformed target, so the lookup answers for it.
        fields::required(&request.volume_path, "volume_path")?;
        let path = PathBuf::from(&request.volume_path);
        let problem = self.manager.condition(&request.volume_id, &path).await?;
        let mut usage = Vec::new();
        if problem.is_none()
            && let Ok(stats) = rustix::fs::statvfs(&path)
        {
            let block = stats.f_frsize as i64;
            usage.push(VolumeUsage {
                available: stats.f_bavail as i64 * block,
                total: stats.f_blocks as i64 * block,
                used: (stats.f_blocks - stats.f_bfree) as i64 * block,
                unit: volume_usage::Unit::Bytes as i32,
            });
            usage.push(VolumeUsage {
                available: stats.f_favail as i64,
                total: stats.f_files as i64,
                used: (stats.f_files - stats.f_ffree) as i64,
                unit: volume_usage::Unit::Inodes as i32,
            });
        }
        Ok(Response::new(NodeGetVolumeStatsResponse {
            usage,
            volume_condition: Some(VolumeCondition {
                abnormal: problem.is_some(),
                message: problem.unwrap_or_else(|| "certificate and key are mounted".into()),
            }),
        }))
    }

    async fn node_expand_volume(
        &self,
        _request: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        Err(Status::unimplemented("NodeExpandVolume is not supported"))
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        let capability = |kind: rpc::Type| NodeServiceCapability {
            r#type: Some(super::proto::node_service_capability::Type::Rpc(Rpc {
                r#type: kind as i32,
            })),
        };
        Ok(Response::new(NodeGetCapabilitiesResponse {
            capabilities: vec![
                capability(rpc::Type::VolumeMountGroup),
                capability(rpc::Type::GetVolumeStats),
                capability(rpc::Type::VolumeCondition),
            ],
        }))
    }

    async fn node_get_info(
        &self,
        _request: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: self.node_id.clone(),
            max_volumes_per_node: self.max_volumes_per_node,
            accessible_topology: None,
        }))
    }
}
