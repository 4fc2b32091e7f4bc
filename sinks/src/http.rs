//! The HTTP endpoints (design §7): `/metrics`, `/health`, `/ready`, and
//! `/v1/blocks/{tenant}/{kind}/{id}` (`GET` the records in force on a subject;
//! `DELETE`, with `Authorization: Bearer $WARDEN_ADMIN_TOKEN`, lifts them). A subject
//! without a tenant is `/v1/blocks/{kind}/{id}`, or `/v1/blocks//{kind}/{id}` with the
//! tenant segment empty. Segments are percent-decoded.
//! `POST /v1/admin/reload` (same bearer token) reloads the rules from the config file.
//!
//! Requests are limited per client address (governor; 429 past the limit), and the
//! admin token is compared in constant time. Every request is counted by method,
//! route template and status, a wrong method (405) or an unknown path
//! (`route="unmatched"`) included.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};
use warden_schemas::Record;

use crate::metrics::{HttpLabels, Metrics};
use crate::registry::{BlockRegistry, SubjectKey};

/// A request to lift every record in force on a subject, answered with the `lift`
/// decisions emitted.
#[derive(Debug)]
pub struct LiftRequest {
    /// The subject.
    pub subject: SubjectKey,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Vec<Record>>,
}

/// A request to reload the rules, answered with the outcome (the error names the
/// config field at fault; the old rules keep running).
#[derive(Debug)]
pub struct ReloadRequest {
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// What the endpoints read.
#[derive(Clone)]
pub struct HttpState {
    /// Metrics to expose and count into.
    pub metrics: Arc<Metrics>,
    /// Records in force.
    pub registry: Arc<BlockRegistry>,
    /// Partitions assigned and state restored.
    pub ready: Arc<AtomicBool>,
    /// `WARDEN_ADMIN_TOKEN`; `None` disables `DELETE`.
    pub admin_token: Option<Arc<str>>,
    /// Where lifts go.
    pub lifts: mpsc::Sender<LiftRequest>,
    /// Where reloads go; `None` disables `/v1/admin/reload`.
    pub reloads: Option<mpsc::Sender<ReloadRequest>>,
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState").field("admin", &self.admin_token.is_some()).finish_non_exhaustive()
    }
}

impl HttpState {
    /// State for the endpoints; `per_second` requests per client address.
    pub fn new(
        metrics: Arc<Metrics>,
        registry: Arc<BlockRegistry>,
        ready: Arc<AtomicBool>,
        admin_token: Option<String>,
        lifts: mpsc::Sender<LiftRequest>,
        per_second: u32,
    ) -> HttpState {
        let quota = Quota::per_second(NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN));
        HttpState {
            metrics,
            registry,
            ready,
            admin_token: admin_token.map(Arc::from),
            lifts,
            reloads: None,
            limiter: Arc::new(RateLimiter::keyed(quota)),
        }
    }

    /// Enables `POST /v1/admin/reload`, sending requests to `reloads`.
    pub fn with_reloads(mut self, reloads: mpsc::Sender<ReloadRequest>) -> HttpState {
        self.reloads = Some(reloads);
        self
    }
}

const BLOCKS_ROUTE: &str = "/v1/blocks/{tenant}/{kind}/{id}";
/// A subject without a tenant (a log event's `service` scope).
const BLOCKS_ROUTE_NO_TENANT: &str = "/v1/blocks/{kind}/{id}";
/// The same, with the tenant segment left empty, as the record's Kafka key has it
/// (`/service/api`).
const BLOCKS_ROUTE_EMPTY_TENANT: &str = "/v1/blocks//{kind}/{id}";

/// The router of every endpoint.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route(BLOCKS_ROUTE, get(get_blocks).delete(delete_blocks))
        .route(BLOCKS_ROUTE_NO_TENANT, get(get_blocks_no_tenant).delete(delete_blocks_no_tenant))
        .route(BLOCKS_ROUTE_EMPTY_TENANT, get(get_blocks_no_tenant).delete(delete_blocks_no_tenant))
        .route(RELOAD_ROUTE, post(reload))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// Counts every answer, whoever gave it: a handler, the router's 405 for a
/// method a route does not take, or its 404 for a path no route matches.
async fn count_requests(
    State(s): State<HttpState>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str).to_owned();
    let response = next.run(req).await;
    let labels = HttpLabels { method: method.as_str().into(), route, code: response.status().as_u16().to_string() };
    s.metrics.http_requests.get_or_create(&labels).inc();
    response
}

/// Serves `router` on `addr` until `shutdown` resolves: says where it listens,
/// and hands back the server's task, which ends once the requests in flight
/// at shutdown are answered.
pub async fn serve(
    listener: std::net::TcpListener,
    state: HttpState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok((bound, server))
}

fn limited(state: &HttpState, peer: &SocketAddr) -> Option<Response> {
    if state.limiter.check_key(&peer.ip()).is_err() {
        return Some((StatusCode::TOO_MANY_REQUESTS, "too many requests\n").into_response());
    }
    None
}

async fn metrics(State(s): State<HttpState>, ConnectInfo(peer): ConnectInfo<SocketAddr>) -> Response {
    if let Some(r) = limited(&s, &peer) {
        return r;
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
        .into_response()
}

async fn health() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn ready(State(s): State<HttpState>) -> Response {
    let (code, body) = if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    };
    (code, body).into_response()
}

async fn get_blocks(
    State(s): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((tenant, kind, id)): Path<(String, String, String)>,
) -> Response {
    blocks(s, peer, Method::GET, HeaderMap::new(), (Some(tenant), kind, id)).await
}

async fn get_blocks_no_tenant(
    State(s): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    blocks(s, peer, Method::GET, HeaderMap::new(), (None, kind, id)).await
}

async fn delete_blocks(
    State(s): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((tenant, kind, id)): Path<(String, String, String)>,
) -> Response {
    blocks(s, peer, Method::DELETE, headers, (Some(tenant), kind, id)).await
}

async fn delete_blocks_no_tenant(
    State(s): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    blocks(s, peer, Method::DELETE, headers, (None, kind, id)).await
}

async fn blocks(s: HttpState, peer: SocketAddr, method: Method, headers: HeaderMap, key: SubjectKey) -> Response {
    if let Some(r) = limited(&s, &peer) {
        return r;
    }
    let (code, body) = if method == Method::DELETE { lift(&s, &headers, key).await } else { show(&s, &key) };
    let mut response = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if code == StatusCode::METHOD_NOT_ALLOWED {
        // Lifting is disabled: what the route still allows (RFC 9110 §15.5.6).
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
    }
    response
}

fn show(s: &HttpState, key: &SubjectKey) -> (StatusCode, String) {
    let active = s.registry.active(key);
    if active.is_empty() {
        return (StatusCode::NOT_FOUND, "{\"records\":[]}\n".into());
    }
    (StatusCode::OK, format!("{}\n", BlockRegistry::to_json(key, &active)))
}

/// Checks the bearer token in constant time; the error is the answer to send.
fn authorize(s: &HttpState, headers: &HeaderMap, what: &str) -> Result<(), (StatusCode, String)> {
    let Some(token) = &s.admin_token else {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{{\"error\":\"{what} is disabled: WARDEN_ADMIN_TOKEN is not set\"}}\n"),
        ));
    };
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim_start());
    if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        return Err((StatusCode::UNAUTHORIZED, "{\"error\":\"bad or missing bearer token\"}\n".into()));
    }
    Ok(())
}

const RELOAD_ROUTE: &str = "/v1/admin/reload";

async fn reload(
    State(s): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = limited(&s, &peer) {
        return r;
    }
    let (code, body) = match authorize(&s, &headers, "reloading") {
        Err(answer) => answer,
        Ok(()) => reload_now(&s).await,
    };
    let mut response = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if code == StatusCode::METHOD_NOT_ALLOWED {
        // Reloading is disabled: the route allows no method (RFC 9110 §10.2.1).
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(""));
    }
    response
}

async fn reload_now(s: &HttpState) -> (StatusCode, String) {
    let Some(reloads) = &s.reloads else {
        return (StatusCode::NOT_FOUND, "{\"error\":\"no config file to reload\"}\n".into());
    };
    let (reply, answer) = oneshot::channel();
    if reloads.send(ReloadRequest { reply }).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "{\"error\":\"shutting down\"}\n".into());
    }
    match answer.await {
        Ok(Ok(summary)) => (StatusCode::OK, format!("{}\n", serde_json::json!({ "reloaded": summary }))),
        Ok(Err(error)) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{}\n", serde_json::json!({ "error": error }))),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "{\"error\":\"shutting down\"}\n".into()),
    }
}

async fn lift(s: &HttpState, headers: &HeaderMap, key: SubjectKey) -> (StatusCode, String) {
    if let Err(answer) = authorize(s, headers, "lifting") {
        return answer;
    }
    let (reply, answer) = oneshot::channel();
    if s.lifts.send(LiftRequest { subject: key, reply }).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "{\"error\":\"shutting down\"}\n".into());
    }
    match answer.await {
        Ok(records) if records.is_empty() => (StatusCode::NOT_FOUND, "{\"lifted\":[]}\n".into()),
        Ok(records) => {
            let lifted: Vec<serde_json::Value> =
                records.iter().map(|r| serde_json::from_str(&r.to_json()).unwrap_or_default()).collect();
            (StatusCode::OK, format!("{}\n", serde_json::json!({ "lifted": lifted })))
        }
        Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "{\"error\":\"the partition owning the subject went away\"}\n".into())
        }
    }
}
