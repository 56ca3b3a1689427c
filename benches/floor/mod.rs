//! The floor of the cert_manager benchmark: what issuing one certificate costs a client that does
//! nothing but the API calls. It creates a CertificateRequest (with a CSR made before the clock
//! starts, and the metadata the driver writes, so the bytes on the wire compare) and waits for
//! the signer's status update on its own watch. One kube client for everything, on the driver's
//! transport (`KubeConnection`: the same ALPN, so the same HTTP version the driver negotiates).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cert_manager_csi_driver::issuer::cert_manager::request::{
    CertificateRequest, CertificateRequestSpec, IssuerReference,
};
use cert_manager_csi_driver::kubernetes::{KubeConnection, KubeSettings};
use futures_util::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use kube::runtime::watcher::{self, Event, watcher};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

type Error = Box<dyn std::error::Error>;

const NAMESPACE: &str = "floor";

pub struct Floor {
    api: Api<CertificateRequest>,
    /// Who waits for which request to be signed.
    waiters: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>,
    serial: std::sync::atomic::AtomicUsize,
    watch: tokio::task::JoinHandle<()>,
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// A request made and not yet sent: its name, its body, and the wake-up for its signing.
struct Prepared {
    object: CertificateRequest,
    signed: oneshot::Receiver<()>,
}

impl Floor {
    /// Connects through `kubeconfig` and returns once its watch has synced.
    pub async fn start(kubeconfig: &Path) -> Result<Floor, Error> {
        let connection = KubeConnection::connect(&KubeSettings {
            kubeconfig: Some(kubeconfig.to_path_buf()),
            ..KubeSettings::default()
        })
        .await?;
        let api: Api<CertificateRequest> = Api::namespaced(connection.client(), NAMESPACE);
        let waiters: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>> = Arc::default();
        let (synced_tx, synced) = oneshot::channel();
        let watch = tokio::spawn(watch(api.clone(), Arc::clone(&waiters), synced_tx));
        tokio::time::timeout(Duration::from_secs(10), synced).await??;
        Ok(Floor {
            api,
            waiters,
            serial: Default::default(),
            watch,
        })
    }

    /// `count` issuances one after another; each one's time from create sent to signed seen.
    pub async fn sequential(&self, count: usize) -> Result<Vec<Duration>, Error> {
        let mut latencies = Vec::with_capacity(count);
        for _ in 0..count {
            let prepared = self.prepare()?;
            let started = Instant::now();
            self.issue(prepared).await?;
            latencies.push(started.elapsed());
        }
        Ok(latencies)
    }

    /// `count` issuances at once; the wall time until the last is signed.
    pub async fn burst(&self, count: usize) -> Result<Duration, Error> {
        let prepared = (0..count)
            .map(|_| self.prepare())
            .collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        let issued = futures_util::future::join_all(prepared.into_iter().map(|p| self.issue(p)));
        for result in issued.await {
            result?;
        }
        Ok(started.elapsed())
    }

    fn prepare(&self) -> Result<Prepared, Error> {
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("floor-{serial}");
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let csr = rcgen::CertificateParams::new(vec![format!("{name}.app.example.com")])?
            .serialize_request(&key)?
            .pem()?;
        let (tx, signed) = oneshot::channel();
        self.waiters.lock().insert(name.clone(), tx);
        Ok(Prepared {
            object: request(&name, &csr),
            signed,
        })
    }

    async fn issue(&self, prepared: Prepared) -> Result<(), Error> {
        self.api
            .create(&PostParams::default(), &prepared.object)
            .await?;
        tokio::time::timeout(Duration::from_secs(30), prepared.signed)
            .await
            .map_err(|_| "the floor's request was not signed within 30 s")??;
        Ok(())
    }
}

/// Wakes the waiter of each request the signer marks Ready.
async fn watch(
    api: Api<CertificateRequest>,
    waiters: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>,
    synced: oneshot::Sender<()>,
) {
    let mut synced = Some(synced);
    let mut events = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(cr)) | Ok(Event::InitApply(cr)) if is_ready(&cr) => {
                let name = cr.metadata.name.unwrap_or_default();
                if let Some(waiter) = waiters.lock().remove(&name) {
                    let _ = waiter.send(());
                }
            }
            Ok(Event::InitDone) => {
                if let Some(synced) = synced.take() {
                    let _ = synced.send(());
                }
            }
            Ok(_) => {}
            Err(error) => eprintln!("floor watch: {error}"),
        }
    }
}

fn is_ready(cr: &CertificateRequest) -> bool {
    cr.status.as_ref().is_some_and(|status| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// A request shaped like the driver's: the same issuer, labels, annotations and owner.
fn request(name: &str, csr_pem: &str) -> CertificateRequest {
    let annotations = BTreeMap::from([
        ("csi.cert-manager.io/pod-name".to_string(), name.to_string()),
        (
            "csi.cert-manager.io/pod-uid".to_string(),
            format!("uid-{name}"),
        ),
        (
            "csi.cert-manager.io/volume-id".to_string(),
            name.to_string(),
        ),
        (
            "csi.cert-manager.io/node-id".to_string(),
            "bench-node".to_string(),
        ),
        (
            "csi.cert-manager.io/requested-at".to_string(),
            "2026-01-01T00:00:00.000000000Z".to_string(),
        ),
    ]);
    let labels = BTreeMap::from([
        (
            "csi.cert-manager.io/node-id-hash".to_string(),
            "floornode".to_string(),
        ),
        (
            "csi.cert-manager.io/volume-id-hash".to_string(),
            name.to_string(),
        ),
    ]);
    CertificateRequest {
        api_version: "cert-manager.io/v1".into(),
        kind: "CertificateRequest".into(),
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: name.to_string(),
                uid: format!("uid-{name}"),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: CertificateRequestSpec {
            request: ByteString(csr_pem.as_bytes().to_vec()),
            issuer_ref: IssuerReference {
                name: "ca-issuer".into(),
                kind: Some("ClusterIssuer".into()),
                group: Some("cert-manager.io".into()),
            },
            duration: Some("24h0m0s".into()),
            is_ca: false,
            usages: vec!["digital signature".into(), "key encipherment".into()],
        },
        status: None,
    }
}
