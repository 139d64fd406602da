//! The few libuv calls the JS-thread connection needs, looked up in the host process (Node
//! exports libuv) rather than linked, so the addon loads the same way on every platform. When
//! a symbol is missing (Bun, Deno), or `FERRISESSION_NO_LIBUV` is set, the same calls are
//! answered by `driver`: one thread that watches the sockets and timers.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

pub type Handle = c_void;
pub type Loop = c_void;

#[cfg(unix)]
pub type OsSocket = c_int;
#[cfg(windows)]
pub type OsSocket = usize;

pub type PollCb = unsafe extern "C" fn(handle: *mut Handle, status: c_int, events: c_int);
pub type TimerCb = unsafe extern "C" fn(handle: *mut Handle);
pub type CloseCb = unsafe extern "C" fn(handle: *mut Handle);

pub const READABLE: c_int = 1;
pub const WRITABLE: c_int = 2;
// uv_handle_type values, stable across libuv 1.x.
const UV_POLL: c_int = 8;
const UV_TIMER: c_int = 13;

pub struct Uv {
    pub poll_init_socket: unsafe extern "C" fn(*mut Loop, *mut Handle, OsSocket) -> c_int,
    pub poll_start: unsafe extern "C" fn(*mut Handle, c_int, PollCb) -> c_int,
    pub poll_stop: unsafe extern "C" fn(*mut Handle) -> c_int,
    pub timer_init: unsafe extern "C" fn(*mut Loop, *mut Handle) -> c_int,
    pub timer_start: unsafe extern "C" fn(*mut Handle, TimerCb, u64, u64) -> c_int,
    pub timer_stop: unsafe extern "C" fn(*mut Handle) -> c_int,
    pub close: unsafe extern "C" fn(*mut Handle, Option<CloseCb>),
    pub ref_: unsafe extern "C" fn(*mut Handle),
    pub unref: unsafe extern "C" fn(*mut Handle),
    pub poll_size: usize,
    pub timer_size: usize,
    /// Answered by `driver`, not libuv.
    pub threaded: bool,
}

static UV: OnceLock<Option<Uv>> = OnceLock::new();

pub fn get() -> Option<&'static Uv> {
    UV.get_or_init(|| {
        let libuv = match std::env::var_os("FERRISESSION_NO_LIBUV") {
            Some(v) if !v.is_empty() && v != "0" => None,
            _ => unsafe { load() },
        };
        libuv.or_else(threaded)
    })
    .as_ref()
}

#[cfg(unix)]
fn threaded() -> Option<Uv> {
    Some(super::driver::table())
}

#[cfg(not(unix))]
fn threaded() -> Option<Uv> {
    None
}

/// The loop handles are made on: libuv's, or (`driver`) none, once its thread runs.
///
/// # Safety
/// `env` must be the JS thread's env.
pub unsafe fn event_loop(env: napi::sys::napi_env) -> Option<*mut Loop> {
    let uv = get()?;
    if uv.threaded {
        #[cfg(unix)]
        if unsafe { super::driver::install(env) } {
            return Some(std::ptr::NonNull::<Loop>::dangling().as_ptr());
        }
        return None;
    }
    let mut loop_ = std::ptr::null_mut();
    let ok =
        unsafe { napi::sys::napi_get_uv_event_loop(env, &mut loop_) } == napi::sys::Status::napi_ok;
    (ok && !loop_.is_null()).then_some(loop_ as *mut Loop)
}

/// Which of the two wakes the engine: `"libuv"` or `"thread"`, once one was looked for.
pub fn kind() -> Option<&'static str> {
    UV.get()?
        .as_ref()
        .map(|u| if u.threaded { "thread" } else { "libuv" })
}

#[cfg(unix)]
fn this() -> Option<libloading::os::unix::Library> {
    Some(libloading::os::unix::Library::this())
}

#[cfg(windows)]
fn this() -> Option<libloading::os::windows::Library> {
    libloading::os::windows::Library::this().ok()
}

unsafe fn load() -> Option<Uv> {
    let lib = this()?;
    macro_rules! sym {
        ($name:literal) => {
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
        threaded: false,
    };
    // Keep the process image referenced for as long as the symbols are used.
    std::mem::forget(lib);
    (uv.poll_size > 0 && uv.timer_size > 0).then_some(uv)
}

/// Memory for one libuv handle, sized at run time and aligned for any field. The first field
/// of every handle is `void* data`, which points back at the owner.
pub fn alloc_handle(size: usize) -> *mut Handle {
    let words = size.div_ceil(8).max(1);
    let block: Box<[u64]> = vec![0u64; words].into_boxed_slice();
    Box::into_raw(block) as *mut u64 as *mut Handle
}

/// Frees memory from `alloc_handle`, once libuv's close callback has run.
///
/// # Safety
/// `handle` must come from `alloc_handle(size)` and be closed.
pub unsafe fn free_handle(handle: *mut Handle, size: usize) {
    let words = size.div_ceil(8).max(1);
    drop(unsafe {
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            handle as *mut u64,
            words,
        ))
    });
}

/// # Safety
/// `handle` must be a live handle from `alloc_handle`.
pub unsafe fn set_data(handle: *mut Handle, data: *mut c_void) {
    unsafe { *(handle as *mut *mut c_void) = data };
}

/// # Safety
/// `handle` must be a live handle from `alloc_handle`.
pub unsafe fn data(handle: *mut Handle) -> *mut c_void {
    unsafe { *(handle as *mut *mut c_void) }
}
