//! `cert-manager-csi-driver demo`: the first thing a newcomer runs. Starts the driver in-process
//! on the embedded CA, plays kubelet for one sample pod over the real CSI socket, and shows what
//! the pod would see, one rotation, and the cleanup.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::attributes::key;
use crate::certificate::{self, CertificateInfo};
use crate::cli::DemoArgs;
use crate::csi::client;
use crate::csi::proto::volume_capability::{AccessMode, AccessType, MountVolume, access_mode};
use crate::csi::proto::{
    GetPluginInfoRequest, NodePublishVolumeRequest, NodeUnpublishVolumeRequest, ProbeRequest,
    VolumeCapability,
};
use crate::driver::{self, DriverConfig, IssuerBackend, MountMode};
use crate::volume::{files, mountinfo};

/// Set in the re-executed child so it knows it already runs in its own user namespace.
const IN_NAMESPACE_ENV: &str = "CERT_MANAGER_CSI_DEMO_NAMESPACED";

/// The pod a sample volume belongs to.
#[derive(Debug, Clone)]
pub struct SamplePod {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl SamplePod {
    pub fn new(name: &str) -> SamplePod {
        SamplePod {
            name: name.to_string(),
            namespace: "default".to_string(),
            uid: format!(
                "{:08x}-0000-4000-8000-{:012x}",
                fastrand::u32(..),
                fastrand::u64(..1 << 48)
            ),
        }
    }
}

/// The volume context kubelet sends for seed 000's first example (a pod with a CSI volume signed
/// by `ca-issuer`), with `${POD_NAME}` in the DNS names, plus kubelet's pod info.
pub fn sample_volume_context(
    pod: &SamplePod,
    overrides: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut context: HashMap<String, String> = [
        (key::ISSUER_NAME, "ca-issuer"),
        (key::ISSUER_KIND, "ClusterIssuer"),
        (
            key::DNS_NAMES,
            "${POD_NAME}.app.example.com,app.example.com",
        ),
        (key::COMMON_NAME, "app.example.com"),
        (key::DURATION, "720h"),
        (key::RENEW_BEFORE, "240h"),
        (key::KEY_USAGES, "server auth,client auth"),
        (key::CERTIFICATE_FILE, "tls.crt"),
        (key::PRIVATE_KEY_FILE, "tls.key"),
        (key::CA_FILE, "ca.crt"),
        (key::POD_NAME, pod.name.as_str()),
        (key::POD_NAMESPACE, pod.namespace.as_str()),
        (key::POD_UID, pod.uid.as_str()),
        (key::SERVICE_ACCOUNT_NAME, "default"),
        (key::EPHEMERAL, "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in overrides {
        context.insert(k.to_string(), v.to_string());
    }
    context
}

/// A `NodePublishVolume` exactly as kubelet sends it for an inline volume with `readOnly: true`.
pub fn publish_request(
    volume_id: &str,
    target: &Path,
    context: HashMap<String, String>,
) -> NodePublishVolumeRequest {
    NodePublishVolumeRequest {
        volume_id: volume_id.to_string(),
        publish_context: HashMap::new(),
        staging_target_path: String::new(),
        target_path: target.display().to_string(),
        volume_capability: Some(VolumeCapability {
            access_type: Some(AccessType::Mount(MountVolume {
                fs_type: String::new(),
                mount_flags: Vec::new(),
                volume_mount_group: String::new(),
            })),
            access_mode: Some(AccessMode {
                mode: access_mode::Mode::SingleNodeWriter as i32,
            }),
        }),
        readonly: true,
        secrets: HashMap::new(),
        volume_context: context,
    }
}

/// Entry point of `demo`.
pub fn main(args: &DemoArgs) -> ExitCode {
    let is_root = rustix::process::geteuid().is_root();
    let mount_mode = if args.no_mount {
        println!("note: --no-mount given: volumes are plain directories, not tmpfs mounts.\n");
        MountMode::PlainDirectories
    } else if is_root {
        MountMode::Tmpfs
    } else if std::env::var_os(IN_NAMESPACE_ENV).is_none() && user_namespaces_work() {
        // Not root: run again inside a private user + mount namespace, where mounting a tmpfs is
        // allowed and invisible to the rest of the machine.
        return rerun_in_user_namespace();
    } else {
        println!(
            "note: not running as root and user namespaces are unavailable, so this demo uses\n      \
             plain directories instead of tmpfs mounts (the driver itself needs root).\n"
        );
        MountMode::PlainDirectories
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, mount_mode)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\ndemo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn user_namespaces_work() -> bool {
    std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn rerun_in_user_namespace() -> ExitCode {
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("error: cannot find this program's path to re-run it");
        return ExitCode::FAILURE;
    };
    println!(
        "note: not running as root; re-running inside a private user + mount namespace\n      (unshare --user --map-root-user --mount) so the volumes are real tmpfs mounts.\n"
    );
    let status = std::process::Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "--propagation",
            "private",
            "--",
        ])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(IN_NAMESPACE_ENV, "1")
        .status();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: cannot run unshare: {error}");
            ExitCode::FAILURE
        }
    }
}

type DemoResult<T> = Result<T, Box<dyn std::error::Error>>;

async fn run(args: &DemoArgs, mount_mode: MountMode) -> DemoResult<()> {
    let work = tempfile::Builder::new()
        .prefix("cert-manager-csi-demo-")
        .tempdir()?;
    let work_dir = work.path().to_path_buf();
    let config = DriverConfig {
        node_id: "demo-node".into(),
        driver_name: "csi.cert-manager.io".into(),
        socket_path: work_dir.join("plugin/csi.sock"),
        data_root: work_dir.join("driver-state"),
        issuer_backend: IssuerBackend::LocalCa,
        local_ca_dir: work_dir.join("local-ca"),
        max_volumes_per_node: 0,
        volume_size_bytes: 1024 * 1024,
        renewal_concurrency: 4,
        key_pool_size: crate::keys::pool::DEFAULT_SIZE,
        renewal_backoff: Default::default(),
        continue_on_not_ready: false,
        metrics_address: None,
        mount_mode,
        strict_attributes: false,
        kube: Default::default(),
        cert_manager: Default::default(),
        default_duration: crate::attributes::DEFAULT_DURATION,
        adopt_csi_lib_data_root: None,
        publish_in_csi_lib_layout: false,
        readiness_gates: Vec::new(),
        gate_backoff: Default::default(),
    };
    let running = driver::start(config.clone()).await?;
    let mut csi = client::connect(running.socket_path()).await?;
    let info = csi
        .identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await?
        .into_inner();
    let ready = csi
        .identity
        .probe(ProbeRequest {})
        .await?
        .into_inner()
        .ready;

    println!("cert-manager CSI driver demo: no cluster needed");
    println!(
        "  driver     {} {} (ready: {})",
        info.name,
        info.vendor_version,
        ready.unwrap_or(false)
    );
    println!(
        "  issuer     embedded CA (--issuer-backend local-ca), CA files in {}",
        config.local_ca_dir.display()
    );
    println!("  volumes    {}", running.manager().mounter_kind());
    println!("  socket     {}", config.socket_path.display());
    println!("  state      {}", config.data_root.display());

    let pod = SamplePod::new("app-with-csi-cert");
    let volume_id = format!("csi-{:016x}", fastrand::u64(..));
    let pod_dir = work_dir.join(format!(
        "kubelet/pods/{}/volumes/kubernetes.io~csi/tls",
        pod.uid
    ));
    std::fs::create_dir_all(&pod_dir)?;
    let target = pod_dir.join("mount");
    // Seed 000's first example, with ${POD_NAME} in the DNS names, and a 6 second lifetime so
    // that a rotation happens while you watch (the example asks for 720h / 240h).
    let overrides = [(key::DURATION, "6s"), (key::RENEW_BEFORE, "2s")];
    let context = sample_volume_context(&pod, &overrides);

    println!(
        "\n1. kubelet calls NodePublishVolume for pod {}/{} (volume {volume_id})",
        pod.namespace, pod.name
    );
    println!("   volumeAttributes (seed 000's first example; duration shortened from 720h to 6s):");
    let sorted: BTreeMap<_, _> = context
        .iter()
        .filter(|(k, _)| k.starts_with("csi.cert-manager.io/"))
        .collect();
    for (k, v) in sorted {
        println!("     {k}: {v}");
    }
    let started = Instant::now();
    csi.node
        .node_publish_volume(publish_request(&volume_id, &target, context.clone()))
        .await?;
    println!("   published in {} ms", started.elapsed().as_millis());

    println!("\n2. What the pod sees at {}", target.display());
    describe_mount(&target);
    list_files(&target)?;

    let chain = std::fs::read_to_string(target.join("tls.crt"))?;
    let ca = std::fs::read_to_string(target.join("ca.crt"))?;
    let key_pem = zeroize::Zeroizing::new(std::fs::read_to_string(target.join("tls.key"))?);
    let first = certificate::inspect_leaf(&chain)?;
    println!("\n3. The certificate in tls.crt");
    print_certificate(&first, &key_pem);
    println!(
        "   signed by ca.crt:       {}",
        yes_no(certificate::signed_by(&chain, &ca)?)
    );
    println!(
        "   tls.key matches tls.crt: {}",
        yes_no(certificate::key_matches_certificate(&key_pem, &chain)?)
    );
    if let Some(status) = running.manager().snapshot(&volume_id).await
        && let Some(next) = status.next_renewal
    {
        let wait = next.duration_since(SystemTime::now()).unwrap_or_default();
        println!(
            "   next renewal:           in {:.1} s (renew-before 2s of a 6s lifetime, minus jitter)",
            wait.as_secs_f64()
        );
    }

    println!("\n4. Waiting for the renewal (one atomic swap of ..data)...");
    let before = files::current_set(&target);
    let waited = Instant::now();
    let rotated = loop {
        let now = files::current_set(&target);
        if now.is_some() && now != before {
            break now;
        }
        if waited.elapsed() > Duration::from_secs(20) {
            return Err("no rotation within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let new_chain = std::fs::read_to_string(target.join("tls.crt"))?;
    let new_key = zeroize::Zeroizing::new(std::fs::read_to_string(target.join("tls.key"))?);
    let second = certificate::inspect_leaf(&new_chain)?;
    println!(
        "   ..data switched after {:.1} s: {} -> {}",
        waited.elapsed().as_secs_f64(),
        file_name(before.as_deref()),
        file_name(rotated.as_deref())
    );
    println!("   new serial:             {}", second.serial);
    println!(
        "   new validity:           {} -> {}",
        rfc3339(second.not_before),
        rfc3339(second.not_after)
    );
    println!(
        "   new key (reuse-private-key is false): {}",
        yes_no(*new_key != *key_pem)
    );
    println!(
        "   tls.key matches tls.crt: {}",
        yes_no(certificate::key_matches_certificate(&new_key, &new_chain)?)
    );
    println!(
        "   old set removed:        {}",
        yes_no(before.as_deref().is_some_and(|old| !old.exists()))
    );

    println!("\n5. kubelet calls NodeUnpublishVolume (the pod is gone)");
    csi.node
        .node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: volume_id.clone(),
            target_path: target.display().to_string(),
        })
        .await?;
    let still_mounted = mountinfo::read_current()
        .map(|entries| mountinfo::find_mount(&entries, &target).is_some())
        .unwrap_or(false);
    let records = std::fs::read_dir(config.data_root.join("volumes"))?.count();
    println!("   target directory removed: {}", yes_no(!target.exists()));
    println!("   nothing mounted there:    {}", yes_no(!still_mounted));
    println!("   driver state records:     {records} left");
    println!(
        "   managed volumes:          {}",
        running.manager().volume_count()
    );

    running.stop().await?;
    drop(csi);
    if args.keep {
        let kept = work.keep();
        println!("\nkept the working directory: {}", kept.display());
    }
    println!("\nNext: run the tests (see README.md), or deploy to a cluster with cert-manager.");
    Ok(())
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "NO" }
}

fn file_name(path: Option<&Path>) -> String {
    path.and_then(Path::file_name)
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "-".into())
}

fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{at:?}"))
}

fn describe_mount(target: &Path) {
    match mountinfo::read_current() {
        Ok(entries) => match mountinfo::find_mount(&entries, target) {
            Some(entry) => println!(
                "   mount: {} ({}; {})",
                entry.fs_type, entry.mount_options, entry.super_options
            ),
            None => println!("   mount: none (plain directory)"),
        },
        Err(error) => println!("   mount: cannot read the mount table: {error}"),
    }
}

fn list_files(target: &Path) -> DemoResult<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(target)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        let name = file_name(Some(&path));
        let link = std::fs::symlink_metadata(&path)?;
        if link.file_type().is_symlink() {
            let points_to = std::fs::read_link(&path)?;
            let meta = std::fs::metadata(&path)?;
            println!(
                "   {} {:>5} bytes  {name} -> {}",
                mode_string(meta.permissions().mode()),
                meta.len(),
                points_to.display()
            );
        } else {
            println!("   {} {:>5}        {name}/", mode_string(link.mode()), "");
        }
    }
    Ok(())
}

fn mode_string(mode: u32) -> String {
    let bits = ['r', 'w', 'x'];
    (0..9)
        .map(|i| {
            if mode & (1 << (8 - i)) != 0 {
                bits[i % 3]
            } else {
                '-'
            }
        })
        .collect()
}

fn print_certificate(info: &CertificateInfo, key_pem: &str) {
    let encoding = if key_pem.starts_with("-----BEGIN RSA PRIVATE KEY") {
        "PKCS#1"
    } else {
        "PKCS#8"
    };
    println!("   subject:                {}", info.subject);
    println!(
        "   SANs:                   {}",
        info.subject_alt_names.join(", ")
    );
    println!("   issuer:                 {}", info.issuer);
    println!(
        "   validity:               {} -> {} ({} s)",
        rfc3339(info.not_before),
        rfc3339(info.not_after),
        info.lifetime().as_secs()
    );
    println!(
        "   key:                    {} ({encoding} in tls.key)",
        info.public_key
    );
    println!("   serial:                 {}", info.serial);
    println!("   files:                  tls.crt (chain), tls.key (private key), ca.crt (CA)");
}
