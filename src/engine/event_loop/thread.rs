//! What wakes the engine on hosts whose libuv cannot be used (Bun, Deno): one thread waits on
//! the engine's sockets and timers with the `polling` crate (epoll, kqueue, event ports, or
//! Windows' AFD polling), and their callbacks run on the JS thread, reached through a
//! threadsafe function (`js::Waker`). It offers the handle calls libuv does, so the engine
//! above it is the same code on every host.
//!
//! Only the thread touches the poller's interest (`add`, `modify`, `delete`); the JS thread
//! changes the registry and breaks the thread's wait with `Poller::notify`. Interest is
//! one-shot: a report disarms the socket until its callback has run.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::ptr::NonNull;
use std::rc::Weak;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use polling::{Events, Poller};

use super::{alloc_handle, fired, free_handle, ready, Listener, OsSocket};
use crate::engine::js::Waker;

/// What the thread's handles take of memory: the `data` word only.
const HANDLE_SIZE: usize = 8;

struct Poll {
    fd: OsSocket,
    writable: bool,
    /// False while a readiness report is on its way to the JS thread: the socket is not
    /// watched again until its callback has run.
    armed: bool,
    /// What the poller was last told to watch for (written by the thread only): `None` before
    /// the socket is added, `Some(None)` while disarmed, `Some(Some(writable))` while armed.
    told: Option<Option<bool>>,
    /// The poller refused it: reported once, never watched again.
    refused: bool,
    refd: bool,
}

struct Timer {
    due: Option<Instant>,
    /// Bumped by every setting, so a firing that crossed a new setting is dropped.
    generation: u64,
    /// Fired, its callback not yet run: still keeps the process alive.
    firing: bool,
    refd: bool,
}

enum Event {
    Poll(usize, bool, bool),
    /// The poller refused the socket (the OS error, negated like a libuv status): its owner
    /// drops the connection; the socket is not watched again.
    Failed(usize, c_int),
    Timer(usize, u64),
    Close(usize),
}

#[derive(Default)]
struct Registry {
    polls: HashMap<usize, Poll>,
    timers: HashMap<usize, Timer>,
    /// Closed handles, with the socket to take out of the poller when it was added.
    closing: Vec<(usize, Option<OsSocket>)>,
    /// Whether the waker is held (some handle keeps the process alive).
    held: bool,
    /// The runtime is tearing the env down: the waker is about to be freed.
    gone: bool,
    /// What the thread is doing: `None` while it works (it reads the registry again before
    /// it waits), `Some(until)` once it waits in the poller with what it read (`until`: its
    /// next timer, `None` for none). A change needs a wake only in the second case, and only
    /// when the thread would miss it.
    asleep: Option<Option<Instant>>,
}

struct Driver {
    registry: Mutex<Registry>,
    poller: Poller,
    waker: Waker,
}

static DRIVER: OnceLock<Option<Driver>> = OnceLock::new();

fn driver() -> &'static Driver {
    DRIVER
        .get()
        .and_then(Option::as_ref)
        .expect("handles are made only after install")
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    driver().registry.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the thread once per process, with the waker `make` builds for the JS thread it
/// reports to; true when it runs for `env` (a second JS thread, a worker, gets false).
pub fn install(env: usize, make: impl FnOnce() -> Option<Waker>) -> bool {
    DRIVER
        .get_or_init(|| start(make))
        .as_ref()
        .is_some_and(|d| d.waker.env() == env)
}

fn start(make: impl FnOnce() -> Option<Waker>) -> Option<Driver> {
    let poller = Poller::new().ok()?;
    let waker = make()?;
    waker.hold(false);
    let sender = waker.sender();
    std::thread::Builder::new()
        .name("ferrisession-io".into())
        .spawn(move || watch_loop(sender))
        .ok()?;
    Some(Driver {
        registry: Mutex::new(Registry::default()),
        poller,
        waker,
    })
}

/// The runtime is tearing its env down (`js::Waker`'s cleanup hook): report nothing more.
pub fn teardown() {
    if let Some(d) = DRIVER.get().and_then(Option::as_ref) {
        d.registry.lock().unwrap_or_else(|e| e.into_inner()).gone = true;
    }
}

fn wake() {
    let _ = driver().poller.notify();
}

/// Wakes the thread if it waits in the poller (it would miss a change to what it watches).
fn wake_if_asleep() {
    let asleep = registry().asleep.is_some();
    if asleep {
        wake();
    }
}

/// The thread: waits for sockets to become ready and timers to fall due, and sends what
/// happened to the JS thread.
fn watch_loop(sender: crate::engine::js::WakeSender) {
    // Spawned from inside the `DRIVER` initialisation: wait until it is stored.
    let d = loop {
        match DRIVER.get() {
            Some(Some(d)) => break d,
            Some(None) => return,
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    let mut ready = Events::new();
    loop {
        let mut events = Vec::new();
        let timeout = {
            let mut r = d.registry.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            for (&h, t) in r.timers.iter_mut() {
                match t.due {
                    Some(due) if due <= now => {
                        t.due = None;
                        t.firing = true;
                        events.push(Event::Timer(h, t.generation));
                    }
                    Some(due) => next = Some(next.map_or(due, |n| n.min(due))),
                    None => {}
                }
            }
            for (h, socket) in r.closing.drain(..) {
                if let Some(socket) = socket {
                    let _ = sys::delete(&d.poller, socket);
                }
                events.push(Event::Close(h));
            }
            for (&h, p) in r.polls.iter_mut() {
                if p.refused {
                    continue;
                }
                let want = p.armed.then_some(p.writable);
                if p.told == Some(want) {
                    continue;
                }
                let interest = match want {
                    Some(w) => polling::Event::new(h, true, w),
                    None => polling::Event::none(h),
                };
                let told = match p.told {
                    None => sys::add(&d.poller, p.fd, interest),
                    Some(_) => sys::modify(&d.poller, p.fd, interest),
                };
                match told {
                    Ok(()) => p.told = Some(want),
                    // A socket the poller refuses is reported failed, once: its owner drops
                    // the connection, and the socket is not armed again.
                    Err(e) => {
                        p.armed = false;
                        p.refused = true;
                        events.push(Event::Failed(h, -e.raw_os_error().unwrap_or(1).abs()));
                    }
                }
            }
            r.asleep = events.is_empty().then_some(next);
            match (events.is_empty(), next) {
                (false, _) => Some(Duration::ZERO),
                (true, Some(at)) => Some(
                    at.saturating_duration_since(now)
                        .saturating_add(Duration::from_millis(1)),
                ),
                (true, None) => None,
            }
        };
        ready.clear();
        let waited = d.poller.wait(&mut ready, timeout).ok();
        registry().asleep = None;
        if waited.is_some_and(|n| n > 0) {
            let mut r = registry();
            for report in ready.iter() {
                let Some(p) = r.polls.get_mut(&report.key) else {
                    continue;
                };
                // One-shot: the poller watches the socket no more until told again.
                p.told = Some(None);
                p.armed = false;
                events.push(Event::Poll(report.key, report.readable, report.writable));
            }
        }
        if !events.is_empty() {
            // Held across the call, so the env cannot be torn down in the middle of it.
            let r = registry();
            if r.gone {
                return;
            }
            let sent = sender.send(Box::new(events));
            drop(r);
            if !sent {
                // The runtime is shutting down.
                return;
            }
        } else if waited.is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The poller's calls on a raw socket of this platform.
mod sys {
    use super::OsSocket;
    use polling::{Event, Poller};
    #[cfg(unix)]
    use std::os::fd::{BorrowedFd as Borrowed, RawFd as Raw};
    #[cfg(windows)]
    use std::os::windows::io::{BorrowedSocket as Borrowed, RawSocket as Raw};

    /// # Safety
    /// The socket is open, and stays open until `delete`: its owner's `keep` holds it until
    /// the handle's `Close` has passed through the thread, which deletes it first.
    unsafe fn borrowed(socket: OsSocket) -> Borrowed<'static> {
        unsafe { Borrowed::borrow_raw(socket as Raw) }
    }

    pub fn add(poller: &Poller, socket: OsSocket, interest: Event) -> std::io::Result<()> {
        // SAFETY: see `borrowed`.
        unsafe { poller.add(socket as Raw, interest) }
    }

    pub fn modify(poller: &Poller, socket: OsSocket, interest: Event) -> std::io::Result<()> {
        // SAFETY: see `borrowed`.
        poller.modify(unsafe { borrowed(socket) }, interest)
    }

    pub fn delete(poller: &Poller, socket: OsSocket) -> std::io::Result<()> {
        // SAFETY: see `borrowed`.
        poller.delete(unsafe { borrowed(socket) })
    }
}

/// On the JS thread (through the waker): runs the callbacks of what the thread saw, then
/// watches the sockets again.
pub fn dispatch(events: Box<dyn std::any::Any + Send>) {
    let Ok(events) = events.downcast::<Vec<Event>>() else {
        return;
    };
    // A socket whose report was on its way is watched again: one wake for all of them.
    let mut rearmed = false;
    for event in *events {
        match event {
            Event::Poll(h, readable, writable) => {
                let call = registry()
                    .polls
                    .get(&h)
                    .map(|p| (readable, writable && p.writable));
                if let Some((r, w)) = call {
                    // SAFETY: the handle is registered, so it is open and its memory live.
                    unsafe { ready(h as *mut c_void, r, w, None) };
                }
                if let Some(p) = registry().polls.get_mut(&h) {
                    p.armed = true;
                }
                rearmed = true;
            }
            Event::Failed(h, code) => {
                if registry().polls.contains_key(&h) {
                    // SAFETY: as for polls.
                    unsafe { ready(h as *mut c_void, false, false, Some(code)) };
                }
            }
            Event::Timer(h, generation) => {
                let due = {
                    let mut r = registry();
                    match r.timers.get_mut(&h) {
                        Some(t) if t.generation == generation => {
                            t.firing = false;
                            true
                        }
                        _ => false,
                    }
                };
                if due {
                    // SAFETY: as for polls.
                    unsafe { fired(h as *mut c_void) };
                }
            }
            // SAFETY: closed and unregistered: nothing names it again.
            Event::Close(h) => unsafe { free_handle(h as *mut c_void, HANDLE_SIZE) },
        }
    }
    if rearmed {
        wake_if_asleep();
    }
    hold_waker();
}

/// Holds the waker while an active, held handle needs the process alive, and lets go of it
/// otherwise (libuv's rule for its loop). JS thread only.
fn hold_waker() {
    let d = driver();
    let mut r = registry();
    let needed = r.polls.values().any(|p| p.refd)
        || r.timers
            .values()
            .any(|t| t.refd && (t.due.is_some() || t.firing));
    if needed == r.held || r.gone {
        return;
    }
    r.held = needed;
    drop(r);
    d.waker.hold(needed);
}

pub(super) fn poll_open(fd: OsSocket, listener: Weak<dyn Listener>) -> NonNull<c_void> {
    let raw = alloc_handle(HANDLE_SIZE, listener);
    registry().polls.insert(
        raw.as_ptr() as usize,
        Poll {
            fd,
            writable: false,
            armed: true,
            told: None,
            refused: false,
            refd: false,
        },
    );
    wake();
    raw
}

pub(super) fn poll_watch(raw: NonNull<c_void>, writable: bool) {
    if let Some(p) = registry().polls.get_mut(&(raw.as_ptr() as usize)) {
        p.writable = writable;
    }
    // Watching for less needs no wake: a report of it is dropped on the JS thread, and the
    // thread reads the registry again after each report.
    if writable {
        wake_if_asleep();
    }
}

pub(super) fn timer_open(listener: Weak<dyn Listener>) -> NonNull<c_void> {
    let raw = alloc_handle(HANDLE_SIZE, listener);
    registry().timers.insert(
        raw.as_ptr() as usize,
        Timer {
            due: None,
            generation: 0,
            firing: false,
            refd: false,
        },
    );
    raw
}

pub(super) fn timer_set(raw: NonNull<c_void>, ms: Option<u64>) {
    let due = ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    let sooner = {
        let mut r = registry();
        if let Some(t) = r.timers.get_mut(&(raw.as_ptr() as usize)) {
            t.due = due;
            t.generation += 1;
            t.firing = false;
        }
        // A later or cancelled timer is found when the thread next wakes; only a sooner one
        // must wake it now.
        match (r.asleep, due) {
            (Some(until), Some(due)) => until.is_none_or(|until| due < until),
            _ => false,
        }
    };
    hold_waker();
    if sooner {
        wake();
    }
}

pub(super) fn close(raw: NonNull<c_void>) {
    {
        let mut r = registry();
        let h = raw.as_ptr() as usize;
        let added = r.polls.remove(&h).and_then(|p| p.told.map(|_| p.fd));
        r.timers.remove(&h);
        r.closing.push((h, added));
    }
    hold_waker();
    wake();
}

pub(super) fn hold(raw: NonNull<c_void>, on: bool) {
    {
        let mut r = registry();
        let h = raw.as_ptr() as usize;
        if let Some(p) = r.polls.get_mut(&h) {
            p.refd = on;
        }
        if let Some(t) = r.timers.get_mut(&h) {
            t.refd = on;
        }
    }
    hold_waker();
}
