//! CSI Identity: who the plugin is and whether it is ready.

use std::path::PathBuf;

use tonic::{Request, Response, Status};

use super::proto::identity_server::Identity;
use super::proto::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse,
};

/// The Identity service.
#[derive(Debug, Clone)]
pub struct IdentityService {
    pub driver_name: String,
    pub data_root: PathBuf,
}

/// The data root is usable when it is a directory this process may write to. Checked with
/// `access(2)`, so a probe every few seconds creates no files.
pub fn data_root_is_usable(data_root: &std::path::Path) -> bool {
    data_root.is_dir() && rustix::fs::access(data_root, rustix::fs::Access::WRITE_OK).is_ok()
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _request: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: self.driver_name.clone(),
            vendor_version: env!("CARGO_PKG_VERSION").to_string(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        // A node-only plugin: no controller service, no topology constraints. An empty list is
        // what the specification expects for that; UNKNOWN is listed by nobody.
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: Vec::<PluginCapability>::new(),
        }))
    }

    async fn probe(
        &self,
        _request: Request<ProbeRequest>,
    ) -> Result<Response<ProbeResponse>, Status> {
        let ready = data_root_is_usable(&self.data_root);
        if !ready {
            tracing::warn!(data_root = %self.data_root.display(), "probe: data root is not writable");
        }
        Ok(Response::new(ProbeResponse { ready: Some(ready) }))
    }
}
