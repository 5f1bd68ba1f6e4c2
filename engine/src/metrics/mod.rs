//! Observability and the gateway on one HTTP/1.1 listener (hyper):
//! `/metrics` (Prometheus text format 0.0.4), `/health` (JSON)
//! (docs/observability.md), `/ws` (the WebSocket gateway, [`gateway`]) and
//! `/` (the live page).
//!
//! Off the hot path: one thread runs a tokio runtime that only reads what
//! the pipeline already publishes in
//! [`Registry`](crate::pipeline::stats::Registry) (single-writer atomics and
//! merged histograms); a scrape never blocks a pipeline thread. The same
//! thread checks the resident set size against `[metrics] memory_budget_mb`
//! once a second and warns once on stderr when it is exceeded.

pub mod expo;
pub mod gateway;
pub mod health;
pub mod render;

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::config::Config;
use crate::pipeline::clock::mono_ns;
use crate::pipeline::stats::{current_rss_bytes, Registry};

/// What kind of run is observed; decides how feed connectivity is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Live WebSocket feeds (`engine run`, `engine demo`).
    Live,
    /// Capture replay (`engine replay`): there is no connection to judge.
    Replay,
}

impl Mode {
    /// Name in `/health` and `wiresignal_build_info`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Replay => "replay",
        }
    }
}

/// What the listener needs besides the registry.
#[derive(Clone, Debug)]
pub struct MetricsOptions {
    /// Live or replay.
    pub mode: Mode,
    /// An instrument without an update for longer than this is stale.
    pub stale_after: Duration,
    /// RSS budget in bytes.
    pub memory_budget_bytes: Option<u64>,
    /// `(venue, symbol)` pairs that are expected (configured feeds); listed in
    /// `/health` as unhealthy until their first event.
    pub expected: Vec<(String, String)>,
}

impl MetricsOptions {
    /// Options from `[metrics]` (and, live, the `[[feeds]]` symbols).
    #[must_use]
    pub fn from_config(cfg: &Config, mode: Mode) -> Self {
        let expected = match mode {
            Mode::Live => cfg
                .feeds
                .iter()
                .flat_map(|f| f.symbols.iter().map(|s| (f.venue.clone(), s.clone())))
                .collect(),
            Mode::Replay => Vec::new(),
        };
        Self {
            mode,
            stale_after: cfg.metrics.stale_after,
            memory_budget_bytes: cfg.metrics.memory_budget_bytes,
            expected,
        }
    }
}

/// A running listener; stops (and joins its thread) when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// A client that does not send its request head in this time is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// The live page (static, no build step).
const PAGE: &str = include_str!("page.html");

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port), publishes the bound address
    /// in the registry ([`Registry::metrics_addr`]) and starts serving.
    pub fn start(
        addr: SocketAddr,
        registry: Arc<Registry>,
        opts: MetricsOptions,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| std::io::Error::new(e.kind(), format!("metrics listener {addr}: {e}")))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        registry.set_metrics_addr(addr);
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || rt.block_on(serve_loop(listener, registry, Arc::new(opts), stopped)))?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the listener when `[metrics] addr` (or `--metrics-addr`) is set.
pub fn serve(
    cfg: &Config,
    registry: &Arc<Registry>,
    mode: Mode,
) -> std::io::Result<Option<MetricsServer>> {
    let Some(addr) = cfg.metrics.addr else {
        return Ok(None);
    };
    let server = MetricsServer::start(
        addr,
        registry.clone(),
        MetricsOptions::from_config(cfg, mode),
    )?;
    eprintln!(
        "metrics on http://{0}/metrics, health on http://{0}/health",
        server.local_addr()
    );
    Ok(Some(server))
}

async fn serve_loop(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    opts: Arc<MetricsOptions>,
    mut stop: watch::Receiver<bool>,
) {
    let mut warned = false;
    let mut memory = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.changed() => {
                // Every row of the run was offered: let clients take them.
                if let Some(hub) = registry.gateway() {
                    hub.close(Duration::from_secs(1)).await;
                }
                break;
            }
            _ = memory.tick(), if !warned && opts.memory_budget_bytes.is_some() => {
                let budget = opts.memory_budget_bytes.unwrap_or(u64::MAX);
                let rss = current_rss_bytes();
                if rss > budget {
                    warned = true;
                    eprintln!(
                        "warning: resident memory {:.1} MB exceeds the memory budget of {} MB ([metrics] memory_budget_mb)",
                        rss as f64 / 1048576.0,
                        budget >> 20
                    );
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let (registry, opts) = (registry.clone(), opts.clone());
                    let mut stop = stop.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let (registry, opts) = (registry.clone(), opts.clone());
                            async move { Ok::<_, Infallible>(route(req, &registry, &opts)) }
                        });
                        // Names title-cased as most tools print them.
                        let conn = hyper::server::conn::http1::Builder::new()
                            .title_case_headers(true)
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades();
                        tokio::select! {
                            _ = conn => {}
                            _ = stop.changed() => {}
                        }
                    });
                }
                Err(e) => {
                    eprintln!("metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // One request per connection (scrapers and pages ask rarely); the
    // WebSocket upgrade keeps its connection.
    r.headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Answers one request (query ignored).
fn route(
    mut req: Request<Incoming>,
    registry: &Arc<Registry>,
    opts: &MetricsOptions,
) -> Response<Body> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let head = req.method() == hyper::Method::HEAD;
    if req.method() != hyper::Method::GET && !head {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET and HEAD\n");
    }
    let r = match req.uri().path() {
        "/metrics" => {
            let h = health::evaluate(registry, opts, mono_ns(), current_rss_bytes());
            reply(
                StatusCode::OK,
                expo::CONTENT_TYPE,
                render::render(registry, &h),
            )
        }
        "/health" => {
            let h = health::evaluate(registry, opts, mono_ns(), current_rss_bytes());
            let mut body = serde_json::to_string_pretty(&h.to_json()).unwrap_or_default();
            body.push('\n');
            let status = if h.ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply(status, "application/json", body)
        }
        "/ws" => return upgrade(&mut req, registry),
        "/" => reply(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found; try /, /metrics, /health or /ws\n",
        ),
    };
    if head {
        let (parts, _) = r.into_parts();
        return Response::from_parts(parts, Full::new(Bytes::new()));
    }
    r
}

/// `GET /ws`: the WebSocket handshake, then the gateway serves the socket.
fn upgrade(req: &mut Request<Incoming>, registry: &Registry) -> Response<Body> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    const TEXT: &str = "text/plain; charset=utf-8";
    let Some(hub) = registry.gateway() else {
        return reply(StatusCode::NOT_FOUND, TEXT, "no gateway in this run\n");
    };
    let headers = req.headers();
    let is_ws = headers
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers.get(hyper::header::SEC_WEBSOCKET_KEY).cloned();
    let (true, Some(key)) = (is_ws, key) else {
        return reply(
            StatusCode::BAD_REQUEST,
            TEXT,
            "a WebSocket upgrade request\n",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                None,
            )
            .await;
            hub.serve(ws).await;
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        hyper::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    h.insert(
        hyper::header::CONNECTION,
        HeaderValue::from_static("upgrade"),
    );
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}
