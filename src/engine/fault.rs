//! Fault injection for the tests of panic containment: `FERRISESSION_INJECT_PANIC=<site>:<n>`
//! makes the `n`-th pass through `site` (`read`, `timer` or `submit`) panic, once per
//! process. Unset (always, outside the tests), a check is one relaxed atomic load.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Site {
    /// A connection reading replies (a socket callback).
    Read,
    /// A connection's timer firing.
    Timer,
    /// A batch of calls from JS.
    Submit,
}

struct Plan {
    site: Site,
    left: AtomicI64,
}

static PLAN: OnceLock<Option<Plan>> = OnceLock::new();

fn plan() -> Option<&'static Plan> {
    PLAN.get_or_init(|| {
        let spec = std::env::var("FERRISESSION_INJECT_PANIC").ok()?;
        let (site, n) = spec.split_once(':')?;
        let site = match site {
            "read" => Site::Read,
            "timer" => Site::Timer,
            "submit" => Site::Submit,
            _ => return None,
        };
        Some(Plan {
            site,
            left: AtomicI64::new(n.parse().ok()?),
        })
    })
    .as_ref()
}

/// Panics here if this is the pass the injection names.
pub fn check(site: Site) {
    if let Some(p) = plan() {
        if p.site == site && p.left.fetch_sub(1, Ordering::Relaxed) == 1 {
            panic!("injected panic at {site:?}");
        }
    }
}
