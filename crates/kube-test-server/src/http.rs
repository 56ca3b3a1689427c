//! The HTTP front end (HTTP/1.1, and h2 over TLS): authentication, the audit log, injected faults and latency, and the
//! mapping of Kubernetes REST paths and verbs onto the [`Store`], including streamed watches.
//!
//! This exists so the driver can be tested through its real kube client and nothing else: every
//! request and response here has the shape a kube-apiserver would give it.

use crate::patch::PatchFormat;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{ApiError, Collection, Part, Store, WatchFilter, WatchMessage, WatchStart};
use crate::tls::ALPN_H2;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::{Mutex, MutexGuard};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

/// How long a watch lasts without `timeoutSeconds` (a real server picks 30 to 60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

type Body = BoxBody<Bytes, io::Error>;

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub method: String,
    /// The URL path, as sent (not percent-decoded).
    pub path: String,
    /// The raw query string, empty if none.
    pub query: String,
    /// The authenticated user, `None` if the request was refused as unauthenticated.
    pub user: Option<String>,
    /// The client's `User-Agent`, if it sent one.
    pub user_agent: Option<String>,
    /// The response status (for a watch: the status the stream started with).
    pub status: u16,
    pub watch: bool,
    /// When the request arrived.
    pub at: Instant,
}

/// A pending `fail_next`.
struct Fault {
    remaining: usize,
    status: u16,
    method: Option<String>,
    path_contains: Option<String>,
}

#[derive(Default)]
struct Control {
    users_by_token: HashMap<String, String>,
    rejected_tokens: HashSet<String>,
    audit: Vec<AuditEntry>,
    faults: VecDeque<Fault>,
    latency: Duration,
}

/// The server's state: the objects, and the knobs the HTTP layer applies to every request.
pub struct ApiServer {
    pub store: Store,
    control: Mutex<Control>,
    /// While true the server is unresponsive, like a frozen or partitioned API server:
    /// connections are accepted, but requests get no answer and watches deliver nothing until
    /// it thaws (then everything held back goes out).
    frozen: tokio::sync::watch::Sender<bool>,
    connections: ConnectionCounters,
}

impl Default for ApiServer {
    fn default() -> Self {
        ApiServer {
            store: Store::default(),
            control: Mutex::default(),
            frozen: tokio::sync::watch::Sender::new(false),
            connections: ConnectionCounters::default(),
        }
    }
}

impl ApiServer {
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock()
    }

    pub fn add_token(&self, token: &str, user: &str) {
        let mut control = self.control();
        control.rejected_tokens.remove(token);
        control
            .users_by_token
            .insert(token.to_string(), user.to_string());
    }

    pub fn reject_token(&self, token: &str) {
        self.control().rejected_tokens.insert(token.to_string());
    }

    pub fn requests(&self) -> Vec<AuditEntry> {
        self.control().audit.clone()
    }

    pub fn clear_requests(&self) {
        self.control().audit.clear();
    }

    pub fn fail_next(
        &self,
        count: usize,
        status: u16,
        method: Option<&str>,
        path_contains: Option<&str>,
    ) {
        if count > 0 {
            self.control().faults.push_back(Fault {
                remaining: count,
                status,
                method: method.map(str::to_ascii_uppercase),
                path_contains: path_contains.map(str::to_string),
            });
        }
    }

    pub fn clear_faults(&self) {
        self.control().faults.clear();
    }

    pub fn set_latency(&self, latency: Duration) {
        self.control().latency = latency;
    }

    pub fn set_frozen(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }

    /// Returns once the server is not frozen.
    async fn thawed(&self) {
        let mut frozen = self.frozen.subscribe();
        let _ = frozen.wait_for(|frozen| !*frozen).await;
    }

    /// The user behind the request's bearer token, if it is known and not rejected.
    fn authenticate(&self, headers: &HeaderMap) -> Option<String> {
        let token = headers
            .get(AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .trim();
        let control = self.control();
        if control.rejected_tokens.contains(token) {
            return None;
        }
        control.users_by_token.get(token).cloned()
    }

    /// Consumes one use of the first pending fault that matches the request.
    fn take_fault(&self, method: &str, path: &str) -> Option<u16> {
        let mut control = self.control();
        let index = control.faults.iter().position(|f| {
            f.method.as_deref().is_none_or(|m| m == method)
                && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
        })?;
        let fault = &mut control.faults[index];
        let status = fault.status;
        fault.remaining -= 1;
        if fault.remaining == 0 {
            control.faults.remove(index);
        }
        Some(status)
    }
}

/// How many connections the server accepted, and what each one spoke.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Connections {
    /// TCP connections accepted.
    pub accepted: usize,
    /// Connections that served HTTP/1.1 (over TLS without ALPN `h2`, or plain).
    pub http1: usize,
    /// Connections that negotiated `h2` by ALPN.
    pub h2: usize,
    /// TLS handshakes that failed (e.g. a client that does not trust the CA).
    pub tls_failed: usize,
}

#[derive(Default)]
struct ConnectionCounters {
    accepted: AtomicUsize,
    http1: AtomicUsize,
    h2: AtomicUsize,
    tls_failed: AtomicUsize,
}

impl ApiServer {
    pub fn connections(&self) -> Connections {
        let counters = &self.connections;
        Connections {
            accepted: counters.accepted.load(Ordering::Relaxed),
            http1: counters.http1.load(Ordering::Relaxed),
            h2: counters.h2.load(Ordering::Relaxed),
            tls_failed: counters.tls_failed.load(Ordering::Relaxed),
        }
    }
}

/// Accepts connections until the task is aborted: TLS with ALPN when `tls` is given (`h2` or
/// HTTP/1.1, as negotiated), else plain HTTP/1.1.
pub async fn serve(listener: TcpListener, server: Arc<ApiServer>, tls: Option<TlsAcceptor>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // e.g. out of file descriptors: try again shortly instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        server.connections.accepted.fetch_add(1, Ordering::Relaxed);
        let server = server.clone();
        let tls = tls.clone();
        // A client going away mid-request or mid-handshake is not our problem.
        tokio::spawn(async move {
            let Some(tls) = tls else {
                server.connections.http1.fetch_add(1, Ordering::Relaxed);
                let _ = serve_http1(TokioIo::new(stream), server).await;
                return;
            };
            let stream = match tls.accept(stream).await {
                Ok(stream) => stream,
                Err(_) => {
                    server
                        .connections
                        .tls_failed
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            if stream.get_ref().1.alpn_protocol() == Some(ALPN_H2) {
                server.connections.h2.fetch_add(1, Ordering::Relaxed);
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                // Go's default, which kube-apiserver keeps unless
                // --http2-max-streams-per-connection says otherwise.
                builder.max_concurrent_streams(250);
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service(server))
                    .await;
            } else {
                server.connections.http1.fetch_add(1, Ordering::Relaxed);
                let _ = serve_http1(TokioIo::new(stream), server).await;
            }
        });
    }
}

async fn serve_http1<I>(io: I, server: Arc<ApiServer>) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
{
    hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service(server))
        .await
}

fn service(
    server: Arc<ApiServer>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |request| {
        let server = server.clone();
        async move { Ok::<_, Infallible>(server.handle(request).await) }
    })
}

impl ApiServer {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let at = Instant::now();
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or("").to_string();
        let params = Params::parse(&query);
        let watch = matches!(params.get("watch"), Some("true" | "1"));
        self.thawed().await;
        if !watch {
            let latency = self.control().latency;
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
        }
        let user = self.authenticate(request.headers());
        let user_agent = request
            .headers()
            .get(hyper::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let response = if user.is_none() {
            error_response(&ApiError::new(401, "Unauthorized", "Unauthorized"))
        } else if let Some(status) = self.take_fault(&method, &path) {
            let message =
                format!("injected failure: the test server answers {status} to this request");
            let mut error = ApiError::new(status, reason_for(status), message);
            if status == 429 {
                // As the API server's priority and fairness answers: the wait in the Status's
                // details and in a Retry-After header.
                error.details = Some(json!({ "retryAfterSeconds": 1 }));
            }
            error_response(&error)
        } else {
            match self
                .clone()
                .route(request, &path, &params, user.as_deref(), watch)
                .await
            {
                Ok(response) => response,
                Err(error) => error_response(&error),
            }
        };
        let status = response.status().as_u16();
        self.control().audit.push(AuditEntry {
            method,
            path,
            query,
            user,
            user_agent,
            status,
            watch,
            at,
        });
        response
    }

    async fn route(
        self: Arc<Self>,
        request: Request<Incoming>,
        path: &str,
        params: &Params,
        user: Option<&str>,
        watch: bool,
    ) -> Result<Response<Body>, ApiError> {
        let method = request.method().clone();
        if path == "/version" && method == Method::GET {
            return Ok(json_response(StatusCode::OK, &version_info()));
        }
        let target = Target::parse(path).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })?;
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = request
            .into_body()
            .collect()
            .await
            .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
            .to_bytes();
        let store = &self.store;
        let collection = &target.collection;
        let namespace = target.namespace.as_deref().unwrap_or("");

        let Some(name) = target.name.as_deref() else {
            let filter = list_filter(&target, params)?;
            return match method {
                Method::GET if watch => Ok(self.clone().watch(filter, params)?),
                Method::GET => {
                    let list = store.list(&filter);
                    Ok(json_response(
                        StatusCode::OK,
                        &list_json(collection, &list.kind, list.resource_version, list.items),
                    ))
                }
                Method::POST => {
                    let created = store.create(collection, namespace, parse_json(&body)?, user)?;
                    Ok(json_response(StatusCode::CREATED, &created))
                }
                Method::DELETE => {
                    let list = store.list(&filter);
                    let mut deleted = Vec::new();
                    for item in &list.items {
                        let (ns, name) = (meta(item, "namespace"), meta(item, "name"));
                        // Already gone: someone else deleted it meanwhile.
                        if let Ok(object) = store.delete(collection, ns, name) {
                            deleted.push(object);
                        }
                    }
                    let version = store.resource_version();
                    Ok(json_response(
                        StatusCode::OK,
                        &list_json(collection, &list.kind, version, deleted),
                    ))
                }
                _ => Err(method_not_allowed(&method)),
            };
        };

        let part = match target.subresource.as_deref() {
            None => Part::Main,
            Some("status") => Part::Status,
            Some(other) => {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    format!("the test server does not serve the {other:?} subresource"),
                ));
            }
        };
        match method {
            Method::GET => Ok(json_response(
                StatusCode::OK,
                &store.get(collection, namespace, name)?,
            )),
            Method::PUT => {
                let object = parse_json(&body)?;
                let body_name = meta(&object, "name");
                if !body_name.is_empty() && body_name != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({name})"
                    )));
                }
                let expected = Some(meta(&object, "resourceVersion")).filter(|v| !v.is_empty());
                let replaced = store.modify(collection, namespace, name, expected, part, |_| {
                    Ok(object.clone())
                })?;
                Ok(json_response(StatusCode::OK, &replaced))
            }
            Method::PATCH => {
                let format = PatchFormat::from_content_type(&content_type).ok_or_else(|| {
                    ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!("the body of the request was in an unknown format: {content_type}"),
                    )
                })?;
                let patch = parse_json(&body)?;
                if format == PatchFormat::Apply
                    && patch.is_object()
                    && store.get(collection, namespace, name).is_err()
                {
                    let mut object = patch;
                    object["metadata"]["name"] = json!(name);
                    let created = store.create(collection, namespace, object, user)?;
                    return Ok(json_response(StatusCode::CREATED, &created));
                }
                let expected = match format {
                    PatchFormat::Json => None,
                    _ => Some(meta(&patch, "resourceVersion")).filter(|v| !v.is_empty()),
                };
                let patched = store.modify(collection, namespace, name, expected, part, |old| {
                    let mut new = old.clone();
                    format.apply(&mut new, &patch).map_err(ApiError::invalid)?;
                    Ok(new)
                })?;
                Ok(json_response(StatusCode::OK, &patched))
            }
            Method::DELETE if part == Part::Main => {
                // The body may hold DeleteOptions; deletion here is always immediate.
                Ok(json_response(
                    StatusCode::OK,
                    &store.delete(collection, namespace, name)?,
                ))
            }
            _ => Err(method_not_allowed(&method)),
        }
    }

    /// Starts a watch stream: one JSON watch event per line, each sent as soon as it happens.
    fn watch(
        self: Arc<Self>,
        filter: WatchFilter,
        params: &Params,
    ) -> Result<Response<Body>, ApiError> {
        let start = if params.get("sendInitialEvents") == Some("true") {
            WatchStart::InitialEvents
        } else {
            match params.get("resourceVersion").unwrap_or("") {
                "" | "0" => WatchStart::Snapshot,
                version => WatchStart::After(version.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {version:?}"))
                })?),
            }
        };
        let timeout = params
            .get("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
        let stream = WatchStream {
            api_version: filter.collection.api_version.clone(),
            kind: self.store.kind_of(&filter.collection),
            bookmarks: params.get("allowWatchBookmarks") == Some("true"),
            timeout,
        };
        let (id, messages) = self.store.watch(filter, start);
        let (frames, body) = mpsc::channel(64);
        tokio::spawn(async move {
            stream.pump(&self, id, messages, frames).await;
            self.store.remove_watch(id);
        });
        let body = BodyExt::boxed(StreamBody::new(ReceiverStream::new(body)));
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .unwrap_or_else(|_| Response::new(empty_body())))
    }
}

/// How one watch renders its store messages onto the response body.
struct WatchStream {
    api_version: String,
    kind: String,
    bookmarks: bool,
    timeout: Duration,
}

impl WatchStream {
    async fn pump(
        self,
        server: &ApiServer,
        id: u64,
        mut messages: mpsc::UnboundedReceiver<WatchMessage>,
        frames: mpsc::Sender<Result<Frame<Bytes>, io::Error>>,
    ) {
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let mut bookmark_timer = tokio::time::interval_at(
            tokio::time::Instant::now() + BOOKMARK_INTERVAL,
            BOOKMARK_INTERVAL,
        );
        let store = &server.store;
        let mut timed_out = false;
        loop {
            // A frozen server sends nothing; what happened meanwhile follows once it thaws.
            server.thawed().await;
            let message = tokio::select! {
                message = messages.recv() => message,
                () = &mut deadline, if !timed_out => {
                    // The store answers with a last BOOKMARK (if wanted) and End.
                    timed_out = true;
                    store.end_watch(id, self.bookmarks);
                    continue;
                }
                _ = bookmark_timer.tick(), if self.bookmarks && !timed_out => {
                    store.bookmark(id);
                    continue;
                }
                () = frames.closed() => return,
            };
            let line = match message {
                Some(WatchMessage::Event { event_type, object }) => {
                    json!({"type": event_type, "object": object})
                }
                Some(WatchMessage::Bookmark {
                    resource_version,
                    initial_events_end,
                }) => {
                    let mut metadata = json!({"resourceVersion": resource_version.to_string()});
                    if initial_events_end {
                        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                    }
                    let object = json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": metadata});
                    json!({"type": "BOOKMARK", "object": object})
                }
                Some(WatchMessage::Expired { message }) => {
                    let status = status_json(&ApiError::new(410, "Expired", message));
                    let _ = frames
                        .send(Ok(line_frame(&json!({"type": "ERROR", "object": status}))))
                        .await;
                    return;
                }
                Some(WatchMessage::Abort) => {
                    // An error body makes hyper cut the connection mid-stream (HTTP/1.1) or
                    // reset the stream (h2), as a dying API server or proxy would.
                    let _ = frames
                        .send(Err(io::Error::other("watch dropped by the test")))
                        .await;
                    return;
                }
                Some(WatchMessage::End) | None => return,
            };
            if frames.send(Ok(line_frame(&line))).await.is_err() {
                return;
            }
        }
    }
}

fn line_frame(value: &Value) -> Frame<Bytes> {
    let mut line = value.to_string();
    line.push('\n');
    Frame::data(Bytes::from(line))
}

/// A resource path, e.g. `/apis/cert-manager.io/v1/namespaces/ns/certificaterequests/x/status`.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    collection: Collection,
    /// `None` on paths without `namespaces/{ns}`: cluster-wide lists or cluster-scoped objects.
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

impl Target {
    fn parse(path: &str) -> Option<Target> {
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let (api_version, rest) = match segments.as_slice() {
            [api, version, rest @ ..] if api == "api" => (version.clone(), rest),
            [apis, group, version, rest @ ..] if apis == "apis" => {
                (format!("{group}/{version}"), rest)
            }
            _ => return None,
        };
        let (namespace, rest) = match rest {
            [namespaces, namespace, rest @ ..]
                if namespaces == "namespaces" && !rest.is_empty() =>
            {
                (Some(namespace.clone()), rest)
            }
            _ => (None, rest),
        };
        let (resource, name, subresource) = match rest {
            [resource] => (resource, None, None),
            [resource, name] => (resource, Some(name.clone()), None),
            [resource, name, sub] => (resource, Some(name.clone()), Some(sub.clone())),
            _ => return None,
        };
        if resource.is_empty() || name.as_deref() == Some("") {
            return None;
        }
        Some(Target {
            collection: Collection::new(&api_version, resource),
            namespace,
            name,
            subresource,
        })
    }
}

/// Decoded query parameters.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Params {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Params(
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(key), decode(value))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn list_filter(target: &Target, params: &Params) -> Result<WatchFilter, ApiError> {
    let labels = LabelSelector::parse(params.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(params.get("fieldSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(WatchFilter {
        collection: target.collection.clone(),
        namespace: target.namespace.clone(),
        labels,
        fields,
    })
}

fn list_json(
    collection: &Collection,
    kind: &str,
    resource_version: u64,
    items: Vec<Value>,
) -> Value {
    json!({
        "apiVersion": collection.api_version,
        "kind": format!("{kind}List"),
        "metadata": {"resourceVersion": resource_version.to_string()},
        "items": items,
    })
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn meta<'v>(object: &'v Value, key: &str) -> &'v str {
    object
        .pointer(&format!("/metadata/{key}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource: {method}"),
    )
}

/// The `reason` a real API server gives with a status code.
fn reason_for(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

fn status_json(error: &ApiError) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
        "code": error.code,
    });
    if let Some(details) = &error.details {
        status["details"] = details.clone();
    }
    status
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn empty_body() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let body = Full::new(Bytes::from(value.to_string()))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &status_json(error));
    if let Some(seconds) = error
        .details
        .as_ref()
        .and_then(|details| details["retryAfterSeconds"].as_u64())
    {
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from(seconds),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parsed path as `api_version|resource|namespace|name|subresource`.
    fn target(path: &str) -> Option<String> {
        Target::parse(path).map(|t| {
            let part = |s: Option<String>| s.unwrap_or_default();
            let Collection {
                api_version,
                resource,
            } = t.collection;
            let (namespace, name, sub) = (part(t.namespace), part(t.name), part(t.subresource));
            format!("{api_version}|{resource}|{namespace}|{name}|{sub}")
        })
    }

    #[test]
    fn parses_resource_paths() {
        let cases = [
            ("/api/v1/pods", "v1|pods|||"),
            ("/api/v1/namespaces/ns/pods", "v1|pods|ns||"),
            ("/api/v1/namespaces/ns/pods/p/status", "v1|pods|ns|p|status"),
            ("/api/v1/namespaces/ns", "v1|namespaces||ns|"),
            (
                "/apis/cert-manager.io/v1/certificaterequests",
                "cert-manager.io/v1|certificaterequests|||",
            ),
            (
                "/apis/events.k8s.io/v1/namespaces/ns/events/e.1",
                "events.k8s.io/v1|events|ns|e.1|",
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(target(path).as_deref(), Some(expected), "{path}");
        }
        for bad in [
            "/",
            "/api",
            "/apis/g",
            "/healthz",
            "/api/v1/namespaces/ns/pods/p/status/x",
            "/api/v1//x",
        ] {
            assert_eq!(target(bad), None, "{bad}");
        }
    }

    #[test]
    fn decodes_query_parameters() {
        let params = Params::parse("labelSelector=app+in+%28a%2Cb%29&watch=true&empty=&flag");
        assert_eq!(params.get("labelSelector"), Some("app in (a,b)"));
        assert_eq!(params.get("watch"), Some("true"));
        assert_eq!(params.get("empty"), Some(""));
        assert_eq!(params.get("flag"), Some(""));
        assert_eq!(params.get("missing"), None);
    }
}
