//! Lock-free SPSC rings between pinned threads, with a park/unpark waiter so
//! an idle consumer sleeps instead of burning a core.
//!
//! Back-pressure policy (`[engine] overload`): a full ring never drops an
//! event that matters (dropping a book level would corrupt the book,
//! dropping a trade would corrupt the flow signals).
//!
//! * `"merge"` (default of live runs): a frame that does not fit goes into
//!   the ring's bounded overflow stage ([`super::overload`]): trades,
//!   snapshots, resets, gaps and announcements are kept verbatim and in
//!   order; contiguous book diffs of an instrument merge into one exact diff
//!   (never on depth-truncated books); quotes conflate to the latest. The
//!   receiver keeps reading its socket, so a venue does not disconnect it
//!   for a full send buffer. Counted: `staged_events`, `diffs_merged`,
//!   `quotes_conflated`, `stage_full_blocks` (a full stage falls back to
//!   the blocking push below; the stage never grows).
//! * `"block"` (replays always): the producer spins, then yields, until
//!   space frees up. On a live feed this propagates back to the socket:
//!   unread bytes stay in the kernel and TCP flow control slows the sender.
//!
//! Every push that found the ring full is counted (`ring_full_waits`); the
//! stall shows in the ring-hop latency and the counter.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use feeds::Event;

use super::clock::mono_ns;
use super::overload::Stage;

/// One ring slot: an event plus the monotonic times of its frame's arrival
/// and of the push, for per-stage latency.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// The event.
    pub ev: Event,
    /// When the frame carrying the event was received (monotonic ns).
    pub t_frame: u64,
    /// When the event was pushed (monotonic ns).
    pub t_push: u64,
}

/// Lets a consumer sleep when its ring is empty and a producer wake it.
#[derive(Default)]
pub struct Waiter {
    sleeping: AtomicBool,
    thread: OnceLock<Thread>,
    /// Busy-poll mode: the consumer never parks (see [`Backoff::idle`]).
    never_park: bool,
    /// Wake the sleeping consumer at most once per this many ns (0: on
    /// every notify); see [`Waiter::coalescing`].
    coalesce_ns: u64,
    /// When a producer last unparked the consumer (monotonic ns).
    last_unpark_ns: AtomicU64,
    /// Unparks issued (the consumer's wake-ups by a producer).
    unparks: Arc<AtomicU64>,
    /// How long the parked consumer sleeps without a notify (zero:
    /// [`Waiter::PARK_TIMEOUT`]).
    park_timeout: Duration,
}

impl Waiter {
    /// A waiter whose consumer parks when idle (`never_park = false`) or only
    /// spins (`true`: `receiver_mode = "busy_poll"`, lowest wake-up latency,
    /// one core burnt per consumer).
    ///
    /// Such a consumer only reacts to notifies (a signal thread), so parked
    /// it sleeps up to [`Waiter::EVENT_PARK_TIMEOUT`]: idle, it costs ~10
    /// wake-ups a second instead of the 500 of the 2 ms timeout (~15 µs of a
    /// core each on a KVM guest, 0.7 µs per message at 10k msg/s).
    #[must_use]
    pub fn new(never_park: bool) -> Self {
        Self {
            never_park,
            park_timeout: Self::EVENT_PARK_TIMEOUT,
            ..Self::default()
        }
    }

    /// A waiter whose sleeping consumer is unparked at most once per
    /// `every`: a notify within `every` of the last unpark leaves it asleep,
    /// and it finds the data when the next notify after the window wakes it,
    /// or at its park timeout ([`Waiter::PARK_TIMEOUT`]) at the latest. For
    /// the sink when no consumer needs its rows within microseconds: a
    /// steady 10k frames/s then costs it ~1k wake-ups a second, not 10k.
    #[must_use]
    pub fn coalescing(every: Duration) -> Self {
        Self {
            coalesce_ns: u64::try_from(every.as_nanos()).unwrap_or(u64::MAX),
            ..Self::default()
        }
    }

    /// Counts the unparks into `counter` (a registry's, for stats).
    #[must_use]
    pub fn counting(self, counter: Arc<AtomicU64>) -> Self {
        Self {
            unparks: counter,
            ..self
        }
    }

    /// How long a parked consumer with timed work (the sink: idle flushes,
    /// the live view, coalesced rows) sleeps without a notify.
    pub const PARK_TIMEOUT: Duration = Duration::from_millis(2);

    /// How long a parked consumer that only reacts to notifies sleeps
    /// without one ([`Waiter::new`]); a safety net, not a poll.
    pub const EVENT_PARK_TIMEOUT: Duration = Duration::from_millis(100);

    /// How long the parked consumer sleeps without a notify.
    #[must_use]
    pub fn park_timeout(&self) -> Duration {
        if self.park_timeout.is_zero() {
            Self::PARK_TIMEOUT
        } else {
            self.park_timeout
        }
    }

    /// Registers the calling thread as the consumer.
    pub fn register_current(&self) {
        let _ = self.thread.set(std::thread::current());
    }

    /// Called by a producer after it published data.
    #[inline]
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            if self.coalesce_ns > 0 && !self.unpark_due() {
                return;
            }
            if let Some(t) = self.thread.get() {
                self.unparks.fetch_add(1, Ordering::Relaxed);
                t.unpark();
            }
        }
    }

    /// Wake-ups issued by producers so far.
    #[must_use]
    pub fn unparks(&self) -> u64 {
        self.unparks.load(Ordering::Relaxed)
    }

    /// Coalescing: whether the window since the last unpark is over (and
    /// if so, this unpark starts the next one).
    // Out of line on purpose: inlined into `notify` (every frame) it cost
    // the gate slice ~120 instructions per message (callgrind).
    #[cold]
    fn unpark_due(&self) -> bool {
        let now = mono_ns().max(1);
        // 0: never unparked yet.
        let last = self.last_unpark_ns.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.coalesce_ns {
            return false;
        }
        self.last_unpark_ns.store(now, Ordering::Relaxed);
        true
    }

    /// Consumer side: sleep until notified or `timeout`, unless `ready()`
    /// turns true after announcing the sleep (no lost wake-ups).
    pub fn sleep(&self, ready: impl Fn() -> bool, timeout: Duration) {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !ready() {
            std::thread::park_timeout(timeout);
        }
        self.sleeping.store(false, Ordering::Relaxed);
    }
}

/// Spin, then yield, then park: the idle strategy of every consumer loop.
/// With a [`Waiter::new`]`(true)` it never parks: it spins, yielding the core
/// once every 64 idle rounds so an oversubscribed machine
/// still makes progress (a no-op syscall on an isolated core).
///
/// Spinning only where it pays: how long a consumer spins and yields before
/// parking is learnt from how its idle periods end. Work that arrives while
/// it spins, or within [`Backoff::PAYS`] of parking, means spinning pays
/// (the budget doubles, up to 64 spins and 16 yields); a park that lasted
/// longer means it burnt CPU for nothing (the budget halves, down to parking
/// at once). Evenly spaced frames at 10k msg/s thus park at once instead of
/// spinning and yielding ~10 µs per frame; back-to-back bursts spin.
pub struct Backoff {
    idle: u32,
    /// Idle rounds before parking (the first up to [`Backoff::SPIN`] spin,
    /// the rest yield); learnt when `adaptive`.
    budget: u32,
    adaptive: bool,
    /// When this idle period parked first.
    parked_at: Option<Instant>,
}

/// How an idle period ended (what [`Backoff`] learns from).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// Work came while spinning or yielding.
    Spinning,
    /// Work came after parking, this long after the park began.
    Parked(Duration),
}

impl Backoff {
    const SPIN: u32 = 64;
    const YIELD: u32 = 80;
    /// A park that ended sooner than this would have been caught by spinning.
    pub const PAYS: Duration = Duration::from_micros(20);

    /// New backoff: spin, then yield, then park, learning how long to spin
    /// (latency-sensitive consumers).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            idle: 0,
            budget: Self::YIELD,
            adaptive: true,
            parked_at: None,
        }
    }

    /// Parks as soon as there is nothing to do: for consumers off the
    /// latency path (the sink), where spinning between frames only burns CPU.
    #[must_use]
    pub const fn eager_park() -> Self {
        Self {
            idle: 0,
            budget: 0,
            adaptive: false,
            parked_at: None,
        }
    }

    /// Work was found.
    #[inline]
    pub fn reset(&mut self) {
        if self.idle != 0 {
            self.idle_ended();
        }
    }

    #[cold]
    fn idle_ended(&mut self) {
        self.idle = 0;
        if let Some(t) = self.parked_at.take() {
            self.learn(Ended::Parked(t.elapsed()));
        } else {
            self.learn(Ended::Spinning);
        }
    }

    fn learn(&mut self, how: Ended) {
        if !self.adaptive {
            return;
        }
        self.budget = match how {
            Ended::Spinning => self.budget.saturating_mul(2).clamp(8, Self::YIELD),
            Ended::Parked(d) if d < Self::PAYS => {
                self.budget.saturating_mul(2).clamp(8, Self::YIELD)
            }
            Ended::Parked(_) => self.budget / 2,
        };
    }

    /// Idle rounds before parking, as learnt so far.
    #[must_use]
    pub fn budget(&self) -> u32 {
        self.budget
    }

    /// Nothing to do: wait a little, longer the longer we have been idle.
    pub fn idle(&mut self, waiter: &Waiter, ready: impl Fn() -> bool) {
        if waiter.never_park {
            self.idle = self.idle.wrapping_add(1);
            if self.idle % Self::SPIN == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
            return;
        }
        self.idle = self.idle.saturating_add(1);
        if self.idle <= self.budget.min(Self::SPIN) {
            std::hint::spin_loop();
        } else if self.idle <= self.budget {
            std::thread::yield_now();
        } else {
            if self.parked_at.is_none() && self.adaptive {
                self.parked_at = Some(Instant::now());
            }
            waiter.sleep(ready, waiter.park_timeout());
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Producer half of one ring plus the consumer's waiter.
pub struct RingTx<T> {
    tx: rtrb::Producer<T>,
    waiter: Arc<Waiter>,
    full_waits: Arc<AtomicU64>,
}

/// Consumer half of one ring.
pub struct RingRx<T> {
    /// The ring.
    pub rx: rtrb::Consumer<T>,
    /// Set when the producer is gone and will push nothing more.
    pub waiter: Arc<Waiter>,
}

/// A consumer's wake-up condition over its rings: one has something, or all
/// are abandoned (the end). An abandoned ring alone is no work: a producer
/// that ended early must not make its consumer spin.
#[must_use]
pub fn work_or_end<T>(rxs: &[RingRx<T>]) -> bool {
    rxs.iter().any(|r| !r.rx.is_empty()) || rxs.iter().all(|r| r.rx.is_abandoned())
}

/// Creates a ring of `capacity` slots. `full_waits` counts pushes that found it full.
pub fn ring<T>(
    capacity: usize,
    waiter: Arc<Waiter>,
    full_waits: Arc<AtomicU64>,
) -> (RingTx<T>, RingRx<T>) {
    let (tx, rx) = rtrb::RingBuffer::new(capacity);
    (
        RingTx {
            tx,
            waiter: waiter.clone(),
            full_waits,
        },
        RingRx { rx, waiter },
    )
}

impl<T> RingTx<T> {
    /// Pushes without notifying; call [`RingTx::notify`] after a batch.
    /// Blocks (spin, then yield) while the ring is full.
    #[inline]
    pub fn push_quiet(&mut self, mut v: T) {
        loop {
            match self.tx.push(v) {
                Ok(()) => return,
                Err(rtrb::PushError::Full(back)) => {
                    v = back;
                    self.full_waits.fetch_add(1, Ordering::Relaxed);
                    self.waiter.notify();
                    if self.tx.is_abandoned() {
                        return;
                    }
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Pushes every item of `items`, in order, without notifying: one
    /// ring commit per run of free slots instead of one per item. Blocks
    /// (spin, then yield) while the ring is full, as [`push_quiet`](Self::push_quiet).
    #[inline]
    pub fn push_all_quiet(&mut self, mut items: impl ExactSizeIterator<Item = T>) {
        while items.len() > 0 {
            let k = match self.tx.write_chunk_uninit(items.len()) {
                Ok(chunk) => chunk.fill_from_iter(items.by_ref()),
                Err(rtrb::chunks::ChunkError::TooFewSlots(free)) if free > 0 => self
                    .tx
                    .write_chunk_uninit(free)
                    .map_or(0, |chunk| chunk.fill_from_iter(items.by_ref())),
                Err(_) => 0,
            };
            if k == 0 {
                self.full_waits.fetch_add(1, Ordering::Relaxed);
                self.waiter.notify();
                if self.tx.is_abandoned() {
                    return;
                }
                std::thread::yield_now();
            }
        }
    }

    /// Wakes the consumer if it sleeps.
    #[inline]
    pub fn notify(&self) {
        self.waiter.notify();
    }

    /// Free slots right now.
    #[must_use]
    pub fn free(&self) -> usize {
        self.tx.slots()
    }

    /// Every slot pushed so far was popped and released (processed).
    #[must_use]
    pub fn is_drained(&self) -> bool {
        self.tx.slots() == self.tx.buffer().capacity()
    }

    /// The consumer's waiter (to wake it without this producer).
    #[must_use]
    pub fn waiter(&self) -> Arc<Waiter> {
        self.waiter.clone()
    }

    /// The consumer is gone.
    #[must_use]
    pub fn is_abandoned(&self) -> bool {
        self.tx.is_abandoned()
    }
}

/// Routes events of one receiver to the signal threads (instrument id modulo
/// thread count); the levels of a depth/snapshot follow their header.
pub struct EventTx {
    rings: Vec<RingTx<Slot>>,
    /// One overflow stage per ring (`overload = "merge"`); empty: block.
    stages: Vec<Stage>,
    route: usize,
    dirty: u64,
    /// Inside a receive batch: consumers are woken once, at its end.
    batching: bool,
    /// `signal_placement = "inline"`: the receiver runs the processor itself.
    inline: Option<Box<InlineProcessor>>,
    /// `signal_placement = "adaptive"`: each signal thread's processor (one
    /// per ring), run here while that thread is idle and its ring drained.
    adaptive: Vec<Adaptive>,
    /// Adaptive: how long this receiver has run frames itself in this
    /// batch (see [`EventTx::HERE_BUDGET_NS`]).
    here_ns: u64,
}

/// What a receiver needs to run a signal thread's processor itself.
struct Adaptive {
    processor: SharedProcessor,
    /// The sink's waiter: woken after frames processed here.
    sink: Option<Arc<Waiter>>,
    /// Frames were processed here since the last flush.
    dirty: bool,
    /// `debug_signal_delay_ns`: the processor is as slow here as on its
    /// thread.
    delay_ns: u64,
}

/// A processor run by its signal thread or, while that thread is idle, by a
/// receiver (`signal_placement = "adaptive"`).
pub type SharedProcessor = Arc<std::sync::Mutex<InlineProcessor>>;

/// A processor run on the receiver thread (no ring hop, no wake-up).
pub type InlineProcessor = super::processor::Processor<super::processor::SinkTx>;

impl EventTx {
    /// Adaptive: a receiver runs the frames of one receive batch itself
    /// for at most this long (a frame outside a batch, such as a wake-up's
    /// first, has its own budget); the batch's later frames go through the
    /// rings. Far above what a batch of a keeping-up feed costs (a frame is
    /// ~1–50 µs), so only a receiver falling behind — a slow signal stage, a
    /// burst bigger than the processor — hands work to the signal thread,
    /// and then the overflow stage merges and conflates as in threads mode
    /// instead of the socket backing up.
    pub const HERE_BUDGET_NS: u64 = 100_000;

    /// One ring per signal thread; a full ring blocks (`overload = "block"`).
    #[must_use]
    pub fn new(rings: Vec<RingTx<Slot>>) -> Self {
        Self {
            rings,
            stages: Vec::new(),
            route: 0,
            dirty: 0,
            batching: false,
            inline: None,
            adaptive: Vec::new(),
            here_ns: 0,
        }
    }

    /// One ring per signal thread, each with its overflow stage (`overload = "merge"`).
    #[must_use]
    pub fn with_stages(rings: Vec<RingTx<Slot>>, stages: Vec<Stage>) -> Self {
        debug_assert_eq!(rings.len(), stages.len());
        let mut tx = Self::new(rings);
        if stages.len() == tx.rings.len() {
            tx.stages = stages;
        }
        tx
    }

    /// Moves staged events into the rings where there is room (the
    /// receiver calls this when idle). Returns whether anything is still
    /// staged: then the receiver must poll again soon instead of sleeping.
    pub fn drain_staged(&mut self) -> bool {
        let mut left = false;
        if self.stages.is_empty() {
            return left;
        }
        let t_push = mono_ns();
        for (i, (st, ring)) in self.stages.iter_mut().zip(&mut self.rings).enumerate() {
            if st.is_empty() {
                continue;
            }
            st.drain(ring, t_push);
            self.dirty |= 1 << (i & 63);
            left |= !st.is_empty();
        }
        self.flush();
        left
    }

    #[inline(never)]
    fn send_staged(&mut self, events: &[Event], t_frame: u64, t_push: u64) {
        let n = self.rings.len();
        observe(&mut self.stages, events);
        if let ([ring], [st]) = (&mut self.rings[..], &mut self.stages[..]) {
            if st.is_empty() && ring.free() >= events.len() {
                ring.push_all_quiet(events.iter().map(|&ev| Slot {
                    ev,
                    t_frame,
                    t_push,
                }));
            } else {
                for ev in events {
                    st.offer(ring, ev, t_frame, t_push);
                }
            }
            self.dirty |= 1;
            self.flush();
            return;
        }
        for ev in events {
            if let Some(i) = route_of(ev) {
                self.route = i.index() % n;
            }
            self.dirty |= 1 << (self.route & 63);
            self.stages[self.route].offer(&mut self.rings[self.route], ev, t_frame, t_push);
        }
        self.flush();
    }

    /// Runs `processor` on the calling (receiver) thread instead of sending
    /// events to a signal thread.
    #[must_use]
    pub fn inline(processor: Box<InlineProcessor>) -> Self {
        Self {
            rings: Vec::new(),
            stages: Vec::new(),
            route: 0,
            dirty: 0,
            batching: false,
            inline: Some(processor),
            adaptive: Vec::new(),
            here_ns: 0,
        }
    }

    /// Runs frames on `processors[i]` (the processor of the signal thread
    /// behind ring `i`, see [`SharedProcessor`]) whenever that thread is idle
    /// and ring `i` drained. Needs one processor per ring.
    /// `delay_ns`: the debug slow-down per event (see
    /// [`crate::config::EngineOptions::debug_signal_delay_ns`]).
    #[must_use]
    pub fn run_when_idle(mut self, processors: &[SharedProcessor], delay_ns: u64) -> Self {
        if processors.len() == self.rings.len() {
            self.adaptive = processors
                .iter()
                .map(|processor| Adaptive {
                    processor: processor.clone(),
                    sink: processor.lock().map_or(None, |mut p| p.emitter().waiter()),
                    dirty: false,
                    delay_ns,
                })
                .collect();
        }
        self
    }

    /// The frames of one receive wake-up follow: hold the consumers'
    /// wake-ups until [`end_batch`](Self::end_batch) (one per batch, not
    /// one per frame). A full ring still wakes its consumer right away.
    #[inline]
    pub fn begin_batch(&mut self) {
        self.batching = true;
        self.here_ns = 0;
    }

    /// The batch is over: wakes every consumer that received something.
    #[inline]
    pub fn end_batch(&mut self) {
        self.batching = false;
        self.flush();
    }

    /// Pushes the events of one frame, read at `t_frame` and parsed at
    /// `t_push` (monotonic ns: the parse stage's end is the ring stage's
    /// start, one clock read for both), and wakes the consumers it touched.
    #[inline]
    pub fn send_frame(&mut self, events: &[Event], t_frame: u64, t_push: u64) {
        if let Some(p) = self.inline.as_deref_mut() {
            let _ = p.on_frame(events, t_frame, t_push);
            self.dirty |= 1;
            self.flush();
            return;
        }
        if !self.adaptive.is_empty() && self.run_here(events, t_frame, t_push) {
            return;
        }
        if !self.stages.is_empty() {
            self.send_staged(events, t_frame, t_push);
            return;
        }
        let n = self.rings.len();
        if let [ring] = &mut self.rings[..] {
            // One signal thread: the whole frame in one ring commit.
            ring.push_all_quiet(events.iter().map(|&ev| Slot {
                ev,
                t_frame,
                t_push,
            }));
            self.dirty |= 1;
            self.flush();
            return;
        }
        for ev in events {
            if let Some(i) = route_of(ev) {
                self.route = if n == 1 { 0 } else { i.index() % n };
            }
            self.dirty |= 1 << (self.route & 63);
            self.rings[self.route].push_quiet(Slot {
                ev: *ev,
                t_frame,
                t_push,
            });
        }
        self.flush();
    }

    /// `adaptive`: runs the frame on its signal thread's processor if that
    /// thread is idle (its lock free) and everything sent to it before was
    /// processed (its ring drained, nothing staged), so the order is the
    /// ring's, and this batch has not used up [`Self::HERE_BUDGET_NS`]. A
    /// frame whose events route to several threads takes the rings.
    #[inline]
    fn run_here(&mut self, events: &[Event], t_frame: u64, t_push: u64) -> bool {
        if !self.batching {
            // Outside a batch a frame has the budget to itself.
            self.here_ns = 0;
        }
        if self.here_ns >= Self::HERE_BUDGET_NS {
            return false;
        }
        let n = self.rings.len();
        let mut route = self.route;
        if n > 1 {
            let mut routes = events.iter().filter_map(route_of).map(|i| i.index() % n);
            if let Some(first) = routes.next() {
                if routes.any(|r| r != first) {
                    return false;
                }
                route = first;
            }
        }
        let (Some(a), Some(ring)) = (self.adaptive.get_mut(route), self.rings.get(route)) else {
            return false;
        };
        if !ring.is_drained() || self.stages.get(route).is_some_and(|st| !st.is_empty()) {
            return false;
        }
        let Ok(mut p) = a.processor.try_lock() else {
            return false;
        };
        if p.mid_message() {
            // Another receiver's message is half through its ring: the
            // signal thread finishes it first, this frame queues behind.
            return false;
        }
        // The stages learn instruments from every frame, whichever path it
        // takes (else one announced here could never be merged under
        // back-pressure).
        observe(&mut self.stages, events);
        let mut done = p.on_frame(events, t_frame, t_push);
        if a.delay_ns > 0 {
            super::runtime::slow_down(a.delay_ns, events.len());
            done = mono_ns();
        }
        drop(p);
        self.here_ns += done.saturating_sub(t_push);
        a.dirty = true;
        self.route = route;
        self.flush();
        true
    }

    /// Wakes every consumer that received something since the last flush
    /// (at the end of the batch while one is open).
    #[inline]
    pub fn flush(&mut self) {
        if self.batching {
            return;
        }
        for a in self.adaptive.iter_mut().filter(|a| a.dirty) {
            a.dirty = false;
            if let Some(w) = &a.sink {
                w.notify();
            }
        }
        if self.dirty == 0 {
            return;
        }
        if let Some(p) = self.inline.as_deref_mut() {
            // Inline: the consumer is the sink of the processor's rows.
            p.emitter().notify();
        }
        for (i, r) in self.rings.iter().enumerate() {
            if self.dirty & (1 << (i & 63)) != 0 {
                r.notify();
            }
        }
        self.dirty = 0;
    }
}

/// Every overflow stage learns what a frame tells about its instruments.
#[inline]
fn observe(stages: &mut [Stage], events: &[Event]) {
    for st in stages {
        for ev in events {
            st.observe(ev);
        }
    }
}

/// The instrument an event routes by (levels follow their header).
#[inline]
fn route_of(ev: &Event) -> Option<feeds::event::InstrumentId> {
    match ev {
        Event::Instrument(i) => Some(i.inst),
        Event::Trade(t) => Some(t.inst),
        Event::Quote(q) => Some(q.inst),
        Event::Depth(d) => Some(d.inst),
        Event::Snapshot(s) => Some(s.inst),
        Event::Reset(i) | Event::Gap(i) => Some(*i),
        Event::Level(_) => None,
    }
}

impl Drop for EventTx {
    fn drop(&mut self) {
        // Shutdown: whatever is staged is delivered (blocking), never lost.
        for (st, ring) in self.stages.iter_mut().zip(&mut self.rings) {
            st.flush(ring, false);
        }
        // Each consumer is woken after its ring is abandoned, so it sees
        // the end at once instead of at its park timeout.
        for ring in self.rings.drain(..) {
            let waiter = ring.waiter();
            drop(ring);
            waiter.notify();
        }
        if let Some(p) = self.inline.as_deref_mut() {
            p.publish();
            p.emitter().notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spin_budget_follows_how_idle_periods_end() {
        let mut b = Backoff::new();
        assert_eq!(b.budget(), Backoff::YIELD);
        // Evenly spaced frames: every park lasts ~100 µs; spinning never pays.
        for _ in 0..8 {
            b.learn(Ended::Parked(Duration::from_micros(100)));
        }
        assert_eq!(b.budget(), 0, "parks at once");
        // A burst: work comes right after parking, then while spinning.
        b.learn(Ended::Parked(Duration::from_micros(3)));
        assert_eq!(b.budget(), 8);
        for _ in 0..4 {
            b.learn(Ended::Spinning);
        }
        assert_eq!(b.budget(), Backoff::YIELD, "capped");
        // The sink never spins.
        let mut s = Backoff::eager_park();
        s.learn(Ended::Spinning);
        assert_eq!(s.budget(), 0);
    }

    #[test]
    fn a_consumer_that_finds_work_while_spinning_keeps_spinning() {
        let waiter = Waiter::new(false);
        let mut b = Backoff::new();
        for _ in 0..100 {
            b.idle(&waiter, || true);
            b.idle(&waiter, || true);
            b.reset();
        }
        assert_eq!(b.budget(), Backoff::YIELD);
        assert!(b.parked_at.is_none());
    }

    /// A consumer thread that sleeps until `stop`, and a producer that
    /// notifies `rounds` times, each time once the consumer sleeps.
    fn unparks_of(w: Waiter, rounds: usize) -> u64 {
        let w = Arc::new(w);
        let stop = Arc::new(AtomicBool::new(false));
        let sleeper = {
            let (w, stop) = (w.clone(), stop.clone());
            std::thread::spawn(move || {
                w.register_current();
                // A long timeout: every wake-up in the test is an unpark.
                while !stop.load(Ordering::Relaxed) {
                    w.sleep(|| stop.load(Ordering::Relaxed), Duration::from_secs(5));
                }
            })
        };
        for _ in 0..rounds {
            while !w.sleeping.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
            w.notify();
            // Until it woke (or, coalescing, a while: it stays asleep).
            for _ in 0..1000 {
                if !w.sleeping.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::yield_now();
            }
        }
        let unparks = w.unparks();
        stop.store(true, Ordering::Relaxed);
        // Past the count: wake it directly (a coalesced notify would not).
        if let Some(t) = w.thread.get() {
            t.unpark();
        }
        sleeper.join().unwrap();
        unparks
    }

    #[test]
    fn a_coalescing_waiter_unparks_once_per_window() {
        assert_eq!(unparks_of(Waiter::new(false), 5), 5);
        // An hour's window: only the first notify unparks.
        assert_eq!(
            unparks_of(Waiter::coalescing(Duration::from_secs(3600)), 5),
            1
        );
    }

    #[test]
    fn dropping_the_sender_wakes_a_parked_signal_thread() {
        // Signal threads park up to 100 ms: the end must come by a notify.
        assert_eq!(
            Waiter::new(false).park_timeout(),
            Waiter::EVENT_PARK_TIMEOUT
        );
        let sink = Waiter::coalescing(Duration::from_millis(1));
        assert_eq!(sink.park_timeout(), Waiter::PARK_TIMEOUT);
        let waiter = Arc::new(Waiter::new(false));
        let (tx, mut rx) = ring::<Slot>(8, waiter.clone(), Arc::default());
        let consumer = {
            let waiter = waiter.clone();
            std::thread::spawn(move || {
                waiter.register_current();
                // A long timeout: only a notify ends this in time.
                while !(rx.rx.is_abandoned() && rx.rx.is_empty()) {
                    waiter.sleep(|| rx.rx.is_abandoned(), Duration::from_secs(30));
                    while rx.rx.pop().is_ok() {}
                }
            })
        };
        while !waiter.sleeping.load(Ordering::Relaxed) {
            std::thread::yield_now();
        }
        let t = std::time::Instant::now();
        drop(EventTx::new(vec![tx]));
        consumer.join().unwrap();
        assert_eq!(waiter.unparks(), 1, "woken by the drop, not the timeout");
        // A notify before the abandon would be answered by another 30 s park.
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    }

    #[test]
    fn busy_poll_waiter_never_parks() {
        // A parking backoff would sleep 2 ms per idle round after 80 rounds.
        let waiter = Waiter::new(true);
        let mut b = Backoff::new();
        let t = std::time::Instant::now();
        for _ in 0..20_000 {
            b.idle(&waiter, || false);
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "parked: {:?}",
            t.elapsed()
        );
        assert!(!waiter.sleeping.load(Ordering::Relaxed));
    }
}
