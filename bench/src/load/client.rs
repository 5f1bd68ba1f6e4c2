//! Baseline clients: what a minimal consumer of the same stream costs.
//!
//! * [`Mode::Recv`] (baseline a): a tokio-tungstenite read loop that only
//!   receives frames and reads their stamp.
//! * [`Mode::Parse`] (baseline b): the same plus a simd-json tape parse of
//!   every frame into reused buffers (the engine's parser front end).
//!
//! Latency per frame is wall clock on receipt (after the parse in b) − the
//! frame's stamp (see the `load` module docs), recorded plainly: the stamp is
//! already the intended send time, so no coordinated-omission back-fill.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use super::{histogram, read_stamp, unix_ns};

/// What the baseline does per frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Receive only.
    Recv,
    /// Receive + simd-json tape parse.
    Parse,
}

/// Baseline result.
#[derive(Clone, Debug)]
pub struct ClientReport {
    /// Data frames received.
    pub frames: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// First → last data frame.
    pub window: Duration,
    /// Stamp → received (→ parsed) latency, ns.
    pub latency: Histogram<u64>,
    /// CPU time of the client thread over the run.
    pub cpu: Duration,
    /// Context switches of the client thread over the run.
    pub switches: u64,
    /// Frames that failed to parse (b).
    pub parse_errors: u64,
}

impl ClientReport {
    /// Frames per second over the receive window.
    #[must_use]
    pub fn rate(&self) -> f64 {
        self.frames as f64 / self.window.as_secs_f64().max(1e-9)
    }
}

/// Context switches (voluntary + involuntary) of the calling thread so far.
#[must_use]
pub fn thread_switches() -> u64 {
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD with a valid pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    if rc != 0 {
        return 0;
    }
    (ru.ru_nvcsw + ru.ru_nivcsw).unsigned_abs()
}

/// CPU time of the calling thread.
#[must_use]
pub fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime writes into the timespec we pass.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc == 0 {
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    } else {
        Duration::ZERO
    }
}

/// Connects to `url` and reads until the server closes or `timeout` passes
/// (counted from the connection: the handshake within it, then the reads).
///
/// # Errors
/// When the connection cannot be made.
pub fn run(url: &str, mode: Mode, timeout: Duration) -> std::io::Result<ClientReport> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(url, mode, timeout))
}

async fn run_async(url: &str, mode: Mode, timeout: Duration) -> std::io::Result<ClientReport> {
    // The handshake is bounded too: a stuck server must not hang the caller.
    let (ws, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| std::io::Error::other(format!("{url}: no handshake within {timeout:?}")))?
        .map_err(|e| std::io::Error::other(format!("{url}: {e}")))?;
    let (_write, mut read) = ws.split();
    let mut latency = histogram();
    let mut buffers = simd_json::Buffers::new(128 * 1024);
    let mut tape = simd_json::Tape(Vec::with_capacity(16 * 1024));
    let mut scratch: Vec<u8> = Vec::with_capacity(128 * 1024);
    let (mut frames, mut bytes, mut parse_errors) = (0u64, 0u64, 0u64);
    let (mut first, mut last) = (None::<Instant>, Instant::now());
    let cpu0 = thread_cpu();
    let switches0 = thread_switches();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, read.next()).await else {
            break;
        };
        let data: &[u8] = match &msg {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            Message::Close(_) => break,
            _ => continue,
        };
        let stamp = read_stamp(data);
        if mode == Mode::Parse {
            scratch.clear();
            scratch.extend_from_slice(data);
            let t = std::mem::replace(&mut tape, simd_json::Tape(Vec::new()));
            let mut t = t.reset();
            if simd_json::fill_tape(&mut scratch, &mut buffers, &mut t).is_err() {
                parse_errors += 1;
            }
            std::hint::black_box(t.0.len());
            tape = t.reset();
        }
        let now = unix_ns();
        if stamp > 0 {
            let _ = latency.record((now - stamp).max(1) as u64);
        }
        frames += 1;
        bytes += data.len() as u64;
        last = Instant::now();
        first.get_or_insert(last);
    }
    Ok(ClientReport {
        frames,
        bytes,
        window: first.map_or(Duration::ZERO, |f| last - f),
        latency,
        cpu: thread_cpu().saturating_sub(cpu0),
        switches: thread_switches().saturating_sub(switches0),
        parse_errors,
    })
}
