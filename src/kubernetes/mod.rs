//! The driver's connection to the Kubernetes API: where the configuration comes from, the
//! client-side rate limit, clients acting with a pod's own service-account token, and pod Events.
//! Used by the cert-manager issuer backend; the embedded CA needs none of it.

pub mod event_recorder;
pub mod pods;
pub mod rate_limit;
pub mod token;
mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};

pub use rate_limit::{ApiBudget, RateLimiter};
pub use token::ServiceAccountToken;
pub use transport::TransportError;

/// How to reach the API server (`--kubeconfig`, `--kube-api-qps`, `--kube-api-burst`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeSettings {
    /// An explicit kubeconfig file; otherwise the in-cluster service account, otherwise
    /// `KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Requests per second, Events included (they get [`rate_limit::EVENT_SHARE`] of it); 0 picks
    /// [`rate_limit::DEFAULT_QPS`].
    pub qps: f64,
    /// Requests allowed at once above the rate, split likewise; 0 picks
    /// [`rate_limit::DEFAULT_BURST`].
    pub burst: u32,
}

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum KubeSetupError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error(
        "no Kubernetes configuration found: not in a cluster (no service account), and neither \
         --kubeconfig nor KUBECONFIG nor ~/.kube/config gave one ({0})"
    )]
    NotFound(String),
    #[error("building the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    #[error("building the connection to the Kubernetes API: {0}")]
    Transport(#[from] TransportError),
}

/// A configured API connection shared by everything that talks to the API server.
#[derive(Clone)]
pub struct KubeConnection {
    client: kube::Client,
    /// Kept to build clients that present a pod's token instead of the driver's.
    config: kube::Config,
    /// The connection pool for pod-token clients; `None` where kube's own client is used.
    pod_token_http: Option<transport::HttpClient>,
    budget: Arc<ApiBudget>,
}

impl std::fmt::Debug for KubeConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeConnection")
            .field("cluster_url", &self.config.cluster_url.to_string())
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl KubeConnection {
    /// Loads the configuration: `--kubeconfig` if given, else the in-cluster service account,
    /// else `KUBECONFIG` / `~/.kube/config`.
    pub async fn connect(settings: &KubeSettings) -> Result<KubeConnection, KubeSetupError> {
        let mut config = match &settings.kubeconfig {
            Some(path) => {
                let kubeconfig_error = |source| KubeSetupError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                };
                let file = Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
                kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                    .await
                    .map_err(kubeconfig_error)?
            }
            None => match kube::Config::incluster() {
                Ok(config) => config,
                Err(_) => kube::Config::infer()
                    .await
                    .map_err(|e| KubeSetupError::NotFound(e.to_string()))?,
            },
        };
        // Fail a dead connection quickly so the caller's own retry and deadline decide.
        config.connect_timeout = Some(Duration::from_secs(10));
        // No retries inside the client: they would ignore the publish deadline and hide a lost
        // answer to a create. The callers retry transient failures within their deadline.
        config.default_retry = false;
        // Named in the API server's audit log and managedFields (else `manager: unknown`).
        config
            .headers
            .push((hyper::header::USER_AGENT, user_agent("driver")));
        let (client, pod_token_http) = if config.proxy_url.is_some() {
            // kube's own client knows the proxy protocols (HTTP CONNECT, SOCKS5); it speaks
            // HTTP/1.1 only, one connection per request in flight.
            (kube::Client::try_from(config.clone())?, None)
        } else {
            let http = transport::http_client(&config)?;
            // Pod-token requests share the driver's connections unless those present the
            // driver's client certificate, which would authenticate them as the driver.
            let pod_token_http = if transport::presents_client_certificate(&config) {
                transport::http_client(&without_identity(&config))?
            } else {
                http.clone()
            };
            (transport::kube_client(&config, http)?, Some(pod_token_http))
        };
        Ok(KubeConnection {
            client,
            config,
            pod_token_http,
            budget: Arc::new(ApiBudget::new(settings.qps, settings.burst)),
        })
    }

    /// The client acting as the driver itself.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A client that presents `token` (a pod's service-account token) instead of the driver's
    /// credentials, to the same API server with the same trust roots.
    pub fn client_with_token(
        &self,
        token: &ServiceAccountToken,
    ) -> Result<kube::Client, kube::Error> {
        let mut config = without_identity(&self.config);
        config.auth_info.token = Some(token.secret().clone());
        config
            .headers
            .retain(|(name, _)| name != hyper::header::USER_AGENT);
        config
            .headers
            .push((hyper::header::USER_AGENT, user_agent("pod token")));
        match &self.pod_token_http {
            Some(http) => transport::kube_client(&config, http.clone()),
            None => kube::Client::try_from(config),
        }
    }

    /// Waits for the client-side rate limit. Every call the driver makes, but Event writes
    /// ([`KubeConnection::throttle_event`]) and the long-running watches, goes through this:
    /// CertificateRequest creates and deletes.
    pub async fn throttle(&self) {
        self.budget.requests().acquire().await;
    }

    /// Waits for the Events' share of the rate limit, which nothing else draws on: a backlog of
    /// Events never delays a CertificateRequest.
    pub async fn throttle_event(&self) {
        self.budget.events().acquire().await;
    }

    /// Both shares of the configured limit.
    pub fn budget(&self) -> &ApiBudget {
        &self.budget
    }

    pub fn cluster_url(&self) -> String {
        self.config.cluster_url.to_string()
    }
}

/// `config` with none of the driver's credentials: no token, no client certificate, no exec
/// plugin, no impersonation.
fn without_identity(config: &kube::Config) -> kube::Config {
    let mut config = config.clone();
    config.auth_info = AuthInfo::default();
    config
}

/// `cert-manager-csi-driver/<version> (<as whom>)`: the API server takes the part before the `/`
/// as the manager of what this client writes.
fn user_agent(acting_as: &str) -> hyper::header::HeaderValue {
    let agent = format!(
        "cert-manager-csi-driver/{} ({acting_as})",
        env!("CARGO_PKG_VERSION")
    );
    hyper::header::HeaderValue::from_str(&agent)
        .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("cert-manager-csi-driver"))
}

/// An API error for people: `403 Forbidden: <the API server's message>`, said once (kube's own
/// `Display` appends the whole status object's `Debug` to its message, which then reaches
/// `kubectl describe pod` twice and cut off).
pub fn describe_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() {
                String::new()
            } else {
                format!(" {}", status.reason)
            };
            format!("{}{reason}: {}", status.code, status.message)
        }
        other => other.to_string(),
    }
}

/// The HTTP status of an API error, if the server answered with one.
pub fn api_status(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Whether the API server refused a create because the namespace is being deleted (its
/// NamespaceLifecycle admission: 403 with the cause `NamespaceTerminating`).
pub fn is_namespace_terminating(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => {
            status.code == 403
                && status.details.as_ref().is_some_and(|details| {
                    details
                        .causes
                        .iter()
                        .any(|cause| cause.reason == "NamespaceTerminating")
                })
        }
        _ => false,
    }
}

/// How long the API server asked the client to wait before trying again (a 429's
/// `retryAfterSeconds`), if it did.
pub fn retry_after(error: &kube::Error) -> Option<Duration> {
    match error {
        kube::Error::Api(status) => status
            .details
            .as_ref()
            .map(|details| details.retry_after_seconds)
            .filter(|seconds| *seconds > 0)
            .map(|seconds| Duration::from_secs(u64::from(seconds))),
        _ => None,
    }
}

/// Whether an API call that failed this way may succeed if simply tried again.
pub fn is_transient(error: &kube::Error) -> bool {
    match api_status(error) {
        Some(code) => code == 429 || code >= 500,
        // No answer at all: connection refused, reset, timed out.
        None => matches!(
            error,
            kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_)
        ),
    }
}
