//! Binance spot message fields, read from a simd-json tape in one pass.
//!
//! Binance reuses one-letter keys across message kinds with different types
//! (`a` is the aggTrade id, the bookTicker ask price and the depth asks), so
//! the scan keeps each field as the raw tape slice of its value and the
//! normalizer reads it with the type its kind requires.

use simd_json::Node;

use crate::tape::span;
pub(super) use crate::tape::{as_bool, as_i64, as_str, as_u64, for_each_level, req, Raw};

/// Fields of one Binance object (a raw payload, a wrapper or its `data`).
#[allow(non_snake_case)]
#[derive(Default, Clone, Copy)]
pub(super) struct Fields<'t, 'i> {
    pub e: Option<Raw<'t, 'i>>,
    pub E: Option<Raw<'t, 'i>>,
    pub T: Option<Raw<'t, 'i>>,
    pub s: Option<Raw<'t, 'i>>,
    pub symbol: Option<Raw<'t, 'i>>,
    pub t: Option<Raw<'t, 'i>>,
    pub a: Option<Raw<'t, 'i>>,
    pub p: Option<Raw<'t, 'i>>,
    pub q: Option<Raw<'t, 'i>>,
    pub m: Option<Raw<'t, 'i>>,
    pub u: Option<Raw<'t, 'i>>,
    pub U: Option<Raw<'t, 'i>>,
    pub pu: Option<Raw<'t, 'i>>,
    pub b: Option<Raw<'t, 'i>>,
    pub B: Option<Raw<'t, 'i>>,
    pub A: Option<Raw<'t, 'i>>,
    pub last_update_id: Option<Raw<'t, 'i>>,
    pub bids: Option<Raw<'t, 'i>>,
    pub asks: Option<Raw<'t, 'i>>,
    pub stream: Option<Raw<'t, 'i>>,
    pub data: Option<Raw<'t, 'i>>,
    pub result: Option<Raw<'t, 'i>>,
    pub error: Option<Raw<'t, 'i>>,
    pub id: Option<Raw<'t, 'i>>,
}

impl<'t, 'i> Fields<'t, 'i> {
    /// Scans the object starting at `obj[0]`; `None` if it is not an object
    /// (or the tape is inconsistent).
    #[inline]
    pub(super) fn scan(obj: Raw<'t, 'i>) -> Option<Self> {
        let mut f = Self::default();
        f.scan_into(obj).then_some(f)
    }

    /// [`scan`](Self::scan) into `self` (a default value): no copy of the
    /// struct (24 fields) on the way out; `false` where `scan` is `None`.
    #[inline]
    pub(super) fn scan_into(&mut self, obj: Raw<'t, 'i>) -> bool {
        self.scan_fields(obj).is_some()
    }

    #[inline]
    fn scan_fields(&mut self, obj: Raw<'t, 'i>) -> Option<()> {
        let &Node::Object { len, .. } = obj.first()? else {
            return None;
        };
        let f = self;
        let mut idx = 1;
        for _ in 0..len {
            let Node::String(key) = *obj.get(idx)? else {
                return None;
            };
            let n = span(obj.get(idx + 1)?);
            let v = obj.get(idx + 1..idx + 1 + n)?;
            idx += 1 + n;
            let slot = match key {
                "e" => &mut f.e,
                "E" => &mut f.E,
                "T" => &mut f.T,
                "s" => &mut f.s,
                "t" => &mut f.t,
                "a" => &mut f.a,
                "p" => &mut f.p,
                "q" => &mut f.q,
                "m" => &mut f.m,
                "u" => &mut f.u,
                "U" => &mut f.U,
                "b" => &mut f.b,
                "B" => &mut f.B,
                "A" => &mut f.A,
                "pu" => &mut f.pu,
                "id" => &mut f.id,
                "data" => &mut f.data,
                "bids" => &mut f.bids,
                "asks" => &mut f.asks,
                "stream" => &mut f.stream,
                "symbol" => &mut f.symbol,
                "result" => &mut f.result,
                "error" => &mut f.error,
                "lastUpdateId" => &mut f.last_update_id,
                _ => continue,
            };
            *slot = Some(v);
        }
        Some(())
    }
}
