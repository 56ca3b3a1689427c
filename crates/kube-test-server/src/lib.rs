//! A Kubernetes-API-compatible test server and a cert-manager-like signer, for the driver's
//! tests and benchmarks.
//!
//! [`TestApiServer`] serves HTTPS on 127.0.0.1 as a real API server does (TLS with a CA it makes at
//! start, ALPN `h2` or `http/1.1`; [`TestApiServer::start_plain`] serves plain HTTP/1.1) and speaks the REST paths and JSON that
//! the `kube` client sends (create, get, list, watch, replace, patch, delete, on any resource and
//! its `/status`), keeping objects in memory. Tests point a client at it with
//! [`TestApiServer::write_kubeconfig`], inspect what it was asked with
//! [`TestApiServer::requests`] and [`TestApiServer::connections`], and inject faults. [`Signer`] answers CertificateRequests the way
//! cert-manager would, with a test CA.
//!
//! Deliberately not modelled: authorization, admission, finalizers, graceful deletion over HTTP
//! (a DELETE removes at once; [`TestApiServer::mark_deleting`] starts one in-process),
//! schema validation, server-side apply's field ownership (apply is a merge patch here),
//! strategic merge's list merging (it is a merge patch here), pagination (lists are whole),
//! client-certificate authentication (tokens only), discovery endpoints.

mod http;
mod patch;
mod selector;
mod signer;
mod store;
mod tls;

pub use http::{AuditEntry, Connections};
pub use signer::{IGNORED_ISSUER, Signer, SignerMode};
pub use store::{Change, ChangeKind};

use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use store::{Collection, Part};

/// The bearer token pre-registered by [`TestApiServer::start`].
pub const DRIVER_TOKEN: &str = "driver-token";
/// The user [`DRIVER_TOKEN`] authenticates as.
pub const DRIVER_USER: &str = "system:serviceaccount:cert-manager:cert-manager-csi-driver";
/// The user recorded as creator of objects made with [`TestApiServer::create_object`].
pub const ADMIN_USER: &str = "system:admin";

/// A running test API server. Cloning gives another handle to the same server; the server stops
/// accepting connections when the last handle is dropped (or its tokio runtime shuts down).
#[derive(Clone)]
pub struct TestApiServer {
    inner: Arc<Inner>,
}

struct Inner {
    api: Arc<http::ApiServer>,
    address: SocketAddr,
    /// The CA that signed the serving certificate (PEM); `None` when serving plain HTTP.
    ca_pem: Option<String>,
    _accept_loop: TaskGuard,
}

/// Aborts a task when dropped.
struct TaskGuard(tokio::task::AbortHandle);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TestApiServer {
    /// Binds 127.0.0.1 on a free port and serves HTTPS on a tokio task, with a CA made for this
    /// server (see [`TestApiServer::ca_pem`]) and ALPN offering `h2` and `http/1.1`, as a real API
    /// server does. Pre-registers [`DRIVER_TOKEN`] for [`DRIVER_USER`].
    pub async fn start() -> TestApiServer {
        let identity = tls::TlsIdentity::generate();
        let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config);
        TestApiServer::start_with(Some(acceptor), Some(identity.ca_pem)).await
    }

    /// Like [`TestApiServer::start`], but plain HTTP/1.1 (no TLS, so no h2): for clients that
    /// cannot be given the CA.
    pub async fn start_plain() -> TestApiServer {
        TestApiServer::start_with(None, None).await
    }

    async fn start_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        ca_pem: Option<String>,
    ) -> TestApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let address = listener.local_addr().expect("the listener's address");
        let api = Arc::new(http::ApiServer::default());
        api.add_token(DRIVER_TOKEN, DRIVER_USER);
        let accept_loop = tokio::spawn(http::serve(listener, api.clone(), tls));
        TestApiServer {
            inner: Arc::new(Inner {
                api,
                address,
                ca_pem,
                _accept_loop: TaskGuard(accept_loop.abort_handle()),
            }),
        }
    }

    /// `https://127.0.0.1:PORT` (`http://` from [`TestApiServer::start_plain`]).
    pub fn url(&self) -> String {
        let scheme = if self.inner.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.inner.address)
    }

    /// The CA that signed the server's certificate (PEM), or `None` for a plain-HTTP server.
    pub fn ca_pem(&self) -> Option<&str> {
        self.inner.ca_pem.as_deref()
    }

    /// Connections accepted so far and the protocol each negotiated.
    pub fn connections(&self) -> Connections {
        self.inner.api.connections()
    }

    /// Lets `token` authenticate as `user` (and un-rejects it).
    pub fn add_token(&self, token: &str, user: &str) {
        self.inner.api.add_token(token, user);
    }

    /// From now on, requests with `token` get 401 Unauthorized.
    pub fn reject_token(&self, token: &str) {
        self.inner.api.reject_token(token);
    }

    /// Writes a kubeconfig (YAML) that points at this server, trusts its CA
    /// (`certificate-authority-data`) and authenticates with `token`.
    ///
    /// # Panics
    /// If the file cannot be written.
    pub fn write_kubeconfig(&self, path: &Path, token: &str) {
        use base64::Engine as _;
        // JSON strings are valid YAML double-quoted scalars.
        let quote = |s: &str| Value::from(s).to_string();
        let trust = match self.ca_pem() {
            Some(pem) => format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            ),
            None => String::new(),
        };
        let kubeconfig = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: kube-test-server\n  cluster:\n    server: {server}\n{trust}\
             users:\n\
             - name: kube-test-user\n  user:\n    token: {token}\n\
             contexts:\n\
             - name: kube-test-server\n  context:\n    cluster: kube-test-server\n    user: kube-test-user\n    namespace: default\n\
             current-context: kube-test-server\n",
            server = quote(&self.url()),
            token = quote(token),
        );
        std::fs::write(path, kubeconfig)
            .unwrap_or_else(|e| panic!("writing kubeconfig {}: {e}", path.display()));
    }

    /// Creates an object as if [`ADMIN_USER`] had POSTed it, filling in its metadata
    /// (name from `generateName`, uid, resourceVersion, creationTimestamp, generation, namespace).
    /// `namespace` is empty for cluster-scoped objects.
    ///
    /// # Panics
    /// If the API server would refuse it (no name, name taken, namespace mismatch).
    pub fn create_object(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
        object: Value,
    ) -> Value {
        self.inner
            .api
            .store
            .create(
                &Collection::new(api_version, resource),
                namespace,
                object,
                Some(ADMIN_USER),
            )
            .unwrap_or_else(|e| panic!("creating {resource} in {namespace:?}: {}", e.message))
    }

    pub fn get_object(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let collection = Collection::new(api_version, resource);
        self.inner.api.store.get(&collection, namespace, name).ok()
    }

    /// Every object of a resource, in all namespaces, in creation order.
    pub fn list_objects(&self, api_version: &str, resource: &str) -> Vec<Value> {
        let collection = Collection::new(api_version, resource);
        self.inner.api.store.all_in_creation_order(&collection)
    }

    /// Changes an object with `f` (status included; its name, namespace, uid and creation time
    /// are kept), bumps its resourceVersion and tells watchers (MODIFIED). Returns the new
    /// object, or `None` if there is no such object. As on a real API server, a change that
    /// changes nothing is no write: no new resourceVersion, no event.
    pub fn update_object(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        let collection = Collection::new(api_version, resource);
        self.inner
            .api
            .store
            .modify(&collection, namespace, name, None, Part::Whole, |old| {
                let mut new = old.clone();
                f(&mut new);
                Ok(new)
            })
            .ok()
    }

    /// Starts a graceful deletion, as the API server does on the first DELETE of a pod with a
    /// grace period: `metadata.deletionTimestamp` (now + `grace_seconds`) and
    /// `deletionGracePeriodSeconds` are set and watchers get MODIFIED, but the object stays until
    /// [`TestApiServer::delete_object`] (kubelet's final delete). A second call keeps the first
    /// timestamp, as the API server does. Returns the object, or `None` if absent.
    ///
    /// (HTTP DELETE stays immediate for every resource; see the crate documentation.)
    pub fn mark_deleting(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
        grace_seconds: u64,
    ) -> Option<Value> {
        self.update_object(api_version, resource, namespace, name, |object| {
            if object["metadata"].get("deletionTimestamp").is_none() {
                object["metadata"]["deletionTimestamp"] =
                    Value::from(store::rfc3339_in(Duration::from_secs(grace_seconds)));
                object["metadata"]["deletionGracePeriodSeconds"] = Value::from(grace_seconds);
            }
        })
    }

    /// Marks `namespace` as being deleted, as `kubectl delete namespace` does until its last
    /// object is gone: every create in it is then refused with the API server's 403 (reason
    /// `Forbidden`, cause `NamespaceTerminating`). `false` ends it.
    pub fn set_namespace_terminating(&self, namespace: &str, terminating: bool) {
        self.inner
            .api
            .store
            .set_namespace_terminating(namespace, terminating);
    }

    /// Deletes an object and tells watchers (DELETED). Returns it, or `None` if absent.
    pub fn delete_object(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let collection = Collection::new(api_version, resource);
        self.inner
            .api
            .store
            .delete(&collection, namespace, name)
            .ok()
    }

    /// The user whose request created the object, if it exists.
    pub fn created_by(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Option<String> {
        let collection = Collection::new(api_version, resource);
        self.inner
            .api
            .store
            .created_by(&collection, namespace, name)
    }

    /// An in-process feed of every change, in resourceVersion order. A receiver that falls more
    /// than 16384 changes behind gets `RecvError::Lagged`.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.inner.api.store.subscribe()
    }

    /// Every request received so far (since the last [`TestApiServer::clear_requests`]).
    pub fn requests(&self) -> Vec<AuditEntry> {
        self.inner.api.requests()
    }

    pub fn clear_requests(&self) {
        self.inner.api.clear_requests();
    }

    /// The next `count` authenticated requests that match `method` (e.g. `"GET"`, any if `None`)
    /// and whose path contains `path_contains` (any if `None`) are answered with `status` and a
    /// `Status` body, without being executed. Faults queue up; each request consumes at most one.
    ///
    /// Note that kube's client retries 429, 503 and 504 by itself (up to 15 times, from 5 ms).
    pub fn fail_next(
        &self,
        count: usize,
        status: u16,
        method: Option<&str>,
        path_contains: Option<&str>,
    ) {
        self.inner
            .api
            .fail_next(count, status, method, path_contains);
    }

    /// Forgets every fault queued by [`TestApiServer::fail_next`] that has not fired yet.
    pub fn clear_faults(&self) {
        self.inner.api.clear_faults();
    }

    /// Breaks every open watch connection now (without an ERROR event), as a crashing API
    /// server or a load balancer would. Clients resume from their last resourceVersion.
    pub fn drop_watches(&self) {
        self.inner.api.store.drop_watches();
    }

    /// Forgets the change history, as etcd compaction does: open watches get a `410 Expired`
    /// ERROR event and are closed, and so is any later watch from an older resourceVersion than
    /// the current one. Clients must re-list.
    pub fn expire_history(&self) {
        self.inner.api.store.expire_history();
    }

    /// A delay before answering every non-watch request (default none).
    pub fn set_latency(&self, latency: Duration) {
        self.inner.api.set_latency(latency);
    }

    /// Freezes the server (`true`) or thaws it (`false`): while frozen it accepts connections but
    /// answers no request and delivers no watch event, like an API server that hangs or is cut
    /// off; on thawing, held requests proceed and watches catch up.
    pub fn set_frozen(&self, frozen: bool) {
        self.inner.api.set_frozen(frozen);
    }

    /// How many watch streams are open.
    pub fn open_watches(&self) -> usize {
        self.inner.api.store.open_watches()
    }
}
