//! A Kubernetes API for the cert-manager backend: the test API server, its cert-manager-like
//! signer, and a kubeconfig that points the driver at them.

use std::path::PathBuf;

use cert_manager_csi_driver::driver::{DriverConfig, IssuerBackend};
use kube_test_server::{Signer, TestApiServer};
use tempfile::TempDir;

use super::Harness;

pub struct Cluster {
    pub api: TestApiServer,
    pub signer: Signer,
    pub kubeconfig: PathBuf,
    _dir: TempDir,
}

pub async fn cluster() -> Cluster {
    let api = TestApiServer::start().await;
    let signer = Signer::start(&api);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, kube_test_server::DRIVER_TOKEN);
    Cluster {
        api,
        signer,
        kubeconfig,
        _dir: dir,
    }
}

impl Cluster {
    /// An in-process driver on the cert-manager backend talking to this cluster, with `adjust`
    /// applied last.
    pub async fn driver(&self, adjust: impl FnOnce(&mut DriverConfig)) -> Harness {
        let kubeconfig = self.kubeconfig.clone();
        Harness::start_with(move |config| {
            config.issuer_backend = IssuerBackend::CertManager;
            config.kube.kubeconfig = Some(kubeconfig);
            adjust(config);
        })
        .await
    }
}
