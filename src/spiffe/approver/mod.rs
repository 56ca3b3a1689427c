//! `cert-manager-csi-driver spiffe-approver`: approves the CertificateRequests csi-driver-spiffe
//! makes and denies every other request to its issuer (upstream's `csi-driver-spiffe-approver`).
//!
//! [`evaluate`] decides (pure); [`controller`] watches requests and writes the conditions;
//! [`leader`] makes sure only one replica writes; [`metrics`] serves `/metrics` and `/readyz`.

pub mod controller;
pub mod evaluate;
pub mod leader;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::kubernetes::{KubeConnection, KubeSettings};
use crate::spiffe::ActiveIssuer;
use evaluate::Policy;
use leader::{LeaderElector, LeaseSettings};
use metrics::ApproverMetrics;

/// Everything the approver runs with (its flags, checked).
#[derive(Debug, Clone)]
pub struct ApproverConfig {
    /// The rules; its `issuer` is replaced by the active issuer at each decision.
    pub policy: Policy,
    /// `--issuer-name/-kind/-group`, when an issuer name is given.
    pub static_issuer: Option<crate::attributes::IssuerRef>,
    /// `--runtime-issuance-config-map-namespace/-name`, when given.
    pub runtime_config_map: Option<(String, String)>,
    pub lease: LeaseSettings,
    pub kube: KubeSettings,
    /// `--metrics-bind-address`; `None` = off.
    pub metrics_address: Option<SocketAddr>,
    /// `--readiness-probe-bind-address`; `None` = off.
    pub readiness_address: Option<SocketAddr>,
}

/// Why the approver could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApproverError {
    #[error(transparent)]
    Kube(#[from] crate::kubernetes::KubeSetupError),
    #[error("listening on {address} ({flag}): {source}")]
    Bind {
        flag: &'static str,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the approver until `shutdown` completes, then hands the lease back if it holds it.
pub async fn run(
    config: ApproverConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApproverError> {
    let connection = KubeConnection::connect(&config.kube).await?;
    let metrics = Arc::new(ApproverMetrics::new(&config.lease.name));
    let mut servers = Vec::new();
    for (flag, address) in [
        ("--metrics-bind-address", config.metrics_address),
        ("--readiness-probe-bind-address", config.readiness_address),
    ] {
        let Some(address) = address else { continue };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| ApproverError::Bind {
                flag,
                address,
                source,
            })?;
        servers.push(tokio::spawn(metrics::serve(listener, Arc::clone(&metrics))));
    }
    tracing::info!(
        cluster = %connection.cluster_url(),
        trust_domain = %config.policy.trust_domain,
        issuer = ?config.static_issuer,
        runtime_config_map = ?config.runtime_config_map,
        lease = %format!("{}/{}", config.lease.namespace, config.lease.name),
        identity = %config.lease.identity,
        "starting the SPIFFE approver"
    );
    let issuers = Arc::new(ActiveIssuer::new(config.static_issuer.clone()));
    let runtime_config = config.runtime_config_map.clone().map(|(namespace, name)| {
        tokio::spawn(crate::spiffe::runtime_config::run_watch(
            Arc::clone(&issuers),
            connection.client(),
            namespace,
            name,
        ))
    });
    let (leading_tx, leading_rx) = watch::channel(false);
    let elector =
        tokio::spawn(LeaderElector::new(connection.clone(), config.lease.clone()).run(leading_tx));
    let controller = tokio::spawn(
        controller::Controller {
            connection: connection.clone(),
            policy: Arc::new(config.policy),
            issuers,
            metrics,
            leading: leading_rx.clone(),
        }
        .run(),
    );
    shutdown.await;
    elector.abort();
    controller.abort();
    if let Some(runtime_config) = runtime_config {
        runtime_config.abort();
    }
    servers.iter().for_each(|server| server.abort());
    if *leading_rx.borrow() {
        LeaderElector::release(&connection, &config.lease).await;
    }
    Ok(())
}
