//! `/health`: feed connectivity, per-instrument sync and staleness, judged
//! from the counters the pipeline publishes (nothing here touches the hot
//! path). Schema in docs/observability.md.

use serde_json::{json, Value};

use super::{MetricsOptions, Mode};
use crate::pipeline::stats::Registry;

/// Connection state of one feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedState {
    /// Live, never connected yet.
    Connecting,
    /// Live and connected.
    Connected,
    /// Live, connected before, disconnected now (backing off / reconnecting).
    Reconnecting,
    /// Replaying captures: no connection to judge.
    Replay,
}

impl FeedState {
    /// Name in `/health`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            FeedState::Connecting => "connecting",
            FeedState::Connected => "connected",
            FeedState::Reconnecting => "reconnecting",
            FeedState::Replay => "replay",
        }
    }
}

/// Health of one feed.
#[derive(Clone, Debug)]
pub struct FeedHealth {
    /// Feed name (`binance-spot#0`).
    pub name: String,
    /// Connection state.
    pub state: FeedState,
    /// Connections made.
    pub connects: u64,
    /// Disconnections.
    pub disconnects: u64,
    /// Seconds since the last frame (`None`: no frame yet).
    pub last_message_age_s: Option<f64>,
    /// Connected (live) or replaying.
    pub healthy: bool,
}

/// Health of one instrument.
#[derive(Clone, Debug)]
pub struct InstrumentHealth {
    /// Venue name.
    pub venue: String,
    /// Venue symbol.
    pub symbol: String,
    /// Seen by a signal thread (configured symbols may not have arrived yet).
    pub seen: bool,
    /// The depth book is synced.
    pub in_sync: bool,
    /// Seconds since the last trade, quote or applied diff (`None`: none yet).
    pub last_update_age_s: Option<f64>,
    /// No update for longer than the stale threshold (or none at all).
    pub stale: bool,
    /// In sync and not stale.
    pub healthy: bool,
}

/// The whole judgement.
#[derive(Clone, Debug)]
pub struct Health {
    /// Every feed and instrument healthy (and at least one instrument).
    pub ok: bool,
    /// Live or replay.
    pub mode: Mode,
    /// The stale threshold, seconds.
    pub stale_after_s: f64,
    /// Per feed.
    pub feeds: Vec<FeedHealth>,
    /// Per instrument.
    pub instruments: Vec<InstrumentHealth>,
    /// Current resident set size, bytes.
    pub rss_bytes: u64,
    /// Configured memory budget, bytes.
    pub memory_budget_bytes: Option<u64>,
    /// Human-readable reasons for `degraded`.
    pub problems: Vec<String>,
}

fn age_s(now_ns: u64, last_ns: i64) -> Option<f64> {
    (last_ns > 0).then(|| now_ns.saturating_sub(last_ns as u64) as f64 / 1e9)
}

/// Judges the registry at monotonic time `now_ns` ([`crate::pipeline::clock::mono_ns`]).
#[must_use]
pub fn evaluate(registry: &Registry, opts: &MetricsOptions, now_ns: u64, rss_bytes: u64) -> Health {
    let stale_after_s = opts.stale_after.as_secs_f64();
    let mut problems = Vec::new();
    let feeds: Vec<FeedHealth> = registry
        .feeds()
        .into_iter()
        .map(|(name, f)| {
            let (connects, disconnects) = (f.connects.get(), f.disconnects.get());
            let state = match opts.mode {
                Mode::Replay => FeedState::Replay,
                Mode::Live if f.connected.get() >= f.connections.get().max(1) => {
                    FeedState::Connected
                }
                Mode::Live if connects == 0 => FeedState::Connecting,
                Mode::Live => FeedState::Reconnecting,
            };
            let healthy = matches!(state, FeedState::Connected | FeedState::Replay);
            if !healthy {
                problems.push(format!("feed {name}: {}", state.as_str()));
            }
            FeedHealth {
                name,
                state,
                connects,
                disconnects,
                last_message_age_s: age_s(now_ns, f.last_frame_mono.get()),
                healthy,
            }
        })
        .collect();

    let mut instruments: Vec<InstrumentHealth> = registry
        .instruments()
        .into_iter()
        .map(|(info, s)| {
            let venue = feeds::venue::VENUES
                .get(info.venue as usize)
                .map_or("unknown", |v| v.name);
            let in_sync = s.synced.get() == 1;
            let age = age_s(now_ns, s.last_event_mono.get());
            let stale = age.is_none_or(|a| a > stale_after_s);
            InstrumentHealth {
                venue: venue.to_owned(),
                symbol: info.symbol.as_str().to_owned(),
                seen: true,
                in_sync,
                last_update_age_s: age,
                stale,
                healthy: in_sync && !stale,
            }
        })
        .collect();
    for (venue, symbol) in &opts.expected {
        if !instruments
            .iter()
            .any(|i| &i.venue == venue && &i.symbol == symbol)
        {
            instruments.push(InstrumentHealth {
                venue: venue.clone(),
                symbol: symbol.clone(),
                seen: false,
                in_sync: false,
                last_update_age_s: None,
                stale: true,
                healthy: false,
            });
        }
    }
    for i in &instruments {
        if i.healthy {
            continue;
        }
        let mut why = Vec::new();
        if !i.seen {
            why.push("no data yet".to_owned());
        } else {
            if !i.in_sync {
                why.push("book not in sync".to_owned());
            }
            if i.stale {
                why.push(match i.last_update_age_s {
                    Some(a) => format!("stale ({a:.3} s since the last update)"),
                    None => "no update yet".to_owned(),
                });
            }
        }
        problems.push(format!("{}:{}: {}", i.venue, i.symbol, why.join(", ")));
    }
    if instruments.is_empty() {
        problems.push("no instrument seen yet".to_owned());
    }
    Health {
        ok: problems.is_empty(),
        mode: opts.mode,
        stale_after_s,
        feeds,
        instruments,
        rss_bytes,
        memory_budget_bytes: opts.memory_budget_bytes,
        problems,
    }
}

impl Health {
    /// `"ok"` or `"degraded"`.
    #[must_use]
    pub const fn status(&self) -> &'static str {
        if self.ok {
            "ok"
        } else {
            "degraded"
        }
    }

    /// The `/health` body.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "status": self.status(),
            "mode": self.mode.as_str(),
            "stale_after_ms": (self.stale_after_s * 1e3).round() as u64,
            "feeds": self.feeds.iter().map(|f| json!({
                "name": f.name,
                "state": f.state.as_str(),
                "connected": f.state == FeedState::Connected,
                "connects": f.connects,
                "disconnects": f.disconnects,
                "last_message_age_s": f.last_message_age_s,
                "healthy": f.healthy,
            })).collect::<Vec<_>>(),
            "instruments": self.instruments.iter().map(|i| json!({
                "venue": i.venue,
                "symbol": i.symbol,
                "seen": i.seen,
                "in_sync": i.in_sync,
                "last_update_age_s": i.last_update_age_s,
                "stale": i.stale,
                "healthy": i.healthy,
            })).collect::<Vec<_>>(),
            "memory": {
                "rss_bytes": self.rss_bytes,
                "budget_bytes": self.memory_budget_bytes,
                "over_budget": self.memory_budget_bytes.is_some_and(|b| self.rss_bytes > b),
            },
            "problems": self.problems,
        })
    }
}
