//! `cert-manager-csi-driver spiffe`'s flags, named and defaulted as upstream's csi-driver-spiffe
//! node plugin names them (plus this driver's own node flags where they make sense).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Args};

use super::SpiffeRequests;
use super::ca_bundle::CaBundle;
use super::request::{RequestTemplate, parse_annotations, sanitize_annotations};
use crate::attributes::{FileNames, IssuerRef, check_file_name, parse_go_duration};
use crate::driver::{DriverConfig, IssuerBackend, MountMode};
use crate::issuer::cert_manager::CertManagerSettings;
use crate::kubernetes::KubeSettings;
use crate::spiffe::id::TrustDomain;

/// The data root when `--data-root` is not given: not the main driver's, so both can run on one
/// node (upstream csi-driver-spiffe #41).
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/cert-manager-csi-driver-spiffe";

#[derive(Debug, Args)]
pub struct SpiffeArgs {
    /// The name of the CSI driver, as installed in Kubernetes.
    #[arg(long, default_value = "spiffe.csi.cert-manager.io")]
    pub csi_driver_name: String,

    /// Name of the node the driver is running on.
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,

    /// Path to the unix socket used to listen for gRPC requests (`unix:///plugin/csi.sock`;
    /// upstream's `unix://plugin/csi.sock` is taken relative to the working directory).
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix:///plugin/csi.sock")]
    pub endpoint: String,

    /// The trust domain that will be requested for on created CertificateRequests.
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,

    /// The duration that created CertificateRequests will use.
    #[arg(long, default_value = "1h", value_parser = parse_lifetime)]
    pub certificate_request_duration: Duration,

    /// Name of the issuer that CertificateRequests will be created for (empty: none; then the
    /// runtime issuance ConfigMap is required).
    #[arg(long, default_value = "my-spiffe-ca")]
    pub issuer_name: String,

    /// Kind of the issuer that CertificateRequests will be created for.
    #[arg(long, default_value = "ClusterIssuer")]
    pub issuer_kind: String,

    /// Group of the issuer that CertificateRequests will be created for.
    #[arg(long, default_value = "cert-manager.io")]
    pub issuer_group: String,

    /// Name of a ConfigMap to watch at runtime for issuer details. If such a ConfigMap is found,
    /// overrides issuer-name, issuer-kind and issuer-group.
    #[arg(long, default_value = "")]
    pub runtime_issuance_config_map_name: String,

    /// Namespace for ConfigMap to be watched at runtime for issuer details.
    #[arg(long, default_value = "")]
    pub runtime_issuance_config_map_namespace: String,

    /// Comma-separated list of extra annotations to add to certificate requests e.g
    /// '--extra-certificate-request-annotations=hello=world,test=annotation'. Keys starting with
    /// spiffe.csi.cert-manager.io are dropped (logged).
    #[arg(long, default_value = "", action = ArgAction::Append)]
    pub extra_certificate_request_annotations: Vec<String>,

    /// The file name that signed certificates will be written to within the pod's volume directory.
    #[arg(long, default_value = "tls.crt")]
    pub file_name_certificate: String,

    /// The file name that the certificate's private key will be written to within the pod's
    /// volume directory.
    #[arg(long, default_value = "tls.key")]
    pub file_name_key: String,

    /// The file name that the CA certificates will be written to within the pod's volume directory.
    #[arg(long, default_value = "ca.crt")]
    pub file_name_ca: String,

    /// File path that is read by the driver and written to all managed volumes as --file-name-ca
    /// (rewritten in every volume when it changes). Empty: the CA file holds the issuer's CA.
    #[arg(long, default_value = "")]
    pub source_ca_bundle: String,

    /// Create CertificateRequests with the driver's own service account instead of the pod's
    /// token (the approver then needs --use-own-service-account and --driver-service-account).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub use_own_service_account: bool,

    /// Path to a kubeconfig; in-cluster configuration when not given.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// Requests per second to the API server (0 = the driver's default budget).
    #[arg(long, default_value_t = 0.0)]
    pub kube_api_qps: f64,

    /// Burst above --kube-api-qps (0 = the driver's default).
    #[arg(long, default_value_t = 0)]
    pub kube_api_burst: u32,

    /// Where to serve /metrics, /healthz and /readyz (`:9402`); `0` = off (upstream's node plugin
    /// has none).
    #[arg(long, default_value = "0")]
    pub metrics_bind_address: String,

    /// How long a publish waits for its CertificateRequest to be signed.
    #[arg(long, default_value = "90s", value_parser = parse_timeout)]
    pub publish_timeout: Duration,

    /// How many renewals may run at once.
    #[arg(long, default_value_t = 16)]
    pub max_concurrent_renewals: usize,

    /// Size cap of each volume's tmpfs.
    #[arg(long, default_value = "1Mi", value_parser = crate::cli::parse_size)]
    pub volume_size_limit: u64,

    /// Maximum volumes per node reported to kubelet (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub max_volumes_per_node: i64,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    parse_go_duration(text).map_err(|reason| format!("{text:?} {reason}"))
}

fn parse_lifetime(text: &str) -> Result<Duration, String> {
    match parse_timeout(text)? {
        lifetime if lifetime < Duration::from_secs(1) => {
            Err(format!("{text:?} must be at least 1s"))
        }
        lifetime => Ok(lifetime),
    }
}

impl SpiffeArgs {
    /// The static issuer: all three flags, or none (upstream's checks and messages).
    fn static_issuer(&self) -> Result<Option<IssuerRef>, String> {
        let fields = [
            (&self.issuer_name, "Name"),
            (&self.issuer_kind, "Kind"),
            (&self.issuer_group, "Group"),
        ];
        if fields.iter().all(|(value, _)| value.is_empty()) {
            return Ok(None);
        }
        let missing: Vec<String> = fields
            .iter()
            .filter(|(value, _)| value.is_empty())
            .map(|(_, field)| {
                format!("issuerRef.{field} is a required field if any field is set for issuerRef")
            })
            .collect();
        if !missing.is_empty() {
            return Err(missing.join("\n"));
        }
        Ok(Some(IssuerRef {
            name: self.issuer_name.clone(),
            kind: self.issuer_kind.clone(),
            group: self.issuer_group.clone(),
        }))
    }

    /// The driver's configuration and the SPIFFE request state these flags describe.
    /// `data_root` is the global `--data-root`, `None` when it was not given.
    pub fn to_config(
        &self,
        data_root: Option<PathBuf>,
    ) -> Result<(DriverConfig, SpiffeRequests), String> {
        let node_id = self
            .node_id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or("--node-id (or NODE_ID) is required")?;
        let trust_domain = TrustDomain::new(&self.trust_domain)
            .map_err(|error| format!("--trust-domain={:?}: {error}", self.trust_domain))?;
        let static_issuer = self.static_issuer()?;
        let runtime_config_map = match (
            self.runtime_issuance_config_map_namespace.as_str(),
            self.runtime_issuance_config_map_name.as_str(),
        ) {
            ("", "") => None,
            ("", _) | (_, "") => {
                return Err("--runtime-issuance-config-map-name and \
                     --runtime-issuance-config-map-namespace go together"
                    .into());
            }
            (namespace, name) => Some((namespace.to_string(), name.to_string())),
        };
        if static_issuer.is_none() && runtime_config_map.is_none() {
            return Err(
                "runtime issuance configuration is required if no issuer is provided at startup"
                    .into(),
            );
        }
        let files = FileNames {
            certificate: self.file_name_certificate.clone(),
            private_key: self.file_name_key.clone(),
            ca: self.file_name_ca.clone(),
        };
        for (flag, name) in [
            ("--file-name-certificate", &files.certificate),
            ("--file-name-key", &files.private_key),
            ("--file-name-ca", &files.ca),
        ] {
            check_file_name(name).map_err(|reason| format!("{flag}={name:?} {reason}"))?;
        }
        if files.certificate == files.private_key
            || files.certificate == files.ca
            || files.private_key == files.ca
        {
            return Err(
                "--file-name-certificate, --file-name-key and --file-name-ca must differ".into(),
            );
        }
        let mut extra = BTreeMap::new();
        for text in &self.extra_certificate_request_annotations {
            extra.extend(
                parse_annotations(text)
                    .map_err(|e| format!("--extra-certificate-request-annotations: {e}"))?,
            );
        }
        let (annotations, refused) = sanitize_annotations(extra);
        for key in refused {
            tracing::error!(
                annotation = %key,
                "custom annotation {key:?} was not valid; must not begin with spiffe.csi.cert-manager.io; some custom annotations were removed"
            );
        }
        let ca_bundle = match self.source_ca_bundle.as_str() {
            "" => None,
            path => Some(Arc::new(CaBundle::load(std::path::Path::new(path))?)),
        };
        let requests = SpiffeRequests::new(
            RequestTemplate {
                trust_domain,
                duration: self.certificate_request_duration,
                files,
                annotations,
            },
            static_issuer,
            runtime_config_map,
            ca_bundle,
        );
        let data_root = data_root.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT));
        let data_root = std::path::absolute(&data_root)
            .map_err(|error| format!("--data-root={}: {error}", data_root.display()))?;
        let config = DriverConfig {
            node_id,
            driver_name: self.csi_driver_name.clone(),
            socket_path: crate::csi::server::parse_endpoint(&self.endpoint)?,
            local_ca_dir: data_root.join("local-ca"),
            data_root,
            issuer_backend: IssuerBackend::CertManager,
            max_volumes_per_node: self.max_volumes_per_node,
            volume_size_bytes: self.volume_size_limit,
            renewal_concurrency: self.max_concurrent_renewals,
            // Every SPIFFE key is made at its issuance, as upstream's are.
            key_pool_size: 0,
            renewal_backoff: crate::renewal::Backoff::default(),
            continue_on_not_ready: false,
            metrics_address: crate::endpoints::parse_bind_address(&self.metrics_bind_address)
                .map_err(|e| format!("--metrics-bind-address: {e}"))?,
            mount_mode: MountMode::Tmpfs,
            strict_attributes: true,
            kube: KubeSettings {
                kubeconfig: self.kubeconfig.clone(),
                qps: self.kube_api_qps,
                burst: self.kube_api_burst,
            },
            cert_manager: CertManagerSettings {
                publish_timeout: self.publish_timeout,
                use_token_request: !self.use_own_service_account,
                ..CertManagerSettings::default()
            },
            default_duration: self.certificate_request_duration,
            adopt_csi_lib_data_root: None,
            publish_in_csi_lib_layout: false,
            readiness_gates: Vec::new(),
            gate_backoff: crate::pod_gates::GateBackoff::default(),
        };
        Ok((config, requests))
    }
}
