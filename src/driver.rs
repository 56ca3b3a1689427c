//! Wiring: builds the issuer, the volume manager and the gRPC server from a [`DriverConfig`],
//! resumes the volumes of a previous run, and serves until stopped.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::csi::identity::IdentityService;
use crate::csi::node::NodeService;
use crate::csi::server;
use crate::endpoints;
use crate::issuer::cert_manager::{CertManagerIssuer, CertManagerSettings};
use crate::issuer::local_ca::LocalCa;
use crate::issuer::{Issuer, IssuerError};
use crate::keys::pool::KeyPool;
use crate::kubernetes::event_recorder::KubeEvents;
use crate::kubernetes::pods::PodWatch;
use crate::kubernetes::{KubeConnection, KubeSettings, KubeSetupError};
use crate::metrics::Metrics;
use crate::pod_events::{NoEvents, PodEvents};
use crate::pod_gates::{Gate, GateBackoff};
use crate::spiffe::node::{SpiffeIssuer, SpiffeRequests, ca_bundle};
use crate::spiffe::runtime_config;
use crate::volume::csi_lib::CsiLibRoot;
use crate::volume::manager::{AdoptionSummary, ResumeSummary};
use crate::volume::mount::{Mounter, PlainDirectoryMounter, TmpfsMounter};
use crate::volume::state::StateStore;
use crate::volume::{ManagerConfig, Readiness, RequestMode, VolumeManager};

/// Where certificates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IssuerBackend {
    /// cert-manager `CertificateRequest`s in the pod's namespace (the in-cluster default).
    CertManager,
    /// The embedded CA: no cluster needed.
    LocalCa,
}

/// How volumes are materialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountMode {
    /// One size-capped tmpfs per volume (needs CAP_SYS_ADMIN): the real thing.
    Tmpfs,
    /// Plain directories, for unprivileged runs; files are not kept in memory-only storage.
    PlainDirectories,
}

/// Everything the driver needs to run.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub node_id: String,
    pub driver_name: String,
    pub socket_path: PathBuf,
    pub data_root: PathBuf,
    pub issuer_backend: IssuerBackend,
    pub local_ca_dir: PathBuf,
    pub max_volumes_per_node: i64,
    pub volume_size_bytes: u64,
    pub renewal_concurrency: usize,
    /// `--key-pool-size`: pre-generated keys per kind in demand; 0 = off.
    pub key_pool_size: usize,
    /// How failed renewals are retried.
    pub renewal_backoff: crate::renewal::Backoff,
    /// Report publishes done once mounted; issue in the background.
    pub continue_on_not_ready: bool,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None` = off.
    pub metrics_address: Option<std::net::SocketAddr>,
    pub mount_mode: MountMode,
    /// Unknown `csi.cert-manager.io/*` attributes fail the publish instead of being logged.
    pub strict_attributes: bool,
    /// How to reach the API server (cert-manager backend only).
    pub kube: KubeSettings,
    /// The cert-manager backend's settings.
    pub cert_manager: CertManagerSettings,
    /// Lifetime of certificates whose volume has no `duration` attribute.
    pub default_duration: std::time::Duration,
    /// The Go driver's data root whose volumes are taken over at start (absolute).
    pub adopt_csi_lib_data_root: Option<PathBuf>,
    /// New volumes are published in the Go driver's layout under `adopt_csi_lib_data_root`, for
    /// a rollback to take over (`--publish-in-csi-lib-layout`).
    pub publish_in_csi_lib_layout: bool,
    /// `--pod-readiness-gate`: judged on a watch of this node's pods (cert-manager backend).
    pub readiness_gates: Vec<Gate>,
    /// `--gate-backoff-*`.
    pub gate_backoff: GateBackoff,
}

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// No Kubernetes client could be configured for the cert-manager backend.
    #[error(
        "{0}\n(the default issuer backend, cert-manager, needs a cluster; to run without one, \
         use `--issuer-backend local-ca`)"
    )]
    Kube(#[from] KubeSetupError),
    /// The issuer could not be set up.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// A file, directory or socket could not be set up.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The flags ask for something this setup cannot do.
    #[error("{0}")]
    Config(String),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Server(#[from] tonic::transport::Error),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DriverError {
    let context = context.into();
    move |source| DriverError::Io { context, source }
}

/// A started driver.
pub struct RunningDriver {
    manager: Arc<VolumeManager>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    renewals: JoinHandle<()>,
    stop: Option<oneshot::Sender<()>>,
    socket_path: PathBuf,
    resumed: ResumeSummary,
    adopted: AdoptionSummary,
    endpoint: Option<JoinHandle<()>>,
    metrics_address: Option<std::net::SocketAddr>,
}

impl RunningDriver {
    /// Where `/metrics`, `/healthz` and `/readyz` are served, if they are.
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics_address
    }

    pub fn manager(&self) -> &Arc<VolumeManager> {
        &self.manager
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// What the start-up reload found.
    pub fn resumed(&self) -> ResumeSummary {
        self.resumed
    }

    /// What taking over the Go driver's volumes at start did.
    pub fn adopted(&self) -> AdoptionSummary {
        self.adopted
    }

    /// Stops serving. Mounts and records stay, exactly as after a crash, so a restarted driver
    /// picks them up.
    pub async fn stop(mut self) -> Result<(), DriverError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.renewals.abort();
        if let Some(endpoint) = &self.endpoint {
            endpoint.abort();
        }
        let served = (&mut self.server).await;
        let _ = std::fs::remove_file(&self.socket_path);
        // What the pods should still hear (well within a pod's default 30 s termination grace).
        if !self.manager.flush_events(EVENT_FLUSH_LIMIT).await {
            tracing::warn!(
                "pod Events still queued after {EVENT_FLUSH_LIMIT:?}; stopping without them"
            );
        }
        match served {
            Ok(result) => Ok(result?),
            Err(join) => Err(DriverError::Io {
                context: "server task".into(),
                source: std::io::Error::other(join.to_string()),
            }),
        }
    }

    /// Serves until `signal` completes, then stops.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), DriverError> {
        signal.await;
        self.stop().await
    }
}

/// How long stopping waits for queued pod Events to be written.
const EVENT_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for RunningDriver {
    fn drop(&mut self) {
        self.renewals.abort();
        self.server.abort();
        if let Some(endpoint) = &self.endpoint {
            endpoint.abort();
        }
    }
}

/// What [`build_issuer`] sets up: the issuer, where pod Events go, and the API connection when
/// there is a cluster.
pub struct IssuerParts {
    pub issuer: Arc<dyn Issuer>,
    pub events: Arc<dyn PodEvents>,
    pub connection: Option<KubeConnection>,
}

/// Builds the issuer the configuration asks for, and where pod events go with it.
pub async fn build_issuer(config: &DriverConfig) -> Result<IssuerParts, DriverError> {
    match config.issuer_backend {
        IssuerBackend::CertManager => {
            let connection = KubeConnection::connect(&config.kube).await?;
            tracing::info!(
                api_server = %connection.cluster_url(),
                qps = connection.budget().requests().qps(),
                burst = connection.budget().requests().burst(),
                event_qps = connection.budget().events().qps(),
                event_burst = connection.budget().events().burst(),
                use_token_request = config.cert_manager.use_token_request,
                "using cert-manager CertificateRequests"
            );
            let events = KubeEvents::start(
                connection.clone(),
                config.driver_name.clone(),
                format!("{}/{}", config.driver_name, config.node_id),
            );
            let issuer = CertManagerIssuer::start(
                connection.clone(),
                &config.node_id,
                config.cert_manager.clone(),
            );
            Ok(IssuerParts {
                issuer: Arc::new(issuer),
                events: Arc::new(events),
                connection: Some(connection),
            })
        }
        IssuerBackend::LocalCa => Ok(IssuerParts {
            issuer: Arc::new(LocalCa::load_or_create(&config.local_ca_dir)?),
            events: Arc::new(NoEvents),
            connection: None,
        }),
    }
}

/// With readiness gates: one watch of this node's pods, which the gates are judged on.
fn start_pod_watch(
    config: &DriverConfig,
    connection: Option<&KubeConnection>,
) -> Result<Option<Readiness>, DriverError> {
    if config.readiness_gates.is_empty() {
        return Ok(None);
    }
    let Some(connection) = connection else {
        return Err(DriverError::Config(
            "--pod-readiness-gate judges the pod as the API server has it, so it needs a cluster: \
             use --issuer-backend cert-manager"
                .into(),
        ));
    };
    let pods = PodWatch::new();
    tokio::spawn(Arc::clone(&pods).run_watch(connection.client(), config.node_id.clone()));
    let gates: Vec<String> = config.readiness_gates.iter().map(Gate::to_string).collect();
    tracing::info!(gates = %gates.join(","), "pod readiness gates in force");
    Ok(Some(Readiness {
        gates: config.readiness_gates.clone(),
        backoff: config.gate_backoff,
        pods,
    }))
}

/// Starts the driver: issuer, data root, reload of existing volumes, renewal loop, gRPC socket.
pub async fn start(config: DriverConfig) -> Result<RunningDriver, DriverError> {
    start_with(config, None).await
}

/// Starts csi-driver-spiffe's node plugin: the driver with SPIFFE requests (built by `spiffe`,
/// sent to its active issuer), the runtime issuance ConfigMap's watch, and the CA bundle's.
pub async fn start_spiffe(
    config: DriverConfig,
    spiffe: Arc<SpiffeRequests>,
) -> Result<RunningDriver, DriverError> {
    if config.issuer_backend != IssuerBackend::CertManager {
        return Err(DriverError::Config(
            "the SPIFFE node plugin issues through cert-manager only".into(),
        ));
    }
    start_with(config, Some(spiffe)).await
}

async fn start_with(
    config: DriverConfig,
    spiffe: Option<Arc<SpiffeRequests>>,
) -> Result<RunningDriver, DriverError> {
    let IssuerParts {
        issuer,
        events,
        connection,
    } = build_issuer(&config).await?;
    let (issuer, requests): (Arc<dyn Issuer>, RequestMode) = match &spiffe {
        Some(spiffe) => {
            if let (Some((namespace, name)), Some(connection)) =
                (spiffe.runtime_config_map(), connection.as_ref())
            {
                tokio::spawn(runtime_config::run_watch(
                    Arc::clone(spiffe.issuers()),
                    connection.client(),
                    namespace.clone(),
                    name.clone(),
                ));
            }
            (
                Arc::new(SpiffeIssuer::new(issuer, Arc::clone(spiffe))),
                RequestMode::Spiffe(Arc::clone(spiffe)),
            )
        }
        None => (issuer, RequestMode::CsiDriver),
    };
    let readiness = start_pod_watch(&config, connection.as_ref())?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_root)
        .map_err(io_error(format!(
            "creating data root {}",
            config.data_root.display()
        )))?;
    if config.data_root.starts_with("/tmp") {
        tracing::warn!(
            data_root = %config.data_root.display(),
            "data root is under /tmp, which systemd-tmpfiles may wipe; volumes could be lost on restart"
        );
    }
    let store = StateStore::open(&config.data_root).map_err(io_error(format!(
        "opening state in {}",
        config.data_root.display()
    )))?;
    let mounter: Arc<dyn Mounter> = match config.mount_mode {
        MountMode::Tmpfs => Arc::new(TmpfsMounter),
        MountMode::PlainDirectories => Arc::new(PlainDirectoryMounter),
    };
    let metrics = Arc::new(Metrics::new(&config.node_id));
    // Started before the volumes are reloaded, so its keys are being made while they are.
    let key_pool = Arc::new(
        KeyPool::start(config.key_pool_size)
            .map_err(io_error("starting the key pool's refill thread"))?,
    );
    let manager = VolumeManager::new(
        ManagerConfig {
            volume_size_bytes: config.volume_size_bytes,
            renewal_concurrency: config.renewal_concurrency,
            backoff: config.renewal_backoff,
            continue_on_not_ready: config.continue_on_not_ready,
            strict_attributes: config.strict_attributes,
            default_duration: config.default_duration,
            csi_lib_root: config.adopt_csi_lib_data_root.clone(),
            publish_in_csi_lib_layout: config.publish_in_csi_lib_layout,
            readiness,
            key_pool,
            requests,
        },
        issuer,
        mounter,
        store,
        events,
        Arc::clone(&metrics),
    );
    // Reading 10,000 records and certificates is file work: on the blocking pool.
    let resuming = Arc::clone(&manager);
    let resumed = tokio::task::spawn_blocking(move || resuming.resume())
        .await
        .map_err(|e| io_error("reloading volumes")(std::io::Error::other(e.to_string())))?
        .map_err(io_error("reloading volumes from the data root"))?;
    tracing::info!(
        resumed = resumed.resumed,
        cleaned_up = resumed.cleaned_up,
        failed = resumed.failed,
        "volumes reloaded"
    );
    let adopted = match &config.adopt_csi_lib_data_root {
        Some(root) => {
            let root = CsiLibRoot::new(root);
            let adopting = Arc::clone(&manager);
            let scanned = root.clone();
            let adopted = tokio::task::spawn_blocking(move || adopting.adopt(&scanned))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            // Never fatal: the driver serves its own volumes whatever the Go driver left.
            match adopted {
                Ok(summary) => {
                    tracing::info!(
                        csi_lib_data_root = %root.path().display(),
                        adopted = summary.adopted,
                        not_renewed = summary.not_renewed,
                        cleaned_up = summary.cleaned_up,
                        left_alone = summary.left_alone,
                        unreadable = summary.unreadable,
                        "took over the Go driver's volumes"
                    );
                    summary
                }
                Err(error) => {
                    tracing::error!(csi_lib_data_root = %root.path().display(), %error, "cannot read the Go driver's data root; its volumes are not adopted");
                    AdoptionSummary::default()
                }
            }
        }
        None => AdoptionSummary::default(),
    };
    if let Some(bundle) = spiffe.as_ref().and_then(|spiffe| spiffe.ca_bundle()) {
        let ca_file = spiffe
            .as_ref()
            .map(|spiffe| spiffe.template().files.ca.clone())
            .unwrap_or_default();
        let rewriting = Arc::clone(&manager);
        let watched = Arc::clone(bundle);
        let interval = spiffe
            .as_ref()
            .map_or(ca_bundle::POLL_INTERVAL, |spiffe| spiffe.ca_poll_interval());
        tokio::spawn(Arc::clone(bundle).watch(interval, move || {
            let rewriting = Arc::clone(&rewriting);
            let watched = Arc::clone(&watched);
            let ca_file = ca_file.clone();
            async move {
                let summary = rewriting.rewrite_ca_files(&ca_file, &watched.pem()).await;
                tracing::info!(?summary, "updated root CA files on managed volumes");
            }
        }));
    }
    let listener = server::bind(&config.socket_path).map_err(io_error(format!(
        "binding {}",
        config.socket_path.display()
    )))?;
    let renewals = manager.spawn_renewal_loop();
    // Lives as long as the process, as the pod watch does.
    let _gate_loop = manager.spawn_gate_loop();
    let identity = IdentityService {
        driver_name: config.driver_name.clone(),
        data_root: config.data_root.clone(),
    };
    let node = NodeService {
        node_id: config.node_id.clone(),
        max_volumes_per_node: config.max_volumes_per_node,
        manager: Arc::clone(&manager),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(
        listener,
        identity,
        node,
        Arc::clone(&metrics),
        async move {
            let _ = stopped.await;
        },
    ));
    let (endpoint, metrics_address) = match config.metrics_address {
        Some(address) => {
            let listener = endpoints::bind(address)
                .await
                .map_err(io_error(format!("binding the metrics endpoint {address}")))?;
            let bound = listener.local_addr().ok();
            let endpoint = Arc::new(endpoints::Endpoint {
                metrics: Arc::clone(&metrics),
                manager: Arc::clone(&manager),
                socket_path: config.socket_path.clone(),
                data_root: config.data_root.clone(),
            });
            tracing::info!(address = ?bound, "serving /metrics, /healthz and /readyz");
            (
                Some(tokio::spawn(endpoints::serve(listener, endpoint))),
                bound,
            )
        }
        None => (None, None),
    };
    tracing::info!(
        driver = %config.driver_name,
        node_id = %config.node_id,
        socket = %config.socket_path.display(),
        issuer_backend = manager.issuer_backend(),
        volumes = manager.mounter_kind(),
        "driver listening"
    );
    Ok(RunningDriver {
        manager,
        server,
        renewals,
        stop: Some(stop),
        socket_path: config.socket_path,
        resumed,
        adopted,
        endpoint,
        metrics_address,
    })
}
