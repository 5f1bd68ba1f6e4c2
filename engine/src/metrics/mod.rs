//! Observability: `/metrics` (Prometheus text format 0.0.4) and `/health`
//! (JSON) on a small HTTP/1.1 listener (docs/observability.md).
//!
//! Off the hot path: one plain thread with a std `TcpListener` that only
//! reads what the pipeline already publishes in
//! [`Registry`](crate::pipeline::stats::Registry) (single-writer atomics and
//! merged histograms). Requests are served one at a time with
//! `Connection: close`; a scrape never blocks a pipeline thread. The same
//! thread checks the resident set size against `[metrics] memory_budget_mb`
//! once a second and warns once on stderr when it is exceeded.

pub mod expo;
pub mod health;
pub mod render;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How often the accept loop looks at the stop flag and the memory budget.
const POLL: Duration = Duration::from_millis(20);
/// Requests larger than this are refused.
const MAX_REQUEST: usize = 8192;
/// A client that does not send its request (or read the answer) in this time
/// is dropped, so it cannot hold the single serving thread.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

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
        registry.set_metrics_addr(addr);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || serve_loop(&listener, &registry, &opts, &stop))?
        };
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
        self.stop.store(true, Ordering::Relaxed);
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

fn serve_loop(
    listener: &TcpListener,
    registry: &Registry,
    opts: &MetricsOptions,
    stop: &AtomicBool,
) {
    let mut warned = false;
    let mut next_check = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(budget) = opts.memory_budget_bytes {
            if !warned && Instant::now() >= next_check {
                next_check = Instant::now() + Duration::from_secs(1);
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
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = handle(stream, registry, opts) {
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::BrokenPipe
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::UnexpectedEof
                    ) {
                        eprintln!("metrics: {e}");
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                eprintln!("metrics: accept failed: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// A response: status line, content type, body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
}

/// Answers one request of `method` for `path` (query ignored).
fn respond(method: &str, path: &str, registry: &Registry, opts: &MetricsOptions) -> Response {
    let path = path.split('?').next().unwrap_or(path);
    if method != "GET" && method != "HEAD" {
        return Response {
            status: "405 Method Not Allowed",
            content_type: "text/plain; charset=utf-8",
            body: "only GET and HEAD\n".into(),
        };
    }
    match path {
        "/metrics" => {
            let h = health::evaluate(registry, opts, mono_ns(), current_rss_bytes());
            Response {
                status: "200 OK",
                content_type: expo::CONTENT_TYPE,
                body: render::render(registry, &h),
            }
        }
        "/health" => {
            let h = health::evaluate(registry, opts, mono_ns(), current_rss_bytes());
            let mut body = serde_json::to_string_pretty(&h.to_json()).unwrap_or_default();
            body.push('\n');
            Response {
                status: if h.ok {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                },
                content_type: "application/json",
                body,
            }
        }
        "/" => Response {
            status: "200 OK",
            content_type: "text/plain; charset=utf-8",
            body: "wiresignal: /metrics /health\n".into(),
        },
        _ => Response {
            status: "404 Not Found",
            content_type: "text/plain; charset=utf-8",
            body: "not found; try /metrics or /health\n".into(),
        },
    }
}

fn handle(
    mut stream: TcpStream,
    registry: &Registry,
    opts: &MetricsOptions,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    let (method, path) = loop {
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                break (
                    req.method.unwrap_or("GET").to_owned(),
                    req.path.unwrap_or("/").to_owned(),
                );
            }
            Ok(httparse::Status::Partial) if len < buf.len() => {}
            _ => {
                let _ = stream.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return Ok(());
            }
        }
    };
    let r = respond(&method, &path, registry, opts);
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(r.body.as_bytes())?;
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}
