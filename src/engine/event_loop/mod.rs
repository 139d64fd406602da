//! What wakes the engine: Node's libuv loop (`libuv`), or, on hosts whose libuv cannot be
//! used (Bun, Deno, anything unrecognised), the engine's own I/O thread (`thread`).
//!
//! The engine sees two owned handle types, `PollHandle` and `TimerHandle`. Each is made with
//! a `Listener` it reports to, and is closed exactly once: by `close` or by its `Drop`, which
//! consume it. A handle holds its listener weakly, so a callback that arrives after the
//! listener is gone does nothing. Every callback into the engine passes through `contain`: a
//! panic is caught there and handed to the listener's `recover`, never unwound into C.

pub mod libuv;
pub mod thread;

use std::any::Any;
use std::ffi::c_int;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::rc::Weak;
use std::sync::OnceLock;

#[cfg(unix)]
pub type OsSocket = c_int;
#[cfg(windows)]
pub type OsSocket = usize;

/// What a handle reports to. Called on the JS thread, with no engine state borrowed.
pub trait Listener {
    /// The socket is ready (`readable`, `writable`), or failed (`error`, a libuv status).
    fn on_ready(&self, readable: bool, writable: bool, error: Option<c_int>);
    fn on_timer(&self);
    /// A callback panicked; the listener puts itself back in order (fails what it was doing,
    /// reconnects). A panic in here is swallowed.
    fn recover(&self, what: &str);
}

/// The host runtime, as the JS boundary found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Node,
    Bun,
    Deno,
    Unknown,
}

/// Which loop wakes the engine in this process.
pub enum Driver {
    Libuv(libuv::Uv),
    Thread,
}

static DRIVER: OnceLock<Driver> = OnceLock::new();

/// Chooses the driver once per process: libuv only on Node (whose libuv is real; Bun exports
/// stubs that panic, Deno a partial set), the thread everywhere else, or on Node with
/// `FERRISESSION_NO_LIBUV` set.
pub fn choose(host: Host) -> &'static Driver {
    DRIVER.get_or_init(|| {
        let forced = matches!(std::env::var_os("FERRISESSION_NO_LIBUV"), Some(v) if !v.is_empty() && v != "0");
        let uv = match (host, forced) {
            (Host::Node, false) => libuv::load(),
            _ => None,
        };
        uv.map_or(Driver::Thread, Driver::Libuv)
    })
}

/// The driver chosen, once one was.
pub fn current() -> Option<&'static Driver> {
    DRIVER.get()
}

/// The loop of one JS thread that handles are made on: libuv's own, or the thread's.
#[derive(Clone, Copy)]
pub struct EventLoop {
    driver: &'static Driver,
    /// libuv's `uv_loop_t` of this JS thread (unused by the thread driver).
    uv_loop: NonNull<c_void>,
}

impl EventLoop {
    /// # Safety
    /// `uv_loop` is this JS thread's libuv loop when `driver` is libuv.
    pub unsafe fn new(driver: &'static Driver, uv_loop: NonNull<c_void>) -> EventLoop {
        EventLoop { driver, uv_loop }
    }

    pub fn driver(&self) -> &'static Driver {
        self.driver
    }
}

/// `"libuv"` or `"thread"`, once chosen.
pub fn kind() -> Option<&'static str> {
    current().map(|d| match d {
        Driver::Libuv(_) => "libuv",
        Driver::Thread => "thread",
    })
}

/// Runs `f`, a callback's body; a panic is caught and reported to `listener.recover`.
pub fn contain(listener: &dyn Listener, what: &str, f: impl FnOnce()) {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    if let Err(panic) = run {
        let message = panic_text(&*panic);
        let reason = format!("internal error in {what}: {message}");
        let again =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| listener.recover(&reason)));
        if again.is_err() {
            eprintln!("ferrisession: {reason}; recovering from it failed too");
        }
    }
}

/// Runs `f`, catching a panic; for callbacks with no listener to tell.
pub fn contain_quiet(what: &str, f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        eprintln!(
            "ferrisession: internal error in {what}: {}",
            panic_text(&*panic)
        );
    }
}

pub fn panic_text(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// What a handle's memory carries for its callbacks.
struct Slot {
    listener: Weak<dyn Listener>,
    /// Kept alive until the loop has let go of the handle (the socket whose fd it watched).
    keep: Option<Box<dyn Any>>,
}

/// The memory of one handle: `size` bytes, 8-aligned, whose first word (libuv's `data`)
/// points at its `Slot`.
fn alloc_handle(size: usize, listener: Weak<dyn Listener>) -> NonNull<c_void> {
    let words = size.div_ceil(8).max(1);
    let block: Box<[u64]> = vec![0u64; words].into_boxed_slice();
    let raw = Box::into_raw(block) as *mut u64 as *mut c_void;
    let slot = Box::into_raw(Box::new(Slot {
        listener,
        keep: None,
    }));
    // SAFETY: `raw` is a fresh block of at least one word.
    unsafe { *(raw as *mut *mut Slot) = slot };
    NonNull::new(raw).expect("a box is never null")
}

/// The slot of a live handle from `alloc_handle`.
///
/// SAFETY (of every caller): `handle` came from `alloc_handle` and `free_handle` has not run.
unsafe fn slot<'a>(handle: *mut c_void) -> &'a mut Slot {
    unsafe { &mut **(handle as *mut *mut Slot) }
}

/// Frees a handle from `alloc_handle` and what its slot kept, once the loop let go of it.
///
/// # Safety
/// `handle` came from `alloc_handle(size, …)`, is closed, and no callback will name it again.
unsafe fn free_handle(handle: *mut c_void, size: usize) {
    unsafe {
        drop(Box::from_raw(*(handle as *mut *mut Slot)));
        let words = size.div_ceil(8).max(1);
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            handle as *mut u64,
            words,
        )));
    }
}

/// A readiness report for the handle, run through `contain`.
///
/// # Safety
/// `handle` is live (see `slot`).
unsafe fn ready(handle: *mut c_void, readable: bool, writable: bool, error: Option<c_int>) {
    let listener = unsafe { slot(handle) }.listener.upgrade();
    if let Some(l) = listener {
        contain(&*l, "a socket callback", || {
            l.on_ready(readable, writable, error)
        });
    }
}

/// A timer firing, run through `contain`.
///
/// # Safety
/// `handle` is live (see `slot`).
unsafe fn fired(handle: *mut c_void) {
    let listener = unsafe { slot(handle) }.listener.upgrade();
    if let Some(l) = listener {
        contain(&*l, "a timer callback", || l.on_timer());
    }
}

/// A socket watched for readiness. Closed by `close` or on drop, exactly once.
pub struct PollHandle {
    raw: NonNull<c_void>,
    driver: &'static Driver,
}

impl PollHandle {
    /// Watches nothing yet; `None` when the loop refuses the socket.
    pub fn open(on: &EventLoop, fd: OsSocket, listener: Weak<dyn Listener>) -> Option<PollHandle> {
        let driver = on.driver;
        let raw = match driver {
            Driver::Libuv(uv) => uv.poll_open(on.uv_loop, fd, listener)?,
            Driver::Thread => thread::poll_open(fd, listener),
        };
        Some(PollHandle { raw, driver })
    }

    /// Watches for readable, and for `writable` too.
    pub fn watch(&self, writable: bool) {
        match self.driver {
            Driver::Libuv(uv) => uv.poll_watch(self.raw, writable),
            Driver::Thread => thread::poll_watch(self.raw, writable),
        }
    }

    /// Whether this socket keeps the process alive.
    pub fn hold(&self, on: bool) {
        match self.driver {
            Driver::Libuv(uv) => uv.hold(self.raw, on),
            Driver::Thread => thread::hold(self.raw, on),
        }
    }

    /// Stops watching and closes the handle; `keep` (the socket) lives until the loop has let
    /// go of the handle.
    pub fn close(self, keep: Box<dyn Any>) {
        // SAFETY: the handle is live until its close callback, which `drop` below starts.
        unsafe { slot(self.raw.as_ptr()) }.keep = Some(keep);
    }

    /// Whether a callback's handle is this one.
    pub fn is(&self, handle: *mut c_void) -> bool {
        self.raw.as_ptr() == handle
    }
}

impl Drop for PollHandle {
    fn drop(&mut self) {
        match self.driver {
            Driver::Libuv(uv) => uv.poll_close(self.raw),
            Driver::Thread => thread::close(self.raw),
        }
    }
}

/// A one-shot timer, set again as needed. Closed on drop.
pub struct TimerHandle {
    raw: NonNull<c_void>,
    driver: &'static Driver,
}

impl TimerHandle {
    pub fn open(on: &EventLoop, listener: Weak<dyn Listener>) -> Option<TimerHandle> {
        let driver = on.driver;
        let raw = match driver {
            Driver::Libuv(uv) => uv.timer_open(on.uv_loop, listener)?,
            Driver::Thread => thread::timer_open(listener),
        };
        let timer = TimerHandle { raw, driver };
        timer.hold(false);
        Some(timer)
    }

    /// Fires once, `ms` from now (replacing any earlier setting), or never (`None`).
    pub fn set(&self, ms: Option<u64>) {
        match self.driver {
            Driver::Libuv(uv) => uv.timer_set(self.raw, ms),
            Driver::Thread => thread::timer_set(self.raw, ms),
        }
    }

    /// Whether this timer keeps the process alive.
    pub fn hold(&self, on: bool) {
        match self.driver {
            Driver::Libuv(uv) => uv.hold(self.raw, on),
            Driver::Thread => thread::hold(self.raw, on),
        }
    }
}

impl Drop for TimerHandle {
    fn drop(&mut self) {
        match self.driver {
            Driver::Libuv(uv) => uv.timer_close(self.raw),
            Driver::Thread => thread::close(self.raw),
        }
    }
}
