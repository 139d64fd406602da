//! The engine's JS boundary: the only engine code that calls Node-API. Everything else hands
//! it plain Rust values (an `Outbox` of replies) and it makes the JS values.
//!
//! - A JS value can only be made through a `Scope`, the proof that a handle scope is open: a
//!   delivery opens one (`Scope::open`), and the binding layer, already inside a JS call,
//!   takes one as given (`Scope::inside_call`).
//! - `Boundary::deliver` takes its `Outbox` by value and borrows no engine state: the engine
//!   calls it only once its own borrows are dropped, so JS that re-enters the store from the
//!   delivery finds it free.
//! - The thread driver's threadsafe function (`Waker`) lives here too; its callback runs
//!   through `event_loop::contain_quiet`.

use std::any::Any;
use std::cell::Cell;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use napi::sys;

use super::event_loop::{self, EventLoop, Host};
use super::outbox::{Item, Outbox};
use crate::error::ErrorKind;

/// An open handle scope on the JS thread; values made through it live until it closes.
pub struct Scope {
    env: sys::napi_env,
    /// The scope this guard opened (closed on drop); `None` when it was already open. Some
    /// hosts (Deno) give a null scope that must still be closed.
    opened: Option<sys::napi_handle_scope>,
    _not_send: PhantomData<*mut ()>,
}

impl Scope {
    /// Opens a handle scope, for code the event loop called (no scope is open there).
    ///
    /// # Safety
    /// `env` is the env of the JS thread this runs on.
    unsafe fn open(env: sys::napi_env) -> Option<Scope> {
        let mut raw = ptr::null_mut();
        let ok = unsafe { sys::napi_open_handle_scope(env, &mut raw) } == sys::Status::napi_ok;
        ok.then_some(Scope {
            env,
            opened: Some(raw),
            _not_send: PhantomData,
        })
    }

    /// The scope of the JS call this runs in.
    ///
    /// # Safety
    /// Called from a Node-API callback of `env` (a method JS called), whose scope is open.
    pub unsafe fn inside_call(env: sys::napi_env) -> Scope {
        Scope {
            env,
            opened: None,
            _not_send: PhantomData,
        }
    }

    pub fn null(&self) -> sys::napi_value {
        let mut v = ptr::null_mut();
        unsafe { sys::napi_get_null(self.env, &mut v) };
        v
    }

    pub fn string(&self, s: &str) -> sys::napi_value {
        let mut v = ptr::null_mut();
        unsafe {
            sys::napi_create_string_utf8(self.env, s.as_ptr().cast(), s.len() as isize, &mut v)
        };
        v
    }

    /// `string` for a text known to be ASCII: copied as Latin-1, which V8 takes as it is,
    /// where UTF-8 would be decoded again (a delivery's text is some 20 KB at 64 reads).
    fn ascii_string(&self, s: &str) -> sys::napi_value {
        debug_assert!(s.is_ascii());
        let mut v = ptr::null_mut();
        unsafe {
            sys::napi_create_string_latin1(self.env, s.as_ptr().cast(), s.len() as isize, &mut v)
        };
        v
    }

    /// An `Error` whose `code` is the kind's.
    pub fn error(&self, kind: ErrorKind, message: &str) -> sys::napi_value {
        let code = self.string(kind.code());
        let msg = self.string(message);
        let mut err = ptr::null_mut();
        unsafe { sys::napi_create_error(self.env, code, msg, &mut err) };
        err
    }

    pub fn array(&self, items: &[sys::napi_value]) -> sys::napi_value {
        let mut array = ptr::null_mut();
        unsafe {
            sys::napi_create_array_with_length(self.env, items.len(), &mut array);
            for (i, item) in items.iter().enumerate() {
                sys::napi_set_element(self.env, array, i as u32, *item);
            }
        }
        array
    }

    /// A `Float64Array` holding `values` (a copy); `undefined`'s stand-in, null, if the
    /// engine cannot allocate it.
    fn float64_array(&self, values: &[f64]) -> sys::napi_value {
        let mut data: *mut c_void = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        let mut array = ptr::null_mut();
        let bytes = std::mem::size_of_val(values);
        unsafe {
            if sys::napi_create_arraybuffer(self.env, bytes, &mut data, &mut buffer)
                != sys::Status::napi_ok
                || (data.is_null() && bytes > 0)
            {
                return self.null();
            }
            if bytes > 0 {
                // SAFETY: `data` is the new buffer's `bytes` bytes, owned by nothing else yet.
                ptr::copy_nonoverlapping(values.as_ptr().cast::<u8>(), data.cast::<u8>(), bytes);
            }
            sys::napi_create_typedarray(
                self.env,
                sys::TypedarrayType::float64_array,
                values.len(),
                buffer,
                0,
                &mut array,
            );
        }
        array
    }

    /// The delivery format JS reads: `[numbers, text, extras]`. `numbers` is a
    /// `Float64Array` of four slots per reply, `id, kind, a, b`: kind 0 is `null`, 1 the
    /// number `a`, 2 the text `text.slice(a, b)` (UTF-16 offsets into the one string of the
    /// delivery's texts), 3 the value `extras[a]` (an error or a list).
    /// Replies cost no Node-API call each, only those that need an object.
    pub fn replies(&self, out: Outbox) -> sys::napi_value {
        const NIL: f64 = 0.0;
        const NUMBER: f64 = 1.0;
        const TEXT: f64 = 2.0;
        const EXTRA: f64 = 3.0;
        let Outbox { text, items } = out;
        let mut numbers = Vec::with_capacity(items.len() * 4);
        let mut extras = Vec::new();
        let mut offsets = Utf16Offsets::new(&text);
        for (id, item) in items {
            let (kind, a, b) = match item {
                Item::Nil => (NIL, 0.0, 0.0),
                Item::Int(n) => (NUMBER, n as f64, 0.0),
                Item::Text(r) => (TEXT, offsets.at(r.start), offsets.at(r.end)),
                Item::Error(kind, r) => {
                    extras.push(self.error(kind, &text[r]));
                    (EXTRA, (extras.len() - 1) as f64, 0.0)
                }
                Item::List(list) => {
                    let elements: Vec<_> = list
                        .into_iter()
                        .map(|r| r.map_or_else(|| self.null(), |r| self.string(&text[r])))
                        .collect();
                    extras.push(self.array(&elements));
                    (EXTRA, (extras.len() - 1) as f64, 0.0)
                }
            };
            numbers.extend_from_slice(&[id as f64, kind, a, b]);
        }
        let extras = if extras.is_empty() {
            self.null()
        } else {
            self.array(&extras)
        };
        let text = if offsets.ascii {
            self.ascii_string(&text)
        } else {
            self.string(&text)
        };
        self.array(&[self.float64_array(&numbers), text, extras])
    }
}

/// Byte offsets into a UTF-8 text, as the UTF-16 offsets a JS string of it has. Offsets are
/// asked in increasing order (the outbox keeps its texts in order), so one pass serves all.
struct Utf16Offsets<'a> {
    text: &'a str,
    ascii: bool,
    byte: usize,
    unit: usize,
}

impl<'a> Utf16Offsets<'a> {
    fn new(text: &'a str) -> Self {
        Utf16Offsets {
            text,
            ascii: text.is_ascii(),
            byte: 0,
            unit: 0,
        }
    }

    fn at(&mut self, byte: usize) -> f64 {
        if self.ascii {
            return byte as f64;
        }
        if byte < self.byte {
            self.byte = 0;
            self.unit = 0;
        }
        self.unit += self.text[self.byte..byte].encode_utf16().count();
        self.byte = byte;
        self.unit as f64
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(raw) = self.opened {
            unsafe { sys::napi_close_handle_scope(self.env, raw) };
        }
    }
}

/// Which runtime this is: Bun and Deno define globals of their names; Node has
/// `process.versions.node` and neither.
///
/// # Safety
/// `env` is the env of the JS thread this runs on.
unsafe fn host(env: sys::napi_env) -> Host {
    let Some(_scope) = (unsafe { Scope::open(env) }) else {
        return Host::Unknown;
    };
    let defined = |name: &std::ffi::CStr| unsafe {
        let mut global = ptr::null_mut();
        let mut has = false;
        sys::napi_get_global(env, &mut global) == sys::Status::napi_ok
            && sys::napi_has_named_property(env, global, name.as_ptr(), &mut has)
                == sys::Status::napi_ok
            && has
    };
    if defined(c"Bun") {
        Host::Bun
    } else if defined(c"Deno") {
        Host::Deno
    } else if defined(c"process") {
        Host::Node
    } else {
        Host::Unknown
    }
}

/// Where one store's replies go: its JS delivery function, called as a top-level callback so
/// promise reactions run when it returns. Shared by every connection of the store.
pub struct Boundary {
    env: sys::napi_env,
    callback: Cell<sys::napi_ref>,
    async_context: Cell<sys::napi_async_context>,
    /// False once JS may no longer be called (after `close`, or in a finalizer).
    live: Cell<bool>,
}

impl Boundary {
    /// # Safety
    /// Called in a JS call on `env`'s thread; `callback` is a live JS function.
    pub unsafe fn new(env: sys::napi_env, callback: sys::napi_value) -> Option<Boundary> {
        unsafe {
            let mut reference = ptr::null_mut();
            if sys::napi_create_reference(env, callback, 1, &mut reference) != sys::Status::napi_ok
            {
                return None;
            }
            let scope = Scope::inside_call(env);
            let name = scope.string("ferrisession");
            let mut async_context = ptr::null_mut();
            sys::napi_async_init(env, ptr::null_mut(), name, &mut async_context);
            Some(Boundary {
                env,
                callback: Cell::new(reference),
                async_context: Cell::new(async_context),
                live: Cell::new(true),
            })
        }
    }

    /// The event loop this JS thread's handles are made on, the driver chosen by the host.
    /// `None` where no driver can run (a second JS thread under the thread driver, or a
    /// thread driver that could not start).
    pub fn event_loop(&self) -> Option<EventLoop> {
        let env = self.env;
        let driver = event_loop::choose(unsafe { host(env) });
        let uv_loop = match driver {
            event_loop::Driver::Libuv(_) => {
                let mut raw = ptr::null_mut();
                let ok =
                    unsafe { sys::napi_get_uv_event_loop(env, &mut raw) } == sys::Status::napi_ok;
                if !ok {
                    return None;
                }
                NonNull::new(raw.cast::<c_void>())?
            }
            event_loop::Driver::Thread => {
                if !event_loop::thread::install(env as usize, || unsafe { Waker::create(env) }) {
                    return None;
                }
                NonNull::dangling()
            }
        };
        // SAFETY: for libuv, the loop Node gave for this env.
        Some(unsafe { EventLoop::new(driver, uv_loop) })
    }

    pub fn live(&self) -> bool {
        self.live.get()
    }

    /// Hands `out` to JS. Must be called with no engine state borrowed: JS may call back in.
    pub fn deliver(&self, out: Outbox) {
        if out.is_empty() || !self.live.get() {
            return;
        }
        let env = self.env;
        let Some(scope) = (unsafe { Scope::open(env) }) else {
            return;
        };
        let payload = scope.replies(out);
        unsafe {
            let mut func = ptr::null_mut();
            if sys::napi_get_reference_value(env, self.callback.get(), &mut func)
                != sys::Status::napi_ok
                || func.is_null()
            {
                return;
            }
            // napi_make_callback needs an object as `this`.
            let mut recv = ptr::null_mut();
            sys::napi_get_global(env, &mut recv);
            let mut result = ptr::null_mut();
            let argv = [payload];
            let status = sys::napi_make_callback(
                env,
                self.async_context.get(),
                recv,
                func,
                1,
                argv.as_ptr(),
                &mut result,
            );
            if status == sys::Status::napi_pending_exception {
                // What JS threw from the delivery becomes the app's uncaught exception.
                let mut exception = ptr::null_mut();
                sys::napi_get_and_clear_last_exception(env, &mut exception);
                sys::napi_fatal_exception(env, exception);
            }
        }
        drop(scope);
    }

    /// Stops delivering for good; `in_js` when called from JS (not a finalizer), where the
    /// async context can be destroyed too.
    pub fn shut(&self, in_js: bool) {
        if in_js && self.live.get() {
            unsafe { sys::napi_async_destroy(self.env, self.async_context.get()) };
        }
        self.live.set(false);
        let reference = self.callback.replace(ptr::null_mut());
        if !reference.is_null() {
            unsafe { sys::napi_delete_reference(self.env, reference) };
        }
    }
}

impl Drop for Boundary {
    fn drop(&mut self) {
        self.shut(false);
    }
}

/// The thread driver's way onto the JS thread: a threadsafe function whose callback runs
/// `event_loop::thread::dispatch`, and an env cleanup hook that stops it before the runtime
/// frees the function.
pub struct Waker {
    tsfn: usize,
    env: usize,
}

/// The part of a `Waker` other threads use.
pub struct WakeSender {
    tsfn: usize,
}

unsafe extern "C" fn on_wake(
    env: sys::napi_env,
    _js_cb: sys::napi_value,
    _context: *mut c_void,
    data: *mut c_void,
) {
    if data.is_null() {
        return;
    }
    let events = unsafe { Box::from_raw(data as *mut Box<dyn Any + Send>) };
    if env.is_null() {
        return;
    }
    event_loop::contain_quiet("the I/O thread's delivery", || {
        event_loop::thread::dispatch(*events)
    });
}

unsafe extern "C" fn on_teardown(_: *mut c_void) {
    event_loop::contain_quiet("the env teardown", event_loop::thread::teardown);
}

impl Waker {
    /// # Safety
    /// `env` is the env of the JS thread this runs on.
    unsafe fn create(env: sys::napi_env) -> Option<Waker> {
        let mut tsfn = ptr::null_mut();
        unsafe {
            let scope = Scope::open(env)?;
            let name = scope.string("ferrisession");
            if sys::napi_create_threadsafe_function(
                env,
                ptr::null_mut(),
                ptr::null_mut(),
                name,
                0,
                1,
                ptr::null_mut(),
                None,
                ptr::null_mut(),
                Some(on_wake),
                &mut tsfn,
            ) != sys::Status::napi_ok
            {
                return None;
            }
            // Added after the threadsafe function, so it runs before the runtime frees it.
            sys::napi_add_env_cleanup_hook(env, Some(on_teardown), ptr::null_mut());
        }
        Some(Waker {
            tsfn: tsfn as usize,
            env: env as usize,
        })
    }

    pub fn env(&self) -> usize {
        self.env
    }

    pub fn sender(&self) -> WakeSender {
        WakeSender { tsfn: self.tsfn }
    }

    /// Whether the threadsafe function keeps the process alive. JS thread only.
    pub fn hold(&self, on: bool) {
        let env = self.env as sys::napi_env;
        let tsfn = self.tsfn as sys::napi_threadsafe_function;
        unsafe {
            if on {
                sys::napi_ref_threadsafe_function(env, tsfn);
            } else {
                sys::napi_unref_threadsafe_function(env, tsfn);
            }
        }
    }
}

impl WakeSender {
    /// Queues `data` for the JS thread; false when the runtime no longer takes calls.
    pub fn send(&self, data: Box<dyn Any + Send>) -> bool {
        let data = Box::into_raw(Box::new(data)) as *mut c_void;
        let status = unsafe {
            sys::napi_call_threadsafe_function(
                self.tsfn as sys::napi_threadsafe_function,
                data,
                sys::ThreadsafeFunctionCallMode::nonblocking,
            )
        };
        if status != sys::Status::napi_ok {
            drop(unsafe { Box::from_raw(data as *mut Box<dyn Any + Send>) });
            return false;
        }
        true
    }
}
