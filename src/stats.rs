//! Numbers an operator can watch: calls and errors per operation and per error code, latency
//! percentiles from a fixed-size histogram per operation, and what the connections went
//! through (connects, reconnects, failovers followed).
//!
//! Latencies are measured where every call starts and settles, the JS side of the link, which
//! hands them over in batches (`record`); a call costs no allocation here. A histogram is made
//! once, on an operation's first call.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use crate::error::ErrorKind;

/// Every error code, in the order `record` numbers them (1-based; 0 is success).
pub const ERROR_KINDS: [ErrorKind; 11] = [
    ErrorKind::NotConnected,
    ErrorKind::Timeout,
    ErrorKind::BadArgument,
    ErrorKind::Redis,
    ErrorKind::WrongType,
    ErrorKind::Overloaded,
    ErrorKind::Closed,
    ErrorKind::Auth,
    ErrorKind::BadData,
    ErrorKind::Internal,
    ErrorKind::ServerVersion,
];
/// Errors without a code of ours (a throwing serializer, say).
const OTHER_ERROR: usize = ERROR_KINDS.len() + 1;

/// Operation codes run from 1 to this, with gaps (see `batch::op`).
const OPS: usize = crate::batch::MAX_OP as usize;
/// Latencies are kept in microseconds, from 1 µs to 10 minutes, at 2 significant digits.
const MAX_MICROS: u64 = 600_000_000;

/// What the connections of one store went through, added to by every connection of it.
#[derive(Default)]
pub struct LinkCounters {
    /// Connections established, the first ones included.
    pub connects: AtomicU64,
    /// Connections established again after one was lost.
    pub reconnects: AtomicU64,
    /// A new primary followed: Sentinel named another server, or a cluster's slots moved to
    /// another node.
    pub failovers: AtomicU64,
    /// `+switch-master` announcements of our primary heard from the sentinels: each makes
    /// every connection to the old primary go and find the new one.
    pub switches_announced: AtomicU64,
    /// Panics caught inside the engine (each failed its calls with `ERR_INTERNAL`).
    pub internal_errors: AtomicU64,
    /// Tells the JS thread of an announcement at once (set by the napi layer).
    pub on_switch: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for LinkCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkCounters")
            .field("connects", &self.connects)
            .field("reconnects", &self.reconnects)
            .field("failovers", &self.failovers)
            .finish()
    }
}

impl LinkCounters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct OpStats {
    calls: u64,
    errors: [u64; OTHER_ERROR + 1],
    latency: Histogram<u64>,
}

/// Per-operation call counts and latencies. Lives on the JS thread.
#[derive(Default)]
pub struct CallStats {
    ops: Vec<Option<Box<OpStats>>>,
}

impl CallStats {
    /// Takes `[op, micros, code, op, micros, code, …]`; `micros` is -1 for a call counted but
    /// not timed. Entries that make no sense are skipped.
    pub fn record(&mut self, entries: &[f64]) {
        if self.ops.is_empty() {
            self.ops.resize_with(OPS + 1, || None);
        }
        for e in entries.chunks_exact(3) {
            let (op, micros, code) = (e[0], e[1], e[2]);
            if !(op >= 1.0 && op <= OPS as f64 && micros.is_finite() && code >= 0.0) {
                continue;
            }
            let slot = &mut self.ops[op as usize];
            let stats = slot.get_or_insert_with(|| {
                Box::new(OpStats {
                    calls: 0,
                    errors: [0; OTHER_ERROR + 1],
                    latency: Histogram::new_with_bounds(1, MAX_MICROS, 2)
                        .expect("constant bounds are valid"),
                })
            });
            stats.calls += 1;
            let code = (code as usize).min(OTHER_ERROR);
            if code > 0 {
                stats.errors[code] += 1;
            }
            if micros >= 0.0 {
                stats
                    .latency
                    .saturating_record((micros.max(1.0) as u64).min(MAX_MICROS));
            }
        }
    }

    /// `{"<op>": {"calls", "errors": {"<code>": n}, "latency": {"p50", "p90", "p99", "max"}}}`
    /// with latencies in milliseconds; `names[op]` names each operation.
    pub fn to_json(&self, names: impl Fn(usize) -> &'static str) -> String {
        let mut out = String::from("{");
        for (op, stats) in self.ops.iter().enumerate() {
            let Some(s) = stats else { continue };
            if out.len() > 1 {
                out.push(',');
            }
            let ms = |micros: u64| micros as f64 / 1000.0;
            let _ = write!(
                out,
                "\"{}\":{{\"calls\":{},\"errors\":{{",
                names(op),
                s.calls
            );
            let mut first = true;
            for (i, n) in s.errors.iter().enumerate().filter(|(_, n)| **n > 0) {
                let code = match i {
                    i if i <= ERROR_KINDS.len() => ERROR_KINDS[i - 1].code(),
                    _ => "OTHER",
                };
                let _ = write!(out, "{}\"{code}\":{n}", if first { "" } else { "," });
                first = false;
            }
            let h = &s.latency;
            let _ = write!(
                out,
                "}},\"latency\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"max\":{}}}}}",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.9)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max()),
            );
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_errors_and_percentiles() {
        let mut s = CallStats::default();
        let mut entries = Vec::new();
        for i in 1..=100 {
            // op 1, i ms, success
            entries.extend_from_slice(&[1.0, i as f64 * 1000.0, 0.0]);
        }
        entries.extend_from_slice(&[2.0, 500.0, 2.0, 2.0, 700.0, 99.0, f64::NAN, 1.0, 0.0]);
        s.record(&entries);
        let json: serde_json::Value =
            serde_json::from_str(&s.to_json(|op| if op == 1 { "get" } else { "set" })).unwrap();
        assert_eq!(json["get"]["calls"], 100);
        let p50 = json["get"]["latency"]["p50"].as_f64().unwrap();
        assert!((49.0..=51.0).contains(&p50), "{p50}");
        let p99 = json["get"]["latency"]["p99"].as_f64().unwrap();
        assert!((98.0..=100.5).contains(&p99), "{p99}");
        assert_eq!(json["set"]["calls"], 2);
        assert_eq!(json["set"]["errors"]["ERR_TIMEOUT"], 1);
        assert_eq!(json["set"]["errors"]["OTHER"], 1);
        assert!(json.get("destroy").is_none());
    }
}
