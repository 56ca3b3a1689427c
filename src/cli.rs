//! Command-line flags (named as upstream's) and the binary's entry points.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::attributes::duration::parse_go_duration;
use crate::driver::{self, DriverConfig, IssuerBackend, MountMode};
use crate::issuer::cert_manager::CertManagerSettings;
use crate::kubernetes::KubeSettings;
use crate::pod_gates::{self, Gate, GateBackoff};

/// Where the driver keeps what it needs to resume after a restart. Not under /tmp, which
/// systemd-tmpfiles cleans (upstream csi-lib #18).
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/cert-manager-csi-driver";

#[derive(Debug, Parser)]
#[command(
    name = "cert-manager-csi-driver",
    version,
    about = "cert-manager CSI driver: mounts per-pod TLS certificates as CSI ephemeral inline volumes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub driver: DriverArgs,

    /// Log verbosity like upstream's klog levels: 0-1 info, 2-4 debug, 5+ trace. RUST_LOG, when
    /// set, wins.
    #[arg(short = 'v', long = "log-level", global = true, default_value_t = 1)]
    pub log_level: u8,

    /// Log line format: `text` for people, `json` for log collectors (one object per line).
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the driver on the embedded CA, act as kubelet for a sample pod, and show what it mounts,
    /// one rotation and the cleanup. No cluster needed.
    Demo(DemoArgs),
    /// Print every volume the driver manages on this node (pod, issuer, DNS names, expiry, next
    /// renewal, last error), read from --data-root. Works while the driver is down.
    Status(StatusArgs),
    /// Run csi-driver-spiffe's approver: approve the CertificateRequests for the SPIFFE issuer
    /// that ask for exactly their requester's SPIFFE ID, deny every other one (upstream's
    /// csi-driver-spiffe-approver; its flags).
    SpiffeApprover(Box<SpiffeApproverArgs>),
    /// Run csi-driver-spiffe's node plugin: mount each pod an X.509 SVID for its service account
    /// (`spiffe://<trust domain>/ns/<namespace>/sa/<service account>`), requested from cert-manager
    /// as the pod (upstream's csi-driver-spiffe; its flags).
    // A repeated flag's last value wins, as with upstream's pflag.
    #[command(args_override_self = true)]
    Spiffe(Box<crate::spiffe::node::args::SpiffeArgs>),
}

/// `spiffe-approver`'s flags, named (and defaulted) as upstream's approver names them.
#[derive(Debug, Args)]
pub struct SpiffeApproverArgs {
    /// The trust domain every approved SPIFFE ID must be in.
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,

    /// The one spec.duration allowed (Go duration syntax).
    #[arg(long, default_value = "1h", value_parser = parse_lifetime)]
    pub certificate_request_duration: std::time::Duration,

    /// Name of the issuer the driver requests from: only requests for it are judged.
    #[arg(long, default_value = "my-spiffe-ca")]
    pub issuer_name: String,

    /// Kind of that issuer.
    #[arg(long, default_value = "ClusterIssuer")]
    pub issuer_kind: String,

    /// Group of that issuer.
    #[arg(long, default_value = "cert-manager.io")]
    pub issuer_group: String,

    /// Requests are made by the driver's own service account (--driver-service-account), not
    /// by the pods': approve those for any SPIFFE ID of the trust domain in the request's namespace.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub use_own_service_account: bool,

    /// The driver's full username, e.g. `system:serviceaccount:cert-manager:cert-manager-csi-driver-spiffe`.
    /// Required with --use-own-service-account.
    #[arg(long, default_value = "")]
    pub driver_service_account: String,

    /// Also approve requests for other issuers (standing in for cert-manager's own approver),
    /// except those that ask for a SPIFFE identity.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub auto_approve_non_spiffe: bool,

    /// The CSI driver's name; the leader election Lease is named after it, as upstream's is.
    #[arg(long, default_value = "spiffe.csi.cert-manager.io")]
    pub csi_driver_name: String,

    /// Namespace of the leader election Lease.
    #[arg(long, default_value = "cert-manager")]
    pub leader_election_namespace: String,

    /// How long a leader's Lease is valid without renewal (not an upstream flag).
    #[arg(long, default_value = "15s", value_parser = parse_timeout)]
    pub leader_election_lease_duration: std::time::Duration,

    /// How long a leader keeps acting without a successful renewal (not an upstream flag).
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub leader_election_renew_deadline: std::time::Duration,

    /// How often the Lease is tried or renewed (not an upstream flag).
    #[arg(long, default_value = "2s", value_parser = parse_timeout)]
    pub leader_election_retry_period: std::time::Duration,

    /// Where to serve /metrics (`:9402`, `127.0.0.1:9402`); `0` = off.
    #[arg(long, default_value = ":9402")]
    pub metrics_bind_address: String,

    /// Where to serve the readiness probe /readyz; `0` = off.
    #[arg(long, default_value = ":6060")]
    pub readiness_probe_bind_address: String,

    /// kubeconfig file [default: the in-cluster service account, else KUBECONFIG or ~/.kube/config].
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// Client-side limit on Kubernetes API requests per second (0 = 50).
    #[arg(long, default_value_t = 0.0)]
    pub kube_api_qps: f64,

    /// Requests allowed in a burst above --kube-api-qps (0 = 100).
    #[arg(long, default_value_t = 0)]
    pub kube_api_burst: u32,

    /// Name of a ConfigMap to watch at runtime for issuer details (keys issuer-name,
    /// issuer-kind, issuer-group). While it exists and is valid, the requests judged are those
    /// to its issuer instead of --issuer-name/-kind/-group's.
    #[arg(long, default_value = "")]
    pub runtime_issuance_config_map_name: String,

    /// Namespace of --runtime-issuance-config-map-name.
    #[arg(long, default_value = "")]
    pub runtime_issuance_config_map_namespace: String,
}

impl SpiffeApproverArgs {
    /// The approver configuration these flags describe.
    pub fn to_config(&self) -> Result<crate::spiffe::approver::ApproverConfig, String> {
        use crate::spiffe::approver::evaluate::{IssuerRef, Policy};
        use crate::spiffe::approver::leader::{LeaseSettings, default_identity};
        let runtime_config_map = match (
            self.runtime_issuance_config_map_namespace.as_str(),
            self.runtime_issuance_config_map_name.as_str(),
        ) {
            ("", "") => None,
            (namespace, name) if !namespace.is_empty() && !name.is_empty() => {
                Some((namespace.to_string(), name.to_string()))
            }
            _ => {
                return Err("--runtime-issuance-config-map-name and \
                            --runtime-issuance-config-map-namespace go together"
                    .into());
            }
        };
        let trust_domain = crate::spiffe::id::TrustDomain::new(&self.trust_domain)
            .map_err(|e| format!("--trust-domain: {e}"))?;
        if self.issuer_name.is_empty() && runtime_config_map.is_none() {
            return Err(
                "--issuer-name must not be empty unless --runtime-issuance-config-map-name/\
                 -namespace name a ConfigMap that gives the issuer"
                    .into(),
            );
        }
        let static_issuer = (!self.issuer_name.is_empty()).then(|| crate::attributes::IssuerRef {
            name: self.issuer_name.clone(),
            kind: self.issuer_kind.clone(),
            group: self.issuer_group.clone(),
        });
        let driver_service_account =
            Some(self.driver_service_account.clone()).filter(|account| !account.is_empty());
        if self.use_own_service_account {
            let account = driver_service_account.as_deref().unwrap_or_default();
            let parts: Vec<&str> = account.split(':').collect();
            if !matches!(parts.as_slice(), ["system", "serviceaccount", ns, name] if !ns.is_empty() && !name.is_empty())
            {
                return Err(format!(
                    "--use-own-service-account needs --driver-service-account as \
                     system:serviceaccount:<namespace>:<name>, got {account:?}"
                ));
            }
        }
        let lease = LeaseSettings {
            namespace: self.leader_election_namespace.clone(),
            name: self.csi_driver_name.clone(),
            identity: default_identity(),
            lease_duration: self.leader_election_lease_duration,
            renew_deadline: self.leader_election_renew_deadline,
            retry_period: self.leader_election_retry_period,
        };
        lease.validate()?;
        let address = |flag: &str, text: &str| {
            crate::endpoints::parse_bind_address(text).map_err(|e| format!("{flag}: {e}"))
        };
        Ok(crate::spiffe::approver::ApproverConfig {
            policy: Policy {
                trust_domain,
                certificate_request_duration: self.certificate_request_duration,
                issuer: IssuerRef::normalised(
                    &self.issuer_name,
                    &self.issuer_kind,
                    &self.issuer_group,
                ),
                use_own_service_account: self.use_own_service_account,
                driver_service_account,
                auto_approve_non_spiffe: self.auto_approve_non_spiffe,
            },
            static_issuer,
            runtime_config_map,
            lease,
            kube: KubeSettings {
                kubeconfig: self.kubeconfig.clone(),
                qps: self.kube_api_qps,
                burst: self.kube_api_burst,
            },
            metrics_address: address("--metrics-bind-address", &self.metrics_bind_address)?,
            readiness_address: address(
                "--readiness-probe-bind-address",
                &self.readiness_probe_bind_address,
            )?,
        })
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = StatusFormat::Table)]
    pub output: StatusFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's working directory (socket, state, CA) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// Use plain directories instead of tmpfs mounts even when mounting is possible.
    #[arg(long)]
    pub no_mount: bool,
}

#[derive(Debug, Args)]
pub struct DriverArgs {
    /// Name of the node this driver runs on (required to run the driver).
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,

    /// CSI endpoint, a unix socket.
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix:///plugin/csi.sock")]
    pub endpoint: String,

    /// Name the driver registers with kubelet.
    #[arg(long, default_value = "csi.cert-manager.io")]
    pub driver_name: String,

    /// Directory for the driver's own state (volume records; never key material).
    #[arg(long, global = true, default_value = DEFAULT_DATA_ROOT)]
    pub data_root: PathBuf,

    /// Where certificates come from.
    #[arg(long, value_enum, default_value_t = IssuerBackend::CertManager)]
    pub issuer_backend: IssuerBackend,

    /// Where the embedded CA keeps its key and certificate [default: <data-root>/local-ca].
    #[arg(long)]
    pub local_ca_dir: Option<PathBuf>,

    /// Reported to kubelet as the maximum number of volumes on this node (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub max_volumes_per_node: i64,

    /// Size cap of each volume's tmpfs (bytes, or with a Ki / Mi suffix).
    #[arg(long, default_value = "1Mi", value_parser = parse_size)]
    pub volume_size_limit: u64,

    /// How many renewals may run at the same time.
    #[arg(long, default_value_t = 16)]
    pub max_concurrent_renewals: usize,

    /// Private keys made ahead of time per kind in demand (RSA 2048 from the start), so a
    /// publish takes a finished key instead of waiting for one; 0 = off. Kept in memory only.
    #[arg(long, default_value_t = crate::keys::pool::DEFAULT_SIZE, value_parser = parse_key_pool_size)]
    pub key_pool_size: usize,

    /// Delay before retrying a failed renewal; doubles after each further failure.
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    pub renewal_backoff_initial: std::time::Duration,

    /// Longest delay between retries of a failed renewal.
    #[arg(long, default_value = "5m", value_parser = parse_timeout)]
    pub renewal_backoff_max: std::time::Duration,

    /// Fail volumes that carry unknown csi.cert-manager.io/* attributes (likely typos) instead of
    /// only warning about them.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub strict_attributes: bool,

    /// Defer a volume's issuance until its pod meets this gate (repeatable; all must pass):
    /// `pod-ip:any|ipv4|ipv6`, `pod-condition:<Type>[=<Status>]`, `pod-annotation:<key>`.
    /// Needs --continue-on-not-ready=true. Judged on one watch of this node's pods.
    #[arg(long, value_name = "TYPE:VALUE", action = ArgAction::Append)]
    pub pod_readiness_gate: Vec<String>,

    /// First re-check of a pod whose gates are pending, when no watch event woke it (the watch
    /// wakes a pending volume the moment its pod changes; this only bounds a missed event).
    #[arg(long, default_value = "1s", value_parser = parse_timeout)]
    pub gate_backoff_duration: std::time::Duration,

    /// Growth of that re-check interval.
    #[arg(long, default_value_t = 2.0)]
    pub gate_backoff_factor: f64,

    /// Random extra on each re-check interval, as a fraction of it.
    #[arg(long, default_value_t = 0.5)]
    pub gate_backoff_jitter: f64,

    /// Longest re-check interval (0 = no cap).
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub gate_backoff_cap: std::time::Duration,

    /// Where to serve /metrics, /healthz and /readyz (`:9402`, `127.0.0.1:9402`); `0` = off.
    #[arg(long, default_value = "0")]
    pub metrics_bind_address: String,

    /// Report a publish as done once the volume is mounted and issue in the background, instead of
    /// waiting for the certificate (for pods that wait for their files themselves).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub continue_on_not_ready: bool,

    /// kubeconfig file for the cert-manager backend [default: the in-cluster service account,
    /// else KUBECONFIG or ~/.kube/config].
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// Client-side limit on Kubernetes API requests per second (0 = 50), in total: pod Events
    /// get a fifth of it, so they never delay a CertificateRequest.
    #[arg(long, default_value_t = 0.0)]
    pub kube_api_qps: f64,

    /// Requests allowed in a burst above --kube-api-qps (0 = 100), split likewise.
    #[arg(long, default_value_t = 0)]
    pub kube_api_burst: u32,

    /// Create CertificateRequests with the pod's service-account token instead of the driver's
    /// (the CSIDriver must request tokens for the audience "").
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, default_value_t = false)]
    pub use_token_request: bool,

    /// How long a publish waits for its CertificateRequest to be signed before failing with the
    /// last reason seen (kubelet's retry resumes the same request). Go duration syntax.
    #[arg(long, default_value = "90s", value_parser = parse_timeout)]
    pub publish_timeout: std::time::Duration,

    /// CertificateRequests kept per volume, newest first; older ones are deleted.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub certificate_request_history: u32,

    /// Certificate lifetime for volumes without a `duration` attribute. 720h is what upstream
    /// documents; the Go driver's code leaves the field out, so cert-manager's 2160h applies there.
    #[arg(long, default_value = "720h", value_parser = parse_lifetime)]
    pub default_duration: std::time::Duration,

    /// The Go driver's (cert-manager/csi-lib) data root, e.g. the chart's `/csi-data-dir`:
    /// volumes it mounted are taken over at start (renewed in place, unmounted on unpublish).
    /// Relative paths are taken from the working directory, as the Go driver did.
    #[arg(long, value_name = "DIR")]
    pub adopt_csi_lib_data_root: Option<PathBuf>,

    /// Publish new volumes in the Go driver's layout under --adopt-csi-lib-data-root (its one
    /// shared tmpfs, a metadata.json per volume kept current), so that a rollback to the Go
    /// driver takes them over and renews them with no pod restarted. For the trial period of a
    /// migration; volumes then have no per-volume size cap.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set, default_value_t = false, requires = "adopt_csi_lib_data_root")]
    pub publish_in_csi_lib_layout: bool,
}

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    parse_go_duration(text).map_err(|reason| format!("{text:?} {reason}"))
}

/// A certificate lifetime: a Go duration of at least one second (certificates carry whole seconds).
fn parse_lifetime(text: &str) -> Result<std::time::Duration, String> {
    match parse_timeout(text)? {
        lifetime if lifetime < std::time::Duration::from_secs(1) => {
            Err(format!("{text:?} must be at least 1s"))
        }
        lifetime => Ok(lifetime),
    }
}

/// `1048576`, `512Ki`, `1Mi`.
/// `--key-pool-size`: bounded, so that a typo cannot ask for gigabytes of keys (each kind in
/// demand keeps this many).
fn parse_key_pool_size(text: &str) -> Result<usize, String> {
    let size: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of keys"))?;
    if size > crate::keys::pool::MAX_SIZE {
        return Err(format!(
            "{size} keys per kind is more than the {} allowed",
            crate::keys::pool::MAX_SIZE
        ));
    }
    Ok(size)
}

pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, factor) = if let Some(n) = text.strip_suffix("Ki") {
        (n, 1024)
    } else if let Some(n) = text.strip_suffix("Mi") {
        (n, 1024 * 1024)
    } else {
        (text, 1)
    };
    let value: u64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 1Mi, 512Ki, 1048576)"))?;
    if value == 0 {
        return Err("size must be larger than zero".into());
    }
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Sets up `tracing` for the binary.
pub fn init_logging(level: u8, format: LogFormat) {
    init_logging_with(log_filter(level), format);
}

/// The `tracing` filter for a `-v` level. The level is the driver's own; the libraries under it
/// (kube, hyper, rustls, tonic) stay at warnings whatever the level, so `-v=5` is the driver's
/// trace, not theirs. `RUST_LOG` replaces the whole filter, for when a library's own lines are
/// wanted (`RUST_LOG=warn,cert_manager_csi_driver=debug,kube=debug`).
pub fn log_filter(level: u8) -> &'static str {
    match level {
        0 | 1 => "warn,cert_manager_csi_driver=info",
        2..=4 => "warn,cert_manager_csi_driver=debug",
        _ => "warn,cert_manager_csi_driver=trace",
    }
}

fn init_logging_with(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // Colour codes only for a person at a terminal, never in files or log collectors.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

impl DriverArgs {
    /// The driver configuration these flags describe.
    pub fn to_config(&self) -> Result<DriverConfig, String> {
        let node_id = self
            .node_id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or("--node-id (or NODE_ID) is required")?;
        let readiness_gates = self
            .pod_readiness_gate
            .iter()
            .map(|spec| spec.parse::<Gate>())
            .collect::<Result<Vec<Gate>, String>>()?;
        pod_gates::check_flags(&readiness_gates, self.continue_on_not_ready)?;
        let gate_backoff = GateBackoff {
            initial: self.gate_backoff_duration,
            factor: self.gate_backoff_factor,
            jitter: self.gate_backoff_jitter,
            cap: self.gate_backoff_cap,
        };
        gate_backoff.validate()?;
        Ok(DriverConfig {
            readiness_gates,
            gate_backoff,
            node_id,
            driver_name: self.driver_name.clone(),
            socket_path: crate::csi::server::parse_endpoint(&self.endpoint)?,
            data_root: self.data_root.clone(),
            issuer_backend: self.issuer_backend,
            local_ca_dir: self
                .local_ca_dir
                .clone()
                .unwrap_or_else(|| self.data_root.join("local-ca")),
            max_volumes_per_node: self.max_volumes_per_node,
            volume_size_bytes: self.volume_size_limit,
            renewal_concurrency: self.max_concurrent_renewals,
            key_pool_size: self.key_pool_size,
            renewal_backoff: crate::renewal::Backoff {
                initial: self.renewal_backoff_initial,
                max: self.renewal_backoff_max,
            },
            mount_mode: MountMode::Tmpfs,
            strict_attributes: self.strict_attributes,
            continue_on_not_ready: self.continue_on_not_ready,
            metrics_address: crate::endpoints::parse_bind_address(&self.metrics_bind_address)
                .map_err(|e| format!("--metrics-bind-address: {e}"))?,
            kube: KubeSettings {
                kubeconfig: self.kubeconfig.clone(),
                qps: self.kube_api_qps,
                burst: self.kube_api_burst,
            },
            cert_manager: CertManagerSettings {
                publish_timeout: self.publish_timeout,
                history_limit: self.certificate_request_history as usize,
                use_token_request: self.use_token_request,
                ..CertManagerSettings::default()
            },
            default_duration: self.default_duration,
            adopt_csi_lib_data_root: match &self.adopt_csi_lib_data_root {
                Some(dir) => Some(std::path::absolute(dir).map_err(|error| {
                    format!("--adopt-csi-lib-data-root={}: {error}", dir.display())
                })?),
                None => None,
            },
            publish_in_csi_lib_layout: self.publish_in_csi_lib_layout,
        })
    }
}

/// The binary's `main`.
pub fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    // The driver's own process: what only start-up ran may be given back once it is quiet.
    crate::memory::allow_releasing_start_up_pages();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    // `--data-root` is global; the SPIFFE plugin has its own default.
    let data_root_given = matches!(
        matches
            .subcommand()
            .map_or(&matches, |(_, sub)| sub)
            .value_source("data_root"),
        Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
    );
    match (&cli.command, cli.log_level) {
        // The demo tells its own story on stdout; driver logs only when asked for with -v.
        (Some(Command::Demo(_)), 1) => init_logging_with("error", cli.log_format),
        (_, level) => init_logging(level, cli.log_format),
    }
    match cli.command {
        Some(Command::Demo(args)) => crate::demo::main(&args),
        Some(Command::Status(args)) => print_status(&cli.driver.data_root, args.output),
        Some(Command::SpiffeApprover(args)) => run_spiffe_approver(&args),
        Some(Command::Spiffe(args)) => {
            run_spiffe_node(&args, data_root_given.then(|| cli.driver.data_root.clone()))
        }
        None => run_driver(&cli.driver),
    }
}

fn print_status(data_root: &std::path::Path, format: StatusFormat) -> ExitCode {
    match crate::status::collect(data_root) {
        Ok(reports) => {
            let text = match format {
                StatusFormat::Table => crate::status::render_table(&reports),
                StatusFormat::Json => crate::status::render_json(&reports),
            };
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "error: cannot read the driver's state in {}: {error} (is --data-root the driver's?)",
                data_root.display()
            );
            ExitCode::FAILURE
        }
    }
}

fn run_driver(args: &DriverArgs) -> ExitCode {
    run_on_runtime("driver", args.to_config(), |config| async {
        let running = driver::start(config).await?;
        running.run_until(shutdown_signal()).await
    })
}

fn run_spiffe_node(
    args: &crate::spiffe::node::args::SpiffeArgs,
    data_root: Option<PathBuf>,
) -> ExitCode {
    run_on_runtime(
        "driver",
        args.to_config(data_root),
        |(config, requests)| async {
            let running = driver::start_spiffe(config, std::sync::Arc::new(requests)).await?;
            running.run_until(shutdown_signal()).await
        },
    )
}

fn run_spiffe_approver(args: &SpiffeApproverArgs) -> ExitCode {
    run_on_runtime("approver", args.to_config(), |config| {
        crate::spiffe::approver::run(config, shutdown_signal())
    })
}

/// Runs `task` with its checked configuration on the driver's runtime until it ends: exit code 2
/// for flags that do not make a configuration, 1 for a failure (said on stderr and in the log).
fn run_on_runtime<C, F, E>(
    what: &str,
    config: Result<C, String>,
    task: impl FnOnce(C) -> F,
) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let config = match config {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match driver_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(task(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "{what} stopped");
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Async worker threads at most, whatever the node's core count.
pub const MAX_WORKER_THREADS: usize = 2;

/// The driver's runtime. Its async work is waiting: gRPC on the socket, API requests (throttled to
/// --kube-api-qps), timers; RSA keys, mounts and file work go to the blocking pool. Tokio's default
/// of one worker per core would give a 64-core node 64 idle threads, each with its own glibc arena
/// and stack pages (`cargo bench --bench footprint` with TOKIO_WORKER_THREADS=8: +0.4 MiB idle
/// over 2 workers), for throughput the API server's limits never let the driver use.
pub fn driver_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.min(MAX_WORKER_THREADS))
        .enable_all()
        .build()
}

/// SIGTERM (kubelet, the DaemonSet) or SIGINT (a terminal).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down; mounts stay and are picked up by the next start");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_has_at_most_two_workers() {
        let runtime = driver_runtime().unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        assert_eq!(
            runtime.metrics().num_workers(),
            cores.min(MAX_WORKER_THREADS)
        );
        // Timers and I/O are enabled: the driver needs both.
        runtime.block_on(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            tokio::net::UnixStream::pair().unwrap();
        });
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1Mi"), Ok(1024 * 1024));
        assert_eq!(parse_size("512Ki"), Ok(512 * 1024));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1Gb").is_err());
    }

    #[test]
    fn flags_match_upstream_names() {
        let cli = Cli::try_parse_from([
            "cert-manager-csi-driver",
            "--node-id=node-1",
            "--endpoint=unix:///csi/csi.sock",
            "--driver-name=csi.cert-manager.io",
            "--data-root=/csi-data-dir",
            "-v=5",
            "--issuer-backend=local-ca",
            "--kubeconfig=/etc/kube.yaml",
            "--kube-api-qps=20",
            "--kube-api-burst=40",
            "--use-token-request",
            "--publish-timeout=45s",
            "--certificate-request-history=3",
            "--renewal-backoff-initial=1s",
            "--renewal-backoff-max=1m",
            "--metrics-bind-address=:9402",
            "--continue-on-not-ready",
            "--log-format=json",
            "--default-duration=2160h",
            "--adopt-csi-lib-data-root=/csi-lib-data-dir",
        ])
        .unwrap();
        let config = cli.driver.to_config().unwrap();
        assert_eq!(
            config.default_duration,
            std::time::Duration::from_secs(2160 * 3600)
        );
        assert_eq!(
            config.adopt_csi_lib_data_root,
            Some(PathBuf::from("/csi-lib-data-dir"))
        );
        assert_eq!(config.node_id, "node-1");
        assert_eq!(config.socket_path, PathBuf::from("/csi/csi.sock"));
        assert_eq!(config.local_ca_dir, PathBuf::from("/csi-data-dir/local-ca"));
        assert_eq!(cli.log_level, 5);
        assert_eq!(config.issuer_backend, IssuerBackend::LocalCa);
        assert_eq!(
            config.kube.kubeconfig,
            Some(PathBuf::from("/etc/kube.yaml"))
        );
        assert_eq!((config.kube.qps, config.kube.burst), (20.0, 40));
        assert!(config.cert_manager.use_token_request);
        assert_eq!(
            config.cert_manager.publish_timeout,
            std::time::Duration::from_secs(45)
        );
        assert_eq!(config.cert_manager.history_limit, 3);
        assert_eq!(
            config.metrics_address,
            Some("0.0.0.0:9402".parse().unwrap())
        );
        assert!(config.continue_on_not_ready);
        assert_eq!(cli.log_format, LogFormat::Json);
        // Upstream's manifests spell switches with values.
        let explicit = Cli::try_parse_from([
            "cert-manager-csi-driver",
            "--node-id=n",
            "--use-token-request=false",
            "--continue-on-not-ready=true",
            "--endpoint=unix://plugin/csi.sock",
            "--pod-readiness-gate=pod-condition:cert-manager.io/csi-ready",
        ])
        .unwrap();
        let explicit = explicit.driver.to_config().unwrap();
        assert!(!explicit.cert_manager.use_token_request);
        assert!(explicit.continue_on_not_ready);
        assert_eq!(
            config.renewal_backoff,
            crate::renewal::Backoff {
                initial: std::time::Duration::from_secs(1),
                max: std::time::Duration::from_secs(60)
            }
        );
        assert!(
            Cli::try_parse_from(["x", "--certificate-request-history=0"]).is_err(),
            "history below 1 is refused"
        );
    }

    #[test]
    fn readiness_gates_are_checked_at_start() {
        let config = |extra: &[&str]| {
            let mut args = vec!["cert-manager-csi-driver", "--node-id=n"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).unwrap().driver.to_config()
        };
        let gated = config(&[
            "--continue-on-not-ready=true",
            "--pod-readiness-gate=pod-ip:ipv4",
            "--pod-readiness-gate",
            "pod-condition:example.com/net=true",
            "--gate-backoff-cap=0",
        ])
        .unwrap();
        let gates: Vec<String> = gated.readiness_gates.iter().map(Gate::to_string).collect();
        assert_eq!(gates, ["pod-ip:ipv4", "pod-condition:example.com/net=True"]);
        assert_eq!(gated.gate_backoff.cap, std::time::Duration::ZERO);
        assert_eq!(
            config(&[]).unwrap().gate_backoff,
            GateBackoff::default(),
            "upstream's defaults: 1s, 2.0, 0.5, 10s"
        );
        assert_eq!(
            config(&["--pod-readiness-gate=pod-ip:any"]).unwrap_err(),
            "--pod-readiness-gate requires --continue-on-not-ready=true"
        );
        let bad = config(&[
            "--continue-on-not-ready",
            "--pod-readiness-gate=pod-ip:ipv5",
        ]);
        assert!(bad.unwrap_err().contains("\"pod-ip:ipv5\""));
        let bad = config(&["--gate-backoff-factor=0.5"]);
        assert!(bad.unwrap_err().contains("--gate-backoff-factor"));
    }

    #[test]
    fn defaults_are_safe() {
        let cli = Cli::try_parse_from(["cert-manager-csi-driver"]).unwrap();
        assert_eq!(cli.driver.issuer_backend, IssuerBackend::CertManager);
        assert!(!cli.driver.data_root.starts_with("/tmp"));
        assert!(cli.driver.to_config().unwrap_err().contains("--node-id"));
        assert_eq!(cli.driver.certificate_request_history, 1);
        let with_node = Cli::try_parse_from(["cert-manager-csi-driver", "--node-id=n"]).unwrap();
        assert_eq!(
            with_node.driver.to_config().unwrap().metrics_address,
            None,
            "metrics are off by default"
        );
        assert_eq!(
            with_node.driver.to_config().unwrap().renewal_backoff,
            crate::renewal::Backoff::default()
        );
        assert_eq!(
            cli.driver.publish_timeout,
            crate::issuer::cert_manager::DEFAULT_PUBLISH_TIMEOUT
        );
        assert_eq!(
            cli.driver.default_duration,
            crate::attributes::DEFAULT_DURATION
        );
        assert_eq!(
            with_node
                .driver
                .to_config()
                .unwrap()
                .adopt_csi_lib_data_root,
            None
        );
        assert!(Cli::try_parse_from(["x", "--default-duration=500ms"]).is_err());
        assert!(Cli::try_parse_from(["x", "--default-duration=90d"]).is_err());
    }

    #[test]
    fn key_pool_size_defaults_to_a_rollout_of_16_and_is_bounded() {
        let config = |extra: &[&str]| {
            let mut args = vec!["cert-manager-csi-driver", "--node-id=n"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).map(|cli| cli.driver.to_config().unwrap().key_pool_size)
        };
        assert_eq!(config(&[]).unwrap(), 16);
        assert_eq!(config(&["--key-pool-size=0"]).unwrap(), 0, "0 turns it off");
        assert_eq!(config(&["--key-pool-size", "1024"]).unwrap(), 1024);
        let too_many = config(&["--key-pool-size=1025"]).unwrap_err().to_string();
        assert!(
            too_many.contains("1025 keys per kind is more than the 1024 allowed"),
            "{too_many}"
        );
        let not_a_number = config(&["--key-pool-size=lots"]).unwrap_err().to_string();
        assert!(
            not_a_number.contains("\"lots\" is not a number of keys"),
            "{not_a_number}"
        );
    }

    #[test]
    fn a_relative_adoption_root_is_taken_from_the_working_directory() {
        // The Go driver's chart runs it from / with --data-root=csi-data-dir.
        let cli =
            Cli::try_parse_from(["x", "--node-id=n", "--adopt-csi-lib-data-root=csi-data-dir"])
                .unwrap();
        let expected = std::env::current_dir().unwrap().join("csi-data-dir");
        assert_eq!(
            cli.driver.to_config().unwrap().adopt_csi_lib_data_root,
            Some(expected)
        );
    }

    #[test]
    fn publishing_in_the_go_drivers_layout_needs_its_data_root() {
        let Err(error) = Cli::try_parse_from(["x", "--node-id=n", "--publish-in-csi-lib-layout"])
        else {
            panic!("refused without --adopt-csi-lib-data-root");
        };
        let error = error.to_string();
        assert!(error.contains("--adopt-csi-lib-data-root"), "{error}");
        let cli = Cli::try_parse_from([
            "x",
            "--node-id=n",
            "--adopt-csi-lib-data-root=/csi-data-dir",
            "--publish-in-csi-lib-layout",
        ])
        .unwrap();
        assert!(cli.driver.to_config().unwrap().publish_in_csi_lib_layout);
        let cli =
            Cli::try_parse_from(["x", "--node-id=n", "--adopt-csi-lib-data-root=/d"]).unwrap();
        assert!(!cli.driver.to_config().unwrap().publish_in_csi_lib_layout);
    }
}
