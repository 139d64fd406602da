//! Node's libuv, looked up in the host process (Node exports it) rather than linked, so the
//! addon loads the same way on every platform. Only `event_loop::choose` loads it, and only on
//! Node: a symbol that exists elsewhere may be a stub.

use std::ffi::{c_int, c_void};
use std::ptr::NonNull;
use std::rc::Weak;

use super::{alloc_handle, contain_quiet, fired, free_handle, ready, Listener, OsSocket};

type Handle = c_void;
type PollCb = unsafe extern "C" fn(handle: *mut Handle, status: c_int, events: c_int);
type TimerCb = unsafe extern "C" fn(handle: *mut Handle);
type CloseCb = unsafe extern "C" fn(handle: *mut Handle);

const READABLE: c_int = 1;
const WRITABLE: c_int = 2;
// uv_handle_type values, stable across libuv 1.x.
const UV_POLL: c_int = 8;
const UV_TIMER: c_int = 13;

/// The libuv functions the engine uses.
pub struct Uv {
    poll_init_socket: unsafe extern "C" fn(*mut c_void, *mut Handle, OsSocket) -> c_int,
    poll_start: unsafe extern "C" fn(*mut Handle, c_int, PollCb) -> c_int,
    poll_stop: unsafe extern "C" fn(*mut Handle) -> c_int,
    timer_init: unsafe extern "C" fn(*mut c_void, *mut Handle) -> c_int,
    timer_start: unsafe extern "C" fn(*mut Handle, TimerCb, u64, u64) -> c_int,
    timer_stop: unsafe extern "C" fn(*mut Handle) -> c_int,
    close: unsafe extern "C" fn(*mut Handle, Option<CloseCb>),
    ref_: unsafe extern "C" fn(*mut Handle),
    unref: unsafe extern "C" fn(*mut Handle),
    poll_size: usize,
    timer_size: usize,
}

#[cfg(unix)]
fn this() -> Option<libloading::os::unix::Library> {
    Some(libloading::os::unix::Library::this())
}

#[cfg(windows)]
fn this() -> Option<libloading::os::windows::Library> {
    libloading::os::windows::Library::this().ok()
}

/// The host's libuv, when every function is there.
pub fn load() -> Option<Uv> {
    let lib = this()?;
    macro_rules! sym {
        ($name:literal) => {
            // SAFETY: each symbol is libuv's function of that name, with the signature of
            // libuv 1.x's uv.h.
            unsafe { *lib.get(concat!($name, "\0").as_bytes()).ok()? }
        };
    }
    let handle_size: unsafe extern "C" fn(c_int) -> usize = sym!("uv_handle_size");
    let uv = Uv {
        poll_init_socket: sym!("uv_poll_init_socket"),
        poll_start: sym!("uv_poll_start"),
        poll_stop: sym!("uv_poll_stop"),
        timer_init: sym!("uv_timer_init"),
        timer_start: sym!("uv_timer_start"),
        timer_stop: sym!("uv_timer_stop"),
        close: sym!("uv_close"),
        ref_: sym!("uv_ref"),
        unref: sym!("uv_unref"),
        poll_size: unsafe { handle_size(UV_POLL) },
        timer_size: unsafe { handle_size(UV_TIMER) },
    };
    // Keep the process image referenced for as long as the symbols are used.
    std::mem::forget(lib);
    (uv.poll_size > 0 && uv.timer_size > 0).then_some(uv)
}

unsafe extern "C" fn on_poll(handle: *mut Handle, status: c_int, events: c_int) {
    contain_quiet("a socket callback", || unsafe {
        if status < 0 {
            ready(handle, false, false, Some(status));
        } else {
            ready(handle, events & READABLE != 0, events & WRITABLE != 0, None);
        }
    });
}

unsafe extern "C" fn on_timer(handle: *mut Handle) {
    contain_quiet("a timer callback", || unsafe { fired(handle) });
}

unsafe extern "C" fn on_poll_closed(handle: *mut Handle) {
    contain_quiet("a close callback", || {
        let size = match super::current() {
            Some(super::Driver::Libuv(uv)) => uv.poll_size,
            _ => return,
        };
        unsafe { free_handle(handle, size) };
    });
}

unsafe extern "C" fn on_timer_closed(handle: *mut Handle) {
    contain_quiet("a close callback", || {
        let size = match super::current() {
            Some(super::Driver::Libuv(uv)) => uv.timer_size,
            _ => return,
        };
        unsafe { free_handle(handle, size) };
    });
}

impl Uv {
    pub(super) fn poll_open(
        &self,
        uv_loop: NonNull<c_void>,
        fd: OsSocket,
        listener: Weak<dyn Listener>,
    ) -> Option<NonNull<c_void>> {
        let raw = alloc_handle(self.poll_size, listener);
        // SAFETY: `raw` is fresh memory of the size libuv asked for; the loop is this thread's.
        unsafe {
            if (self.poll_init_socket)(uv_loop.as_ptr(), raw.as_ptr(), fd) != 0 {
                free_handle(raw.as_ptr(), self.poll_size);
                return None;
            }
            (self.poll_start)(raw.as_ptr(), READABLE, on_poll);
            (self.unref)(raw.as_ptr());
        }
        Some(raw)
    }

    pub(super) fn poll_watch(&self, raw: NonNull<c_void>, writable: bool) {
        let events = if writable {
            READABLE | WRITABLE
        } else {
            READABLE
        };
        // SAFETY: `raw` is an open poll handle (the `PollHandle` owning it is alive).
        unsafe { (self.poll_start)(raw.as_ptr(), events, on_poll) };
    }

    pub(super) fn poll_close(&self, raw: NonNull<c_void>) {
        // SAFETY: as `poll_watch`; the handle is closed once, by its owner's drop.
        unsafe {
            (self.poll_stop)(raw.as_ptr());
            (self.close)(raw.as_ptr(), Some(on_poll_closed));
        }
    }

    pub(super) fn timer_open(
        &self,
        uv_loop: NonNull<c_void>,
        listener: Weak<dyn Listener>,
    ) -> Option<NonNull<c_void>> {
        let raw = alloc_handle(self.timer_size, listener);
        // SAFETY: as `poll_open`.
        unsafe {
            if (self.timer_init)(uv_loop.as_ptr(), raw.as_ptr()) != 0 {
                free_handle(raw.as_ptr(), self.timer_size);
                return None;
            }
        }
        Some(raw)
    }

    pub(super) fn timer_set(&self, raw: NonNull<c_void>, ms: Option<u64>) {
        // SAFETY: `raw` is an open timer handle (its `TimerHandle` is alive).
        unsafe {
            match ms {
                Some(ms) => (self.timer_start)(raw.as_ptr(), on_timer, ms, 0),
                None => (self.timer_stop)(raw.as_ptr()),
            };
        }
    }

    pub(super) fn timer_close(&self, raw: NonNull<c_void>) {
        // SAFETY: as `poll_close`.
        unsafe {
            (self.timer_stop)(raw.as_ptr());
            (self.close)(raw.as_ptr(), Some(on_timer_closed));
        }
    }

    pub(super) fn hold(&self, raw: NonNull<c_void>, on: bool) {
        // SAFETY: `raw` is an open handle of either kind.
        unsafe {
            if on {
                (self.ref_)(raw.as_ptr())
            } else {
                (self.unref)(raw.as_ptr())
            }
        }
    }
}
