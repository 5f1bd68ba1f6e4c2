//! Thread layout: receivers → SPSC rings → pinned signal threads → SPSC rings
//! → sink thread.
//!
//! ```text
//! receiver 0 ──ring──┐                      ┌─ring─┐
//! receiver 1 ──ring──┼─> signal thread 0 ───┤      ├─> sink (JSONL, live view)
//!            ...     └─> signal thread k ───┘─ring─┘
//! ```
//! Each receiver has one ring per signal thread; instruments are sharded by
//! id. Receivers and signal threads are pinned to distinct cores when the
//! machine has enough of them; the rest run unpinned (the sink always does).

use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::overload::{Overload, Stage, StageLimits};
use super::processor::{Processor, ProcessorConfig, ResyncHook, SinkMsg, SinkTx};
use super::ring::{
    ring, work_or_end, Backoff, EventTx, RingRx, RingTx, SharedProcessor, Slot, Waiter,
};
use super::sink::{JsonlWriter, LiveView, RowCollector, SinkShared, SinkState};
use super::stats::{Registry, RingStats};

/// Assigns cores to threads: receivers first, then signal threads.
pub struct CorePlan {
    cores: Vec<core_affinity::CoreId>,
    next: Mutex<usize>,
    enabled: bool,
}

impl CorePlan {
    /// Plan over the machine's cores (`enabled = false`: never pin).
    #[must_use]
    pub fn new(enabled: bool) -> Arc<Self> {
        let cores = if enabled {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        Arc::new(Self {
            cores,
            next: Mutex::new(0),
            enabled,
        })
    }

    /// Whether pinning `pinned` threads pays on a machine of `cores`: only
    /// with two cores left over for the sink, the OS and other processes.
    /// Measured on 2 vCPUs shared with the load server (2026-12-02,
    /// bench/results/2026-12-02-receive.md): a receiver pinned to a core
    /// the load server also runs on waits for it — frame due → signals p50
    /// 53 µs pinned vs 21 µs unpinned at 10k msg/s inline (baseline 19 µs).
    #[must_use]
    pub fn pays(cores: usize, pinned: usize) -> bool {
        cores >= pinned + 2
    }

    /// The machine's cores, for [`CorePlan::pays`].
    #[must_use]
    pub fn machine_cores() -> usize {
        core_affinity::get_core_ids().map_or(0, |c| c.len())
    }

    /// Pins the calling thread to the next free core, if any is left.
    /// Returns the core index, or `None` when running unpinned.
    pub fn pin_current(&self, role: &str) -> Option<usize> {
        if !self.enabled {
            return None;
        }
        let mut next = self.next.lock().ok()?;
        let core = *self.cores.get(*next)?;
        *next += 1;
        if core_affinity::set_for_current(core) {
            Some(core.id)
        } else {
            eprintln!("note: could not pin {role} to core {}", core.id);
            None
        }
    }
}

/// The Linux scheduling policy of the signal threads (`[engine]
/// signal_thread_sched`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThreadSched {
    /// The default policy (`"normal"`, `SCHED_OTHER`): a woken signal
    /// thread may preempt the receiver that woke it.
    #[default]
    Normal,
    /// `SCHED_BATCH` (`"batch"`): a woken signal thread does not preempt
    /// the receiver that woke it, but runs when the receiver goes back to
    /// waiting. With `"threads"` at 10k evenly spaced msg/s on 2 vCPUs:
    /// ~15% less CPU and one context switch fewer per two frames, a lower
    /// frame → signal p50 and a somewhat higher loopback p99
    /// (bench/results/2026-12-04-instructions.md). No privileges needed.
    Batch,
}

/// Gives the calling thread the scheduling policy `sched`; a refusal is
/// noted on stderr and the thread runs on under the default policy.
/// Returns whether the policy is in place.
pub fn set_sched(sched: ThreadSched, role: &str) -> bool {
    let policy = match sched {
        ThreadSched::Normal => return true,
        ThreadSched::Batch => libc::SCHED_BATCH,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` for the duration of the
    // call; pid 0 names the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if rc != 0 {
        eprintln!(
            "note: could not set {role} to {sched:?} scheduling: {}",
            std::io::Error::last_os_error()
        );
    }
    rc == 0
}

/// Builds the per-worker resync hook.
pub type ResyncFactory = Box<dyn Fn() -> Box<dyn ResyncHook> + Send>;

/// What the pipeline needs to start.
pub struct PipelineConfig {
    /// Number of receivers (each gets an [`EventTx`]).
    pub receivers: usize,
    /// Number of signal threads.
    pub signal_threads: usize,
    /// Ring capacity in slots.
    pub ring_capacity: usize,
    /// Builds each signal thread's processor configuration.
    pub processor: Box<dyn Fn() -> ProcessorConfig + Send + Sync>,
    /// Output names of the signal set.
    pub outputs: Arc<[String]>,
    /// Where the JSONL goes (`None` = discard, only count).
    pub output: Option<Box<dyn Write + Send>>,
    /// Further consumers of the rows (`--parquet`, the `[[sinks]]`), fed by
    /// the sink thread after the JSONL writer, in order.
    pub collectors: Vec<Box<dyn RowCollector>>,
    /// Keep the latest value of every output for [`Pipeline::view`] (the
    /// demo's table). Without it, an output or a collector, rows never
    /// leave the signal threads: they are counted, not materialised.
    pub live_view: bool,
    /// Resync hooks (live feeds); `None` = replay.
    pub resync: Option<ResyncFactory>,
    /// Core pinning plan.
    pub cores: Arc<CorePlan>,
    /// Signal threads never park when idle, they spin (`receiver_mode = "busy_poll"`).
    pub busy_poll: bool,
    /// Run each receiver's processor on the receiver thread itself (no
    /// signal threads, no ring hop); `signal_threads` is then ignored.
    pub inline: bool,
    /// Signal threads whose processors the receivers run themselves while
    /// the thread is idle and their ring to it drained (`signal_placement =
    /// "adaptive"`).
    pub adaptive: bool,
    /// What a receiver does when a ring is full.
    pub overload: Overload,
    /// Items of each ring's overflow stage (`overload = "merge"`).
    pub stage_capacity: usize,
    /// Test knob: signal threads sleep this long per event processed.
    pub signal_delay_ns: u64,
    /// The signal threads' scheduling policy (`signal_thread_sched`).
    pub signal_sched: ThreadSched,
    /// Wake the sink at most once per this long (zero: once per batch of
    /// rows); see [`Waiter::coalescing`].
    pub sink_wake: std::time::Duration,
}

/// A running pipeline.
pub struct Pipeline {
    /// One event sender per receiver; take them and move them into the receivers.
    pub txs: Vec<EventTx>,
    /// Published counters and histograms.
    pub registry: Arc<Registry>,
    /// Latest values for the live view (empty unless
    /// [`PipelineConfig::live_view`]).
    pub view: Arc<SinkShared>,
    /// The core plan (receivers pin themselves with it after the signal threads).
    pub cores: Arc<CorePlan>,
    workers: Vec<JoinHandle<()>>,
    /// The sink thread, when something consumes rows (else only the
    /// instruments count them).
    sink: Option<JoinHandle<std::io::Result<u64>>>,
}

impl Pipeline {
    /// Starts the signal threads and, when something consumes rows, the sink.
    pub fn start(cfg: PipelineConfig) -> Self {
        let registry = Registry::new();
        let view = Arc::new(SinkShared {
            view: Mutex::new(LiveView::default()),
        });
        let full: Arc<AtomicU64> = registry.ring_full_waits.clone();
        let sink_waiter =
            Arc::new(Waiter::coalescing(cfg.sink_wake).counting(registry.sink_wakeups.clone()));

        let mut txs_per_receiver: Vec<Vec<RingTx<Slot>>> =
            (0..cfg.receivers).map(|_| Vec::new()).collect();
        let mut sink_rxs = Vec::new();
        // Rows cross to the sink thread only when something there consumes
        // them; otherwise the processors count them and drop them.
        let sink_consumes = cfg.output.is_some() || !cfg.collectors.is_empty() || cfg.live_view;
        let sink_ring = |rxs: &mut Vec<RingRx<SinkMsg>>| {
            if !sink_consumes {
                return SinkTx::discard();
            }
            let (tx, rx) = ring::<SinkMsg>(cfg.ring_capacity, sink_waiter.clone(), full.clone());
            rxs.push(rx);
            SinkTx::ring(tx)
        };
        let mut workers = Vec::new();
        let processor_cfg = Arc::new(cfg.processor);
        let mut inline_txs = Vec::new();
        if cfg.inline {
            for _ in 0..cfg.receivers {
                let sink_tx = sink_ring(&mut sink_rxs);
                let resync: Box<dyn ResyncHook> = match &cfg.resync {
                    Some(f) => f(),
                    None => Box::new(super::processor::NoResync),
                };
                let proc = Processor::new(processor_cfg(), registry.clone(), resync, sink_tx);
                inline_txs.push(EventTx::inline(Box::new(proc)));
            }
        }
        let signal_threads = if cfg.inline { 0 } else { cfg.signal_threads };
        // `adaptive`: the signal threads' processors, for the receivers.
        let mut shared: Vec<SharedProcessor> = Vec::new();
        for w in 0..signal_threads {
            let waiter = Arc::new(Waiter::new(cfg.busy_poll));
            let mut rxs = Vec::new();
            let mut occupancy = Vec::new();
            for (r, txs) in txs_per_receiver.iter_mut().enumerate() {
                let (tx, rx) = ring::<Slot>(cfg.ring_capacity, waiter.clone(), full.clone());
                txs.push(tx);
                rxs.push(rx);
                occupancy
                    .push(registry.add_ring(format!("receiver{r}->signal{w}"), cfg.ring_capacity));
            }
            let sink_tx = sink_ring(&mut sink_rxs);
            let registry = registry.clone();
            let pcfg = processor_cfg.clone();
            let resync: Box<dyn ResyncHook> = match &cfg.resync {
                Some(f) => f(),
                None => Box::new(super::processor::NoResync),
            };
            let cores = cfg.cores.clone();
            let delay = cfg.signal_delay_ns;
            let sched = cfg.signal_sched;
            let proc: SharedProcessor = Arc::new(Mutex::new(Processor::new(
                pcfg(),
                registry,
                resync,
                sink_tx,
            )));
            if cfg.adaptive {
                shared.push(proc.clone());
            }
            let handle = std::thread::Builder::new()
                .name(format!("signal-{w}"))
                .spawn(move || {
                    cores.pin_current("signal thread");
                    set_sched(sched, "signal thread");
                    waiter.register_current();
                    worker_loop(&proc, rxs, &occupancy, &waiter, delay);
                })
                .unwrap_or_else(|e| panic!("cannot spawn a signal thread: {e}"));
            workers.push(handle);
        }

        // No thread at all when nothing consumes rows (a replay without
        // output): one thread fewer to start (its stack, its allocator heap,
        // its latency counters) and to join.
        let sink = sink_consumes.then(|| {
            let registry = registry.clone();
            let view = cfg.live_view.then(|| view.clone());
            let outputs = cfg.outputs.clone();
            let output = cfg.output;
            let collectors = cfg.collectors;
            std::thread::Builder::new()
                .name("sink".into())
                .spawn(move || {
                    sink_waiter.register_current();
                    sink_loop(
                        sink_rxs,
                        &sink_waiter,
                        output,
                        collectors,
                        &outputs,
                        view,
                        &registry,
                    )
                })
                .unwrap_or_else(|e| panic!("cannot spawn the sink thread: {e}"))
        });
        let txs = if cfg.inline {
            inline_txs
        } else if cfg.overload == Overload::Merge {
            let limits = StageLimits::for_ring(cfg.ring_capacity, cfg.stage_capacity);
            txs_per_receiver
                .into_iter()
                .map(|rings| {
                    let stages = rings
                        .iter()
                        .map(|_| Stage::new(limits, registry.overload.clone()))
                        .collect();
                    EventTx::with_stages(rings, stages)
                })
                .collect()
        } else {
            txs_per_receiver.into_iter().map(EventTx::new).collect()
        };
        let txs = if shared.is_empty() {
            txs
        } else {
            txs.into_iter()
                .map(|tx: EventTx| tx.run_when_idle(&shared, cfg.signal_delay_ns))
                .collect()
        };
        Self {
            txs,
            registry,
            view,
            cores: cfg.cores,
            workers,
            sink,
        }
    }

    /// Waits until every receiver has dropped its sender and everything
    /// queued is processed and written. Returns the number of rows written
    /// (emitted, when nothing consumed them).
    pub fn finish(self) -> std::io::Result<u64> {
        drop(self.txs);
        for w in self.workers {
            let _ = w.join();
        }
        if let Some(sink) = self.sink {
            return match sink.join() {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::other("sink thread panicked")),
            };
        }
        let instruments = self.registry.instruments();
        Ok(instruments.iter().map(|(_, s)| s.rows.get()).sum())
    }
}

fn worker_loop(
    shared: &SharedProcessor,
    mut rxs: Vec<RingRx<Slot>>,
    occupancy: &[Arc<RingStats>],
    waiter: &Waiter,
    delay_ns: u64,
) {
    let mut backoff = Backoff::new();
    let lock = || {
        shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    // The ring whose depth or snapshot message is half processed (its
    // levels still coming, e.g. pushed one by one or split by a full ring):
    // the processor holds one message in progress, so no other ring's
    // events may run until it is complete.
    let mut sticky: Option<usize> = None;
    // The rings this thread may read now: the sticky one, else all.
    let watched = |rxs: &[RingRx<Slot>], sticky: Option<usize>| match sticky {
        Some(i) => i..i + 1,
        None => 0..rxs.len(),
    };
    loop {
        let pending = rxs[watched(&rxs, sticky)].iter().any(|r| !r.rx.is_empty());
        if !pending {
            match sticky {
                // Its producer is gone mid-message: the rest never comes.
                Some(i) if rxs[i].rx.is_abandoned() => sticky = None,
                Some(_) => {}
                None if rxs.iter().all(|r| r.rx.is_abandoned() && r.rx.is_empty()) => break,
                None => {
                    for occ in occupancy {
                        occ.observe(0);
                    }
                }
            }
            // Idle: spin, yield or park without the lock, so a receiver
            // (`adaptive`) finds it free and runs its frames itself.
            backoff.idle(waiter, || work_or_end(&rxs[watched(&rxs, sticky)]));
            continue;
        }
        let mut did = 0usize;
        // Held for the drain round: a receiver runs frames itself only while
        // this thread is idle (`adaptive`; uncontended otherwise).
        let mut proc = lock();
        // Done time of the previous slot of this drain (one clock read per slot).
        let mut prev_done = 0u64;
        for (i, (rx, occ)) in rxs.iter_mut().zip(occupancy).enumerate() {
            if sticky.is_some_and(|s| s != i) {
                continue;
            }
            occ.observe(rx.rx.slots());
            // Up to 1024 slots per drain, read in place and released in one
            // ring commit (not one per slot).
            let take = rx.rx.slots().min(1024 - did);
            if let Ok(chunk) = rx.rx.read_chunk(take) {
                let (a, b) = chunk.as_slices();
                prev_done = proc.on_slots(a, prev_done);
                prev_done = proc.on_slots(b, prev_done);
                did += take;
                chunk.commit_all();
            }
            if proc.mid_message() {
                sticky = Some(i);
                break;
            }
            sticky = None;
        }
        if did > 0 {
            proc.emitter().notify();
            if delay_ns > 0 {
                // Under the lock: a slow stage is slow for `adaptive` too.
                slow_down(delay_ns, did);
            }
            backoff.reset();
        }
    }
    let mut proc = lock();
    proc.publish();
    proc.emitter().notify();
}

/// `debug_signal_delay_ns`: a deliberately slow signal stage (one sleep
/// per drained batch, `delay_ns` per event of it; an adaptive receiver
/// sleeps the same per frame it runs).
#[cold]
pub(super) fn slow_down(delay_ns: u64, events: usize) {
    let ns = delay_ns.saturating_mul(events as u64);
    std::thread::sleep(std::time::Duration::from_nanos(ns));
}

fn sink_loop(
    mut rxs: Vec<RingRx<SinkMsg>>,
    waiter: &Waiter,
    output: Option<Box<dyn Write + Send>>,
    mut collectors: Vec<Box<dyn RowCollector>>,
    outputs: &Arc<[String]>,
    view: Option<Arc<SinkShared>>,
    registry: &Registry,
) -> std::io::Result<u64> {
    // The JSONL writer buffers its rows itself (1 MiB), so no `BufWriter`.
    let mut writer = output.map(|w| JsonlWriter::new(w, outputs.clone()));
    let mut state = SinkState::new(outputs, view, registry);
    let mut backoff = Backoff::eager_park();
    let mut rows = 0u64;
    let mut err: Option<std::io::Error> = None;
    loop {
        let mut did = 0usize;
        for rx in &mut rxs {
            // Up to 4096 rows per drain, read in place and released in one
            // ring commit (not one `pop` per row).
            let take = rx.rx.slots().min(4096 - did);
            let Ok(chunk) = rx.rx.read_chunk(take) else {
                continue;
            };
            let (a, b) = chunk.as_slices();
            for msg in a.iter().chain(b) {
                if let (Some(w), None) = (writer.as_mut(), err.as_ref()) {
                    if let Err(e) = w.write(msg) {
                        eprintln!("error: writing signals failed: {e}");
                        err = Some(e);
                    }
                }
                if err.is_none() {
                    for c in &mut collectors {
                        if let Err(e) = c.write(msg, outputs) {
                            eprintln!("error: writing signals failed: {e}");
                            err = Some(e);
                            break;
                        }
                    }
                }
                rows += u64::from(matches!(msg, SinkMsg::Row { .. }));
                state.observe(msg);
            }
            did += take;
            chunk.commit_all();
        }
        state.maybe_publish(false);
        if did > 0 {
            backoff.reset();
            continue;
        }
        if rxs.iter().all(|r| r.rx.is_abandoned() && r.rx.is_empty()) {
            break;
        }
        if let (Some(w), None) = (writer.as_mut(), err.as_ref()) {
            // Idle: push what we have to the file so a live tail sees it.
            if let Err(e) = w.flush() {
                err = Some(e);
            }
        }
        for c in &mut collectors {
            c.idle();
        }
        backoff.idle(waiter, || work_or_end(&rxs));
    }
    state.maybe_publish(true);
    if let Some(mut w) = writer {
        if err.is_none() {
            w.flush()?;
        }
    }
    for mut c in collectors {
        if err.is_none() {
            c.finish(outputs)?;
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(rows),
    }
}

#[cfg(test)]
mod tests {
    use super::{set_sched, CorePlan, ThreadSched};

    #[test]
    fn a_thread_gets_the_batch_policy() {
        let policy = std::thread::spawn(|| {
            assert!(set_sched(ThreadSched::Batch, "test thread"));
            // SAFETY: no arguments; asks for the calling thread's policy.
            unsafe { libc::sched_getscheduler(0) }
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_BATCH);
        assert!(set_sched(ThreadSched::Normal, "test thread"));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }

    #[test]
    fn pinning_by_default_needs_two_spare_cores() {
        // 2 vCPUs: neither one receiver nor receiver + signal thread.
        assert!(!CorePlan::pays(2, 1));
        assert!(!CorePlan::pays(2, 2));
        assert!(CorePlan::pays(3, 1));
        assert!(CorePlan::pays(4, 2));
        assert!(!CorePlan::pays(4, 3));
        // Unknown core count: never.
        assert!(!CorePlan::pays(0, 0));
    }
}
