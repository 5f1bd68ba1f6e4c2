//! Order book and depth synchronisation (SIGNALS.md 2.5).

use std::collections::BTreeMap;

use feeds::book::{DepthSync, DiffOutcome, OrderBook, SnapshotOutcome, SyncRule};
use feeds::event::{BookSide, DepthHeader, InstrumentId, Level, SnapshotHeader};
use proptest::prelude::*;
use signals::event::DepthView;

use BookSide::{Ask, Bid};

fn lv(side: BookSide, px: i64, qty: i64) -> Level {
    Level { side, px, qty }
}

fn diff(first_id: u64, last_id: u64) -> DepthHeader {
    DepthHeader {
        inst: InstrumentId(3),
        first_id,
        last_id,
        prev_last_id: 0,
        ts_ns: 1,
        recv_ns: 2,
        levels: 0,
        checksum: None,
    }
}

fn snap(last_update_id: u64) -> SnapshotHeader {
    SnapshotHeader {
        inst: InstrumentId(3),
        last_update_id,
        recv_ns: 2,
        levels: 0,
        checksum: None,
        max_depth: 0,
        wire: feeds::instruments::NO_WIRE,
        from_rest: false,
    }
}

fn ids(sync: &DepthSync) -> Vec<(u64, u64)> {
    sync.buffered()
        .map(|(h, _)| (h.first_id, h.last_id))
        .collect()
}

fn snapshot_levels() -> Vec<Level> {
    vec![
        lv(Bid, 100, 10),
        lv(Bid, 99, 20),
        lv(Bid, 98, 0), // size 0 in a snapshot: skipped
        lv(Ask, 101, 5),
        lv(Ask, 103, 7),
    ]
}

#[test]
fn book_basics_and_depth_view() {
    let mut b = OrderBook::with_capacity(8);
    assert!(b.is_empty() && !b.is_crossed());
    assert_eq!((b.best_bid(), b.best_ask()), (None, None));
    for (px, q) in [(100, 1), (98, 3), (99, 2), (97, 4)] {
        b.set(Bid, px, q);
    }
    for (px, q) in [(103, 30), (101, 10), (102, 20)] {
        b.set(Ask, px, q);
    }
    assert_eq!(
        b.bids().collect::<Vec<_>>(),
        [(100, 1), (99, 2), (98, 3), (97, 4)]
    );
    assert_eq!(
        b.asks().collect::<Vec<_>>(),
        [(101, 10), (102, 20), (103, 30)]
    );
    assert_eq!((b.bid_levels(), b.ask_levels(), b.levels(Ask)), (4, 3, 3));
    assert_eq!(b.best_bid(), Some((100, 1)));
    assert_eq!(b.best_ask(), Some((101, 10)));
    assert_eq!(b.bid_depth(2), 3);
    assert_eq!(b.bid_depth(0), 0);
    assert_eq!(b.ask_depth(5), 60, "fewer than L levels: all are used");
    b.set(Bid, 99, 0);
    b.set(Bid, 42, 0); // deleting an absent level is fine
    b.set(Ask, 101, 11);
    assert_eq!(b.bids().collect::<Vec<_>>(), [(100, 1), (98, 3), (97, 4)]);
    assert_eq!(b.best_ask(), Some((101, 11)));
    b.check_invariants().unwrap();
    b.clear();
    assert!(b.is_empty());
}

#[test]
fn depth_example_vector() {
    // shared/vectors depth_example shape: 3 bids / 6 asks, imbalance over 5 levels.
    let mut b = OrderBook::with_capacity(8);
    for (px, q) in [(100, 5), (99, 4), (98, 3)] {
        b.set(Bid, px, q);
    }
    for (px, q) in [(101, 1), (102, 2), (103, 1), (104, 2), (105, 1), (106, 9)] {
        b.set(Ask, px, q);
    }
    assert_eq!((b.bid_depth(5), b.ask_depth(5)), (12, 7));
}

#[test]
fn crossed_detection() {
    let mut b = OrderBook::default();
    b.set(Bid, 100, 1);
    assert!(!b.is_crossed(), "one side empty");
    b.set(Ask, 101, 1);
    assert!(!b.is_crossed());
    b.set(Ask, 100, 1);
    assert!(b.is_crossed(), "locked counts as crossed");
    b.set(Ask, 100, 0);
    b.set(Ask, 101, 0);
    b.set(Ask, 99, 2);
    assert!(b.is_crossed());
    b.set(Bid, 100, 0);
    assert!(!b.is_crossed());

    // Through DepthSync: an applied diff may cross the book; it is kept.
    let mut s = DepthSync::new(16, 64);
    s.on_snapshot(&snap(10), &snapshot_levels());
    assert!(!s.book().is_crossed());
    assert_eq!(
        s.on_diff(&diff(11, 11), &[lv(Bid, 102, 1)]),
        DiffOutcome::Applied
    );
    assert!(s.book().is_crossed());
    assert_eq!(
        s.on_diff(&diff(12, 12), &[lv(Bid, 102, 0)]),
        DiffOutcome::Applied
    );
    assert!(!s.book().is_crossed());
}

#[test]
fn snapshot_bridging() {
    let mut s = DepthSync::new(16, 64);
    assert!(!s.is_synced());
    assert_eq!(
        s.on_diff(&diff(1, 5), &[lv(Bid, 50, 1)]),
        DiffOutcome::Buffered
    );
    assert_eq!(
        s.on_diff(&diff(6, 12), &[lv(Bid, 100, 11), lv(Ask, 102, 4)]),
        DiffOutcome::Buffered
    );
    assert_eq!(
        s.on_diff(&diff(13, 14), &[lv(Ask, 101, 0)]),
        DiffOutcome::Buffered
    );
    assert_eq!(s.buffered_diffs(), 3);
    assert!(s.book().is_empty(), "nothing applied while unsynced");

    assert_eq!(
        s.on_snapshot(&snap(10), &snapshot_levels()),
        SnapshotOutcome::Synced { replayed: 2 }
    );
    assert!(s.is_synced());
    assert_eq!(s.book_id(), 14);
    assert_eq!(s.buffered_diffs(), 0);
    assert_eq!(s.book().bids().collect::<Vec<_>>(), [(100, 11), (99, 20)]);
    assert_eq!(s.book().asks().collect::<Vec<_>>(), [(102, 4), (103, 7)]);

    assert_eq!(
        s.on_diff(&diff(15, 15), &[lv(Ask, 102, 6)]),
        DiffOutcome::Applied
    );
    assert_eq!(s.book().best_ask(), Some((102, 6)));
    assert_eq!(s.book_id(), 15);
}

#[test]
fn stale_diffs_dropped() {
    let mut s = DepthSync::new(16, 64);
    s.on_snapshot(&snap(10), &snapshot_levels());
    let before = s.book().clone();
    assert_eq!(
        s.on_diff(&diff(5, 10), &[lv(Bid, 100, 0)]),
        DiffOutcome::Stale
    );
    assert_eq!(
        s.on_diff(&diff(1, 3), &[lv(Ask, 101, 0)]),
        DiffOutcome::Stale
    );
    assert_eq!(s.book(), &before);
    assert_eq!(s.book_id(), 10);
    // Overlapping the book id is applied (U <= id + 1 <= u).
    assert_eq!(
        s.on_diff(&diff(9, 11), &[lv(Bid, 100, 0)]),
        DiffOutcome::Applied
    );
    assert_eq!(s.book().best_bid(), Some((99, 20)));
}

#[test]
fn gap_while_synced() {
    let mut s = DepthSync::new(16, 64);
    s.on_snapshot(&snap(10), &snapshot_levels());
    assert_eq!(s.on_diff(&diff(11, 12), &[]), DiffOutcome::Applied);
    assert_eq!(
        s.on_diff(&diff(14, 15), &[lv(Bid, 100, 3)]),
        DiffOutcome::Gap
    );
    assert!(!s.is_synced());
    assert!(s.book().is_empty());
    assert_eq!(ids(&s), [(14, 15)]);
    assert_eq!(s.buffered().next().unwrap().1, [lv(Bid, 100, 3)]);
    assert_eq!(
        s.on_diff(&diff(16, 16), &[lv(Ask, 105, 1)]),
        DiffOutcome::Buffered
    );
    // The resync snapshot bridges the buffered diffs.
    assert_eq!(
        s.on_snapshot(&snap(14), &snapshot_levels()),
        SnapshotOutcome::Synced { replayed: 2 }
    );
    assert_eq!(s.book_id(), 16);
    assert_eq!(s.book().best_bid(), Some((100, 3)));
    assert_eq!(
        s.book().asks().collect::<Vec<_>>(),
        [(101, 5), (103, 7), (105, 1)]
    );
}

#[test]
fn gap_during_replay() {
    let mut s = DepthSync::new(16, 64);
    s.on_diff(&diff(5, 8), &[lv(Bid, 1, 1)]); // stale at snapshot 10
    s.on_diff(&diff(9, 11), &[lv(Bid, 100, 9)]); // bridges
    s.on_diff(&diff(13, 14), &[lv(Ask, 101, 1), lv(Ask, 110, 1)]); // gap: 13 > 12
    s.on_diff(&diff(15, 16), &[lv(Bid, 97, 1)]);
    assert_eq!(
        s.on_snapshot(&snap(10), &snapshot_levels()),
        SnapshotOutcome::GapInBuffer
    );
    assert!(!s.is_synced());
    assert!(s.book().is_empty());
    assert_eq!(ids(&s), [(13, 14), (15, 16)]);
    let lv_of: Vec<Vec<Level>> = s.buffered().map(|(_, l)| l.to_vec()).collect();
    assert_eq!(
        lv_of,
        [vec![lv(Ask, 101, 1), lv(Ask, 110, 1)], vec![lv(Bid, 97, 1)]]
    );
    // A later snapshot resyncs from the kept diffs.
    assert_eq!(
        s.on_snapshot(&snap(12), &snapshot_levels()),
        SnapshotOutcome::Synced { replayed: 2 }
    );
    assert_eq!(s.book_id(), 16);
    assert_eq!(s.book().best_bid(), Some((100, 10)));
    assert_eq!(
        s.book().asks().collect::<Vec<_>>(),
        [(101, 1), (103, 7), (110, 1)]
    );
}

#[test]
fn snapshot_while_synced_ignored() {
    let mut s = DepthSync::new(16, 64);
    assert_eq!(
        s.on_snapshot(&snap(10), &snapshot_levels()),
        SnapshotOutcome::Synced { replayed: 0 }
    );
    let before = s.book().clone();
    assert_eq!(
        s.on_snapshot(&snap(50), &[lv(Bid, 1, 1)]),
        SnapshotOutcome::Ignored
    );
    assert_eq!(s.book(), &before);
    assert_eq!(s.book_id(), 10);
}

#[test]
fn reset_unsyncs() {
    let mut s = DepthSync::new(16, 64);
    s.on_snapshot(&snap(10), &snapshot_levels());
    s.reset();
    assert!(!s.is_synced() && s.book().is_empty());
    assert_eq!(s.on_diff(&diff(11, 11), &[]), DiffOutcome::Buffered);
    s.reset();
    assert_eq!(s.buffered_diffs(), 0);
    assert_eq!(s.rule(), SyncRule::Spot);
}

#[test]
fn buffer_overflow_drops_oldest() {
    let mut s = DepthSync::new(16, 5);
    let two = [lv(Bid, 1, 1), lv(Bid, 2, 1)];
    s.on_diff(&diff(1, 1), &two);
    s.on_diff(&diff(2, 2), &two);
    assert_eq!(s.buffer_overflows(), 0);
    s.on_diff(&diff(3, 3), &two); // 6 > 5: evicts (1,1)
    assert_eq!(ids(&s), [(2, 2), (3, 3)]);
    assert_eq!(s.buffer_overflows(), 1);
    s.on_diff(&diff(4, 4), &[]); // an empty diff costs one unit: 5 fits
    assert_eq!(ids(&s), [(2, 2), (3, 3), (4, 4)]);
    s.on_diff(&diff(5, 5), &[lv(Ask, 9, 1); 6]); // larger than the whole buffer: refused
    assert_eq!(ids(&s), [(2, 2), (3, 3), (4, 4)]);
    assert_eq!(s.buffer_overflows(), 2);
    s.on_diff(&diff(6, 6), &[lv(Ask, 9, 1); 5]); // evicts everything else
    assert_eq!(ids(&s), [(6, 6)]);
    assert_eq!(s.buffer_overflows(), 5);
    // The snapshot sees a gap where diffs were dropped.
    assert_eq!(s.on_snapshot(&snap(1), &[]), SnapshotOutcome::GapInBuffer);
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

fn side_of(bid: bool) -> BookSide {
    if bid {
        Bid
    } else {
        Ask
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn book_matches_btreemap(ops in proptest::collection::vec((any::<bool>(), 0i64..60, 0i64..4), 0..400)) {
        let mut book = OrderBook::with_capacity(4);
        let mut bids = BTreeMap::new();
        let mut asks = BTreeMap::new();
        for (bid, px, qty) in ops {
            book.set(side_of(bid), px, qty);
            let m = if bid { &mut bids } else { &mut asks };
            if qty == 0 { m.remove(&px); } else { m.insert(px, qty); }
            prop_assert_eq!(book.check_invariants(), Ok(()));
        }
        let want_b: Vec<(i64, i64)> = bids.iter().rev().map(|(&p, &q)| (p, q)).collect();
        let want_a: Vec<(i64, i64)> = asks.iter().map(|(&p, &q)| (p, q)).collect();
        prop_assert_eq!(book.bids().collect::<Vec<_>>(), &want_b[..]);
        prop_assert_eq!(book.asks().collect::<Vec<_>>(), &want_a[..]);
        prop_assert_eq!(book.best_bid(), want_b.first().copied());
        prop_assert_eq!(book.best_ask(), want_a.first().copied());
        prop_assert_eq!((book.bid_levels(), book.ask_levels()), (want_b.len(), want_a.len()));
        let crossed = matches!((want_b.first(), want_a.first()), (Some(b), Some(a)) if b.0 >= a.0);
        prop_assert_eq!(book.is_crossed(), crossed);
        for n in 0..8 {
            prop_assert_eq!(book.bid_depth(n), want_b.iter().take(n).map(|l| l.1).sum::<i64>());
            prop_assert_eq!(book.ask_depth(n), want_a.iter().take(n).map(|l| l.1).sum::<i64>());
        }
    }

    /// Deep books: hundreds of levels per side, so the chunked ladder splits,
    /// frees and merges chunks; a deletion-heavy tail drains it again. Also
    /// checks iteration from both ends, depth sums across chunks, `clear`
    /// and equality with a book built in a different order.
    #[test]
    fn deep_book_matches_btreemap(
        ops in proptest::collection::vec((any::<bool>(), 0i64..1500, 0i64..4), 0..3000),
        drain in proptest::collection::vec((any::<bool>(), 0i64..1500), 0..3000),
    ) {
        let mut book = OrderBook::with_capacity(16);
        let mut m = [BTreeMap::new(), BTreeMap::new()];
        let ops = ops.into_iter().chain(drain.into_iter().map(|(b, px)| (b, px, 0)));
        for (i, (bid, px, qty)) in ops.enumerate() {
            book.set(side_of(bid), px, qty);
            let m = &mut m[usize::from(bid)];
            if qty == 0 { m.remove(&px); } else { m.insert(px, qty); }
            if i % 97 == 0 {
                prop_assert_eq!(book.check_invariants(), Ok(()));
            }
        }
        prop_assert_eq!(book.check_invariants(), Ok(()));
        let want_b: Vec<(i64, i64)> = m[1].iter().rev().map(|(&p, &q)| (p, q)).collect();
        let want_a: Vec<(i64, i64)> = m[0].iter().map(|(&p, &q)| (p, q)).collect();
        prop_assert_eq!(book.bids().collect::<Vec<_>>(), &want_b[..]);
        prop_assert_eq!(book.asks().collect::<Vec<_>>(), &want_a[..]);
        prop_assert_eq!(book.bids().rev().collect::<Vec<_>>(), want_b.iter().rev().copied().collect::<Vec<_>>());
        prop_assert_eq!(book.asks().len(), want_a.len());
        prop_assert_eq!(book.best_bid(), want_b.first().copied());
        prop_assert_eq!(book.best_ask(), want_a.first().copied());
        for n in [0, 1, 5, 63, 64, 65, 100, 500, 5000] {
            prop_assert_eq!(book.bid_depth(n), want_b.iter().take(n).map(|l| l.1).sum::<i64>());
            prop_assert_eq!(book.ask_depth(n), want_a.iter().take(n).map(|l| l.1).sum::<i64>());
        }
        // Same levels inserted worst-first (another chunking): equal books.
        let mut other = OrderBook::default();
        for &(p, q) in want_b.iter().rev() { other.set(Bid, p, q); }
        for &(p, q) in want_a.iter().rev() { other.set(Ask, p, q); }
        prop_assert_eq!(&other, &book);
        book.clear();
        prop_assert!(book.is_empty());
        prop_assert_eq!(book.check_invariants(), Ok(()));
    }
}

#[derive(Debug, Clone)]
enum Ev {
    Diff(u64, u64, Vec<Level>),
    Snap(u64, Vec<Level>),
    Reset,
}

fn level_strategy() -> impl Strategy<Value = Level> + Clone {
    (any::<bool>(), 0i64..20, 0i64..3).prop_map(|(b, px, q)| lv(side_of(b), px, q))
}

fn ev_strategy() -> impl Strategy<Value = Ev> {
    let levels = proptest::collection::vec(level_strategy(), 0..4);
    prop_oneof![
        8 => (0u64..40, 0u64..4, levels.clone()).prop_map(|(u0, len, l)| Ev::Diff(u0, u0 + len, l)),
        2 => (0u64..40, levels).prop_map(|(id, l)| Ev::Snap(id, l)),
        1 => Just(Ev::Reset),
    ]
}

/// The rule of SIGNALS.md 2.5 written as naively as possible.
#[derive(Default)]
struct Model {
    book: [BTreeMap<i64, i64>; 2],
    id: u64,
    synced: bool,
    buf: Vec<(u64, u64, Vec<Level>)>,
    cap: usize,
    overflows: u64,
}

impl Model {
    fn set(&mut self, l: &Level) {
        let m = &mut self.book[usize::from(l.side == Ask)];
        if l.qty == 0 {
            m.remove(&l.px);
        } else {
            m.insert(l.px, l.qty);
        }
    }

    fn push(&mut self, d: (u64, u64, Vec<Level>)) {
        let cost = |l: &Vec<Level>| l.len().max(1);
        if cost(&d.2) > self.cap {
            self.overflows += 1;
            return;
        }
        self.buf.push(d);
        while self.buf.iter().map(|d| cost(&d.2)).sum::<usize>() > self.cap {
            self.buf.remove(0);
            self.overflows += 1;
        }
    }

    /// 0 stale, 1 gap, 2 applied.
    fn update(&mut self, u0: u64, u1: u64, l: &[Level]) -> u8 {
        if u1 <= self.id {
            return 0;
        }
        if u0 > self.id + 1 {
            return 1;
        }
        for x in l {
            self.set(x);
        }
        self.id = u1;
        2
    }

    fn on_diff(&mut self, u0: u64, u1: u64, l: Vec<Level>) -> DiffOutcome {
        if !self.synced {
            self.push((u0, u1, l));
            return DiffOutcome::Buffered;
        }
        match self.update(u0, u1, &l) {
            0 => DiffOutcome::Stale,
            2 => DiffOutcome::Applied,
            _ => {
                self.book = Default::default();
                self.synced = false;
                self.buf.clear();
                self.push((u0, u1, l));
                DiffOutcome::Gap
            }
        }
    }

    fn on_snap(&mut self, id: u64, l: &[Level]) -> SnapshotOutcome {
        if self.synced {
            return SnapshotOutcome::Ignored;
        }
        self.book = Default::default();
        for x in l.iter().filter(|x| x.qty != 0) {
            self.set(x);
        }
        self.id = id;
        self.synced = true;
        let buf = std::mem::take(&mut self.buf);
        let mut replayed = 0;
        for (i, (u0, u1, lv)) in buf.iter().enumerate() {
            match self.update(*u0, *u1, lv) {
                0 => {}
                2 => replayed += 1,
                _ => {
                    self.book = Default::default();
                    self.synced = false;
                    self.buf = buf[i..].to_vec();
                    return SnapshotOutcome::GapInBuffer;
                }
            }
        }
        SnapshotOutcome::Synced { replayed }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn depth_sync_matches_model(evs in proptest::collection::vec(ev_strategy(), 0..120), small in any::<bool>()) {
        let cap = if small { 6 } else { 10_000 };
        let mut s = DepthSync::new(2, cap);
        let mut m = Model { cap, ..Model::default() };
        for ev in evs {
            match ev {
                Ev::Diff(u0, u1, l) => {
                    let got = s.on_diff(&diff(u0, u1), &l);
                    prop_assert_eq!(got, m.on_diff(u0, u1, l));
                }
                Ev::Snap(id, l) => {
                    let got = s.on_snapshot(&snap(id), &l);
                    prop_assert_eq!(got, m.on_snap(id, &l));
                }
                Ev::Reset => {
                    s.reset();
                    m.book = Default::default();
                    m.synced = false;
                    m.buf.clear();
                }
            }
            prop_assert_eq!(s.is_synced(), m.synced);
            if m.synced {
                prop_assert_eq!(s.book_id(), m.id);
            }
            prop_assert_eq!(s.book().check_invariants(), Ok(()));
            let bids: Vec<(i64, i64)> = m.book[0].iter().rev().map(|(&p, &q)| (p, q)).collect();
            let asks: Vec<(i64, i64)> = m.book[1].iter().map(|(&p, &q)| (p, q)).collect();
            prop_assert_eq!(s.book().bids().collect::<Vec<_>>(), bids);
            prop_assert_eq!(s.book().asks().collect::<Vec<_>>(), asks);
            let buf: Vec<(u64, u64, Vec<Level>)> =
                s.buffered().map(|(h, l)| (h.first_id, h.last_id, l.to_vec())).collect();
            prop_assert_eq!(buf, m.buf.clone());
            prop_assert_eq!(s.buffer_overflows(), m.overflows);
        }
    }
}

fn linked(prev: u64, seq: u64) -> DepthHeader {
    DepthHeader {
        prev_last_id: prev,
        ..diff(seq, seq)
    }
}

fn stream_policy(sequence: SyncRule) -> feeds::book::BookPolicy {
    feeds::book::BookPolicy {
        start: feeds::book::BookStart::StreamSnapshot,
        sequence,
        integrity: feeds::book::Integrity::None,
    }
}

#[test]
fn linked_sequence_chains_by_prev_id_with_keepalives_and_resets() {
    let mut s = DepthSync::with_policy(stream_policy(SyncRule::Linked), 16, 64);
    // Before the stream's snapshot: kept for bridging (they carry sequence
    // numbers; a REST bootstrap could need them), stale once it arrives...
    assert_eq!(s.on_diff(&linked(1, 5), &[]), DiffOutcome::Buffered);
    assert_eq!(s.buffered_diffs(), 1);
    // ... while updates without sequence numbers cannot be bridged: dropped.
    assert_eq!(s.on_diff(&linked(0, 0), &[]), DiffOutcome::NotSynced);
    assert_eq!(s.buffered_diffs(), 1);
    assert!(matches!(
        s.on_snapshot(&snap(10), &snapshot_levels()),
        SnapshotOutcome::Synced { .. }
    ));
    // Steps need not be 1.
    assert_eq!(
        s.on_diff(&linked(10, 17), &[lv(Bid, 100, 3)]),
        DiffOutcome::Applied
    );
    // seqId == prevSeqId: a keepalive, applies nothing new.
    assert_eq!(s.on_diff(&linked(17, 17), &[]), DiffOutcome::Applied);
    assert_eq!(s.book_id(), 17);
    assert_eq!(s.book().best_bid(), Some((100, 3)));
    // A broken chain is a gap; the offending update waits for the bridge.
    assert_eq!(s.on_diff(&linked(18, 20), &[]), DiffOutcome::Gap);
    assert!(!s.is_synced());
    assert_eq!(s.buffered_diffs(), 1);
    // The next snapshot restarts it; a sequence going backwards is a reset (gap).
    assert!(matches!(
        s.on_snapshot(&snap(30), &snapshot_levels()),
        SnapshotOutcome::Synced { .. }
    ));
    assert_eq!(s.on_diff(&linked(30, 31), &[]), DiffOutcome::Applied);
    // A REST snapshot (possibly older) never replaces a synced stream book.
    let rest = SnapshotHeader {
        from_rest: true,
        ..snap(40)
    };
    assert_eq!(s.on_snapshot(&rest, &[]), SnapshotOutcome::Ignored);
    assert_eq!(s.book_id(), 31);
    assert_eq!(s.on_diff(&linked(5, 6), &[]), DiffOutcome::Gap);
}

#[test]
fn linked_rest_bridge_drops_covered_updates() {
    let mut s = DepthSync::with_rule(SyncRule::Linked, 16, 64);
    for (p, q) in [(1, 5), (5, 9), (9, 12)] {
        assert_eq!(
            s.on_diff(&linked(p, q), &[lv(Ask, 100 + q as i64, 1)]),
            DiffOutcome::Buffered
        );
    }
    // REST snapshot at seqId 9: (1,5), (5,9) are covered; (9,12) bridges (prev <= 9 < 12).
    let out = s.on_snapshot(&snap(9), &snapshot_levels());
    assert_eq!(out, SnapshotOutcome::Synced { replayed: 1 });
    assert_eq!(s.book_id(), 12);
    assert_eq!(s.on_diff(&linked(12, 13), &[]), DiffOutcome::Applied);
}

#[test]
fn stream_snapshots_replace_the_book_and_truncate_to_the_subscribed_depth() {
    let mut s = DepthSync::with_policy(stream_policy(SyncRule::Unsequenced), 16, 64);
    let deep = SnapshotHeader {
        max_depth: 2,
        wire: feeds::instruments::NO_WIRE,
        ..snap(0)
    };
    let levels = [
        lv(Bid, 100, 1),
        lv(Bid, 99, 1),
        lv(Bid, 98, 1),
        lv(Ask, 101, 1),
    ];
    assert!(matches!(
        s.on_snapshot(&deep, &levels),
        SnapshotOutcome::Synced { .. }
    ));
    assert_eq!(
        s.book().bid_levels(),
        2,
        "truncated to the subscribed depth"
    );
    // A better bid pushes the worst one out.
    assert_eq!(
        s.on_diff(&diff(0, 0), &[lv(Bid, 1005, 1)]),
        DiffOutcome::Applied
    );
    let bids: Vec<i64> = s.book().bids().map(|(p, _)| p).collect();
    assert_eq!(bids, [1005, 100]);
    s.book().check_invariants().unwrap();
    // A snapshot while synced replaces the book.
    let out = s.on_snapshot(&snap(0), &[lv(Bid, 50, 2), lv(Ask, 60, 2)]);
    assert_eq!(out, SnapshotOutcome::Replaced);
    assert_eq!(
        (s.book().best_bid(), s.book().best_ask()),
        (Some((50, 2)), Some((60, 2)))
    );
}

proptest! {
    #[test]
    fn truncate_keeps_the_best_levels(
        prices in proptest::collection::btree_set(1i64..5000, 0..400),
        keep in 0usize..300,
    ) {
        let mut b = OrderBook::with_capacity(8);
        for &p in &prices {
            b.set(Bid, p, 1);
            b.set(Ask, p + 10_000, 1);
        }
        b.truncate(keep);
        b.check_invariants().unwrap();
        let want_bids: Vec<i64> = prices.iter().rev().take(keep).copied().collect();
        let want_asks: Vec<i64> = prices.iter().take(keep).map(|p| p + 10_000).collect();
        prop_assert_eq!(b.bids().map(|(p, _)| p).collect::<Vec<_>>(), want_bids);
        prop_assert_eq!(b.asks().map(|(p, _)| p).collect::<Vec<_>>(), want_asks);
    }
}
