//! The in-cluster issuer backend: each issuance is a cert-manager `CertificateRequest` in the
//! pod's namespace, signed by whatever issuer it names (CA, Vault, Venafi, ACME, external).
//!
//! One issuance: find what this volume already has in the watch-fed [`cache`]; resume the request
//! whose CSR is the one being presented (kubelet retrying a publish that timed out keeps its key,
//! so the same CSR comes back: no new request, upstream #47); delete stale pending requests whose
//! key died with a previous driver process; otherwise create one. Then prune the volume's history
//! to the newest N, and wait — woken by the watch, never polling — until the request is issued,
//! denied, failed, or the publish deadline passes.
//!
//! A volume's requests include those the Go driver left behind on a node this driver took over:
//! they carry the same labels (see [`request::label_hash`]), but no volume-id annotation. Their
//! keys died with the Go driver, so they are never resumed: pending ones are deleted as stale,
//! finished ones count as history.

pub mod cache;
pub mod request;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DeleteParams, PostParams};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::cache::{RequestCache, RequestKey, Updates};
use self::request::{CertificateRequest, RequestState, evaluate};
use super::{IssueFuture, IssueOrder, IssuedCertificate, Issuer, IssuerError};
use crate::kubernetes::{KubeConnection, api_status, describe_error, is_transient, retry_after};

/// Default of `--publish-timeout`: how long one publish (or one renewal attempt) waits for a
/// request to be signed. Below kubelet's own 2-minute limit on NodePublishVolume, so the driver
/// answers with the reason before kubelet gives up without one.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(90);

/// Settings of the backend.
#[derive(Debug, Clone, PartialEq)]
pub struct CertManagerSettings {
    /// How long an issuance waits for its request.
    pub publish_timeout: Duration,
    /// Requests kept per volume, newest first (`--certificate-request-history`, at least 1).
    pub history_limit: usize,
    /// Create requests with the pod's service-account token (`--use-token-request`).
    pub use_token_request: bool,
    /// How long after a watch error `/readyz` keeps reporting it.
    pub watch_error_grace: Duration,
}

impl Default for CertManagerSettings {
    fn default() -> Self {
        CertManagerSettings {
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            history_limit: 1,
            use_token_request: false,
            watch_error_grace: Duration::from_secs(40),
        }
    }
}

/// Issues through cert-manager.
pub struct CertManagerIssuer {
    connection: KubeConnection,
    cache: Arc<RequestCache>,
    node_id: String,
    settings: CertManagerSettings,
    watch: JoinHandle<()>,
    /// Background withdrawals of unpublished volumes' pending requests, by volume ID; a new
    /// issuance for the same volume ID stops its withdrawal.
    withdrawals: parking_lot::Mutex<std::collections::HashMap<String, tokio::task::AbortHandle>>,
}

impl Drop for CertManagerIssuer {
    fn drop(&mut self) {
        self.watch.abort();
        for withdrawal in self.withdrawals().values() {
            withdrawal.abort();
        }
    }
}

impl CertManagerIssuer {
    /// Starts the node's watch. Issuance waits for its first list, so start-up never blocks on
    /// the API server.
    pub fn start(
        connection: KubeConnection,
        node_id: &str,
        settings: CertManagerSettings,
    ) -> CertManagerIssuer {
        let cache = RequestCache::new();
        let watch = tokio::spawn(
            Arc::clone(&cache).run_watch(connection.client(), request::node_selector(node_id)),
        );
        CertManagerIssuer {
            connection,
            cache,
            node_id: node_id.to_string(),
            settings,
            watch,
            withdrawals: Default::default(),
        }
    }

    pub fn cache(&self) -> &Arc<RequestCache> {
        &self.cache
    }

    fn withdrawals(
        &self,
    ) -> parking_lot::MutexGuard<'_, std::collections::HashMap<String, tokio::task::AbortHandle>>
    {
        self.withdrawals.lock()
    }

    async fn issue_order(&self, order: &IssueOrder) -> Result<IssuedCertificate, IssuerError> {
        // The volume is being issued again: its requests are not to be withdrawn any more.
        if let Some(withdrawal) = self.withdrawals().remove(&order.volume_id) {
            withdrawal.abort();
        }
        let deadline = Instant::now() + self.settings.publish_timeout;
        if !self.cache.wait_synced(deadline).await {
            return Err(IssuerError::timed_out(format!(
                "the watch on CertificateRequests has not synced within {:?}{}",
                self.settings.publish_timeout,
                self.cache
                    .last_error()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            )));
        }
        let namespace = &order.pod.namespace;
        let volume_requests: Vec<Arc<CertificateRequest>> = self
            .cache
            .for_volume(&request::label_hashes(&order.volume_id))
            .into_iter()
            .filter(|cr| request::belongs_to_volume(cr, namespace, &order.volume_id))
            .collect();

        // A request with this very CSR is resumed while still pending (kubelet's retry after a
        // timeout; or, with reuse-private-key, the same key after a driver restart). An issued one
        // is taken only when the manager says this attempt continues one that gave up waiting:
        // otherwise it is the previous certificate's request (a reused RSA or Ed25519 key gives a
        // byte-identical CSR), and a renewal must get a new certificate. The Go driver's requests
        // are never this driver's to resume.
        let resumable = volume_requests.iter().find(|cr| {
            !request::is_go_drivers(cr)
                && cr.has_csr(&order.csr_pem)
                && match evaluate(cr) {
                    RequestState::Pending { .. } => true,
                    RequestState::Issued { .. } => order.resuming,
                    RequestState::Denied { .. } | RequestState::Failed { .. } => false,
                }
        });
        let (key, updates) = match resumable {
            Some(existing) => {
                tracing::info!(
                    volume_id = %order.volume_id,
                    request = %existing.reference(),
                    "resuming the CertificateRequest already made for this key"
                );
                let key = (
                    existing.namespace().to_string(),
                    existing.name().to_string(),
                );
                let updates = self.cache.subscribe(&key);
                (key, updates)
            }
            None => {
                // Their keys are gone (a previous driver process, or the Go driver, held them):
                // they can never be used. Deleted side by side, not one after another, so a slow
                // API server costs the publish one round trip, not one per request.
                let stale = volume_requests
                    .iter()
                    .filter(|cr| matches!(evaluate(cr), RequestState::Pending { .. }))
                    .map(|stale| {
                        tracing::info!(
                            volume_id = %order.volume_id,
                            request = %stale.reference(),
                            made_by_go_driver = request::is_go_drivers(stale),
                            "deleting a pending CertificateRequest whose private key was lost"
                        );
                        self.delete(stale, deadline)
                    });
                futures_util::future::join_all(stale).await;
                let (key, updates) = self.create(order, deadline).await?;
                self.prune_history(&volume_requests, &key, deadline).await;
                (key, updates)
            }
        };
        let result = self.wait(&key, updates, deadline).await;
        self.cache.release(&key);
        result
    }

    /// Creates the request, retrying transient API failures until the deadline. It is subscribed
    /// to before it is sent, so no update from the watch can slip past.
    async fn create(
        &self,
        order: &IssueOrder,
        deadline: Instant,
    ) -> Result<(RequestKey, Updates), IssuerError> {
        let client = match (&order.token, self.settings.use_token_request) {
            (Some(token), true) => self.connection.client_with_token(token).map_err(|e| {
                IssuerError::misconfigured(format!("building a client with the pod's token: {e}"))
                    .with_source(e)
            })?,
            (None, true) => {
                return Err(IssuerError::unavailable(
                    "no service-account token for this pod yet; kubelet passes a fresh one with \
                     its next republish",
                ));
            }
            (_, false) => self.connection.client(),
        };
        let api: Api<CertificateRequest> = Api::namespaced(client, &order.pod.namespace);
        let mut object = request::build(
            order,
            &request::new_request_name(&order.pod.name),
            &self.node_id,
        );
        let mut key = (order.pod.namespace.clone(), object.name().to_string());
        let mut updates = self.cache.subscribe(&key);
        let mut attempt = 0u32;
        let mut last_error = None;
        loop {
            let sent = tokio::time::timeout_at(deadline, async {
                self.connection.throttle().await;
                api.create(&PostParams::default(), &object).await
            })
            .await;
            let error = match sent {
                Ok(Ok(_)) => {
                    tracing::info!(
                        volume_id = %order.volume_id,
                        request = %format!("{}/{}", key.0, key.1),
                        issuer = %order.issuer.name,
                        "created CertificateRequest"
                    );
                    return Ok((key, updates));
                }
                Ok(Err(error)) => error,
                Err(_) => break,
            };
            match api_status(&error) {
                // After an attempt whose answer was lost, a conflict on this random name means
                // that attempt did create it.
                Some(409) if attempt > 0 => return Ok((key, updates)),
                // A first attempt colliding with someone else's object: take another name.
                Some(409) => {
                    drop(updates);
                    self.cache.release(&key);
                    key.1 = request::new_request_name(&order.pod.name);
                    object.metadata.name = Some(key.1.clone());
                    updates = self.cache.subscribe(&key);
                    continue;
                }
                _ if is_transient(&error) => {}
                _ => {
                    drop(updates);
                    self.cache.release(&key);
                    return Err(classify_create_error(&key, error, order));
                }
            }
            attempt += 1;
            tracing::debug!(error = %describe_error(&error), attempt, "creating CertificateRequest failed; retrying");
            let asked_wait = retry_after(&error).unwrap_or_default();
            last_error = Some(error);
            // Jittered (±20%), so that a burst of publishes hit by the same outage does not come
            // back in lockstep.
            // An API server that says how long to wait (a 429) is waited for at least that long.
            let pause = Duration::from_millis(100 * 2u64.pow(attempt.min(5)))
                .mul_f64(0.8 + 0.4 * fastrand::f64())
                .max(asked_wait);
            if Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        drop(updates);
        self.cache.release(&key);
        let unavailable = IssuerError::unavailable(format!(
            "creating CertificateRequest {}/{} did not succeed before the publish deadline: {}",
            key.0,
            key.1,
            last_error
                .as_ref()
                .map_or_else(|| "the publish deadline passed".to_string(), describe_error)
        ));
        Err(match last_error {
            Some(error) => unavailable.with_source(error),
            None => unavailable,
        })
    }

    /// Deletes a volume's requests beyond the newest `history_limit` (the one just created
    /// counts as the newest).
    async fn prune_history(
        &self,
        volume_requests: &[Arc<CertificateRequest>],
        current: &RequestKey,
        deadline: Instant,
    ) {
        let mut older: Vec<&Arc<CertificateRequest>> = volume_requests
            .iter()
            .filter(|cr| (cr.namespace(), cr.name()) != (current.0.as_str(), current.1.as_str()))
            .filter(|cr| !matches!(evaluate(cr), RequestState::Pending { .. }))
            .collect();
        // Newest first.
        older.sort_by_key(|cr| std::cmp::Reverse(request::requested_at(cr)));
        let keep = self.settings.history_limit.max(1) - 1;
        let old = older
            .into_iter()
            .skip(keep)
            .map(|old| self.delete(old, deadline));
        futures_util::future::join_all(old).await;
    }

    /// Deletes one request as the driver; failures are logged, not fatal (the ownerReference to
    /// the pod collects it in the end).
    async fn delete(&self, request: &CertificateRequest, deadline: Instant) {
        delete_request(&self.connection, request, deadline).await;
    }

    /// Waits for the watch to show the request finished, or the deadline.
    async fn wait(
        &self,
        key: &RequestKey,
        mut updates: Updates,
        deadline: Instant,
    ) -> Result<IssuedCertificate, IssuerError> {
        let reference = format!("{}/{}", key.0, key.1);
        let mut seen = false;
        let mut detail = "not yet seen by the watch".to_string();
        loop {
            let current = updates.borrow_and_update().clone();
            match current {
                Some(cr) => {
                    seen = true;
                    match evaluate(&cr) {
                        RequestState::Issued { chain_pem, ca_pem } => {
                            return Ok(IssuedCertificate {
                                certificate_request: Some(key.1.clone()),
                                chain_pem,
                                ca_pem,
                            });
                        }
                        RequestState::Denied { reason, message } => {
                            return Err(IssuerError::denied(format!(
                                "CertificateRequest {reference} was denied ({reason}): {message}"
                            )));
                        }
                        RequestState::Failed { message } => {
                            return Err(IssuerError::failed(format!(
                                "CertificateRequest {reference} failed: {}",
                                request::explain_failure(&message)
                            )));
                        }
                        RequestState::Pending { detail: now } => detail = now,
                    }
                }
                None if seen => {
                    return Err(IssuerError::unavailable(format!(
                        "CertificateRequest {reference} was deleted before it was signed"
                    )));
                }
                None => {}
            }
            tokio::select! {
                changed = updates.changed() => {
                    if changed.is_err() {
                        return Err(IssuerError::unavailable("the request cache closed"));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(IssuerError::timed_out(format!(
                        "CertificateRequest {reference} is not signed after {:?}; last seen: \
                         {detail}. The next attempt for this volume resumes waiting on it",
                        self.settings.publish_timeout
                    )));
                }
            }
        }
    }
}

/// Deletes one request as the driver, giving up at `deadline` (the wait for the client-side rate
/// limit included); failures are logged, not fatal.
async fn delete_request(
    connection: &KubeConnection,
    request: &CertificateRequest,
    deadline: Instant,
) {
    let api: Api<CertificateRequest> = Api::namespaced(connection.client(), request.namespace());
    let outcome = tokio::time::timeout_at(deadline, async {
        connection.throttle().await;
        api.delete(request.name(), &DeleteParams::background())
            .await
    })
    .await;
    match outcome {
        Ok(Ok(_)) => {
            tracing::debug!(request = %request.reference(), "deleted CertificateRequest")
        }
        Ok(Err(error)) if api_status(&error) == Some(404) => {}
        Ok(Err(error)) => {
            tracing::warn!(request = %request.reference(), error = %describe_error(&error), "could not delete CertificateRequest")
        }
        Err(_) => {
            tracing::warn!(request = %request.reference(), "deleting CertificateRequest timed out")
        }
    }
}

/// How long a background withdrawal of an unpublished volume's pending requests may try.
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(60);
/// How long after an interrupted unpublish the driver still looks for a request whose create was
/// on its way, and how often (a look is a lookup in the watch's view, not an API call).
const WITHDRAW_WATCH: Duration = Duration::from_secs(15 * 60);
const WITHDRAW_LOOK_AGAIN: Duration = Duration::from_secs(2);

/// The volume's requests the watch shows as still pending.
fn pending_for(
    cache: &RequestCache,
    volume_id: &str,
    namespace: &str,
) -> Vec<Arc<CertificateRequest>> {
    cache
        .for_volume(&request::label_hashes(volume_id))
        .into_iter()
        .filter(|cr| request::belongs_to_volume(cr, namespace, volume_id))
        .filter(|cr| matches!(evaluate(cr), RequestState::Pending { .. }))
        .collect()
}

/// Turns a non-transient create failure into a message that says what to fix.
fn classify_create_error(key: &RequestKey, error: kube::Error, order: &IssueOrder) -> IssuerError {
    let who = if order.token.is_some() {
        format!(
            "the pod's service account ({})",
            order.pod.service_account.as_deref().unwrap_or("?")
        )
    } else {
        "the driver's service account".to_string()
    };
    let status = api_status(&error);
    let described = describe_error(&error);
    if crate::kubernetes::is_namespace_terminating(&error) {
        // Not RBAC: the pod's namespace is being deleted, and the pod with it.
        return IssuerError::namespace_terminating(format!(
            "namespace {} is being deleted; no CertificateRequest can be created in it: \
             {described}",
            key.0
        ))
        .with_source(error);
    }
    let classified = match status {
        Some(401) => IssuerError::misconfigured(format!(
            "the API server did not accept the credentials of {who}: {described}"
        )),
        Some(403) => IssuerError::misconfigured(format!(
            "{who} may not create CertificateRequests in namespace {}: {described}",
            key.0
        )),
        Some(404) => IssuerError::misconfigured(format!(
            "the API server has no CertificateRequest resource (are cert-manager's CRDs \
             installed?) or no namespace {}: {described}",
            key.0
        )),
        _ => IssuerError::rejected(format!(
            "creating CertificateRequest {}/{}: {described}",
            key.0, key.1
        )),
    };
    classified.with_source(error)
}

impl Issuer for CertManagerIssuer {
    fn backend_name(&self) -> &'static str {
        "cert-manager"
    }

    fn needs_pod_token(&self) -> bool {
        self.settings.use_token_request
    }

    fn readiness(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        let verdict = self.cache.readiness(self.settings.watch_error_grace);
        Box::pin(std::future::ready(verdict))
    }

    fn managed_requests(&self) -> usize {
        self.cache.len()
    }

    fn issue<'a>(&'a self, order: &'a IssueOrder) -> IssueFuture<'a> {
        Box::pin(self.issue_order(order))
    }

    fn volume_gone(&self, volume_id: &str, namespace: &str, interrupted: bool) {
        let pending = pending_for(&self.cache, volume_id, namespace);
        if pending.is_empty() && !interrupted {
            return;
        }
        let connection = self.connection.clone();
        let cache = Arc::clone(&self.cache);
        let (volume, namespace) = (volume_id.to_string(), namespace.to_string());
        // Withdraws what is pending now, then keeps looking (in memory, at the watch's view) for
        // a while: a create the unpublish cut off may still reach the API server once it answers
        // again, however long an outage lasts.
        let task = tokio::spawn(async move {
            let give_up = Instant::now() + WITHDRAW_WATCH;
            let mut pending = pending;
            loop {
                for cr in &pending {
                    tracing::info!(volume_id = %volume, request = %cr.reference(), "withdrawing the pending CertificateRequest of an unpublished volume");
                }
                let deadline = Instant::now() + WITHDRAW_TIMEOUT;
                futures_util::future::join_all(
                    pending
                        .iter()
                        .map(|cr| delete_request(&connection, cr, deadline)),
                )
                .await;
                if Instant::now() >= give_up {
                    return;
                }
                tokio::time::sleep(WITHDRAW_LOOK_AGAIN).await;
                pending = pending_for(&cache, &volume, &namespace);
            }
        });
        let mut withdrawals = self.withdrawals();
        withdrawals.retain(|_, withdrawal| !withdrawal.is_finished());
        if let Some(earlier) = withdrawals.insert(volume_id.to_string(), task.abort_handle()) {
            earlier.abort();
        }
    }
}
