//! What wakes the engine on hosts whose runtime exports no libuv (Bun, Deno): one thread
//! waits on the engine's sockets and timers with poll(2), and their callbacks run on the JS
//! thread, reached through a threadsafe function. It offers the same few calls as libuv
//! (`uv::Uv`), so the engine above it is the same code on every host.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use napi::sys;

use super::uv::{CloseCb, Handle, Loop, OsSocket, PollCb, TimerCb, Uv, READABLE, WRITABLE};

struct Poll {
    fd: c_int,
    events: c_int,
    cb: Option<PollCb>,
    /// False while a readiness report is on its way to the JS thread: the socket is not
    /// watched again until its callback has run.
    armed: bool,
    refd: bool,
}

struct Timer {
    due: Option<Instant>,
    cb: Option<TimerCb>,
    /// Bumped by every start and stop, so a firing that crossed a restart is dropped.
    generation: u64,
    /// Fired, its callback not yet run: still keeps the process alive.
    firing: bool,
    refd: bool,
}

enum Event {
    Poll(usize, c_int),
    Timer(usize, u64),
    Close(usize, Option<CloseCb>),
}

#[derive(Default)]
struct Registry {
    polls: HashMap<usize, Poll>,
    timers: HashMap<usize, Timer>,
    closing: Vec<(usize, Option<CloseCb>)>,
    /// Whether the threadsafe function is ref'd (some handle keeps the process alive).
    held: bool,
    /// The runtime is tearing the env down: the threadsafe function is about to be freed.
    gone: bool,
}

struct Driver {
    registry: Mutex<Registry>,
    wake: UnixStream,
    tsfn: usize,
    env: usize,
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

/// The calls the engine makes, answered by this driver.
pub fn table() -> Uv {
    Uv {
        poll_init_socket,
        poll_start,
        poll_stop,
        timer_init,
        timer_start,
        timer_stop,
        close,
        ref_,
        unref,
        poll_size: 16,
        timer_size: 16,
        threaded: true,
    }
}

/// Starts the thread and the threadsafe function that brings its reports to `env`'s JS
/// thread, once per process. False when the host cannot make either.
///
/// # Safety
/// `env` must be the JS thread's env.
pub unsafe fn install(env: sys::napi_env) -> bool {
    DRIVER
        .get_or_init(|| unsafe { start(env) })
        .as_ref()
        .is_some_and(|d| d.env == env as usize)
}

unsafe fn start(env: sys::napi_env) -> Option<Driver> {
    let (wake, watch) = UnixStream::pair().ok()?;
    wake.set_nonblocking(true).ok()?;
    watch.set_nonblocking(true).ok()?;
    let mut name = std::ptr::null_mut();
    let mut tsfn = std::ptr::null_mut();
    unsafe {
        let label = "ferrisession";
        sys::napi_create_string_utf8(env, label.as_ptr().cast(), label.len() as isize, &mut name);
        if sys::napi_create_threadsafe_function(
            env,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            name,
            0,
            1,
            std::ptr::null_mut(),
            None,
            std::ptr::null_mut(),
            Some(dispatch),
            &mut tsfn,
        ) != sys::Status::napi_ok
        {
            return None;
        }
        sys::napi_unref_threadsafe_function(env, tsfn);
        // Added after the threadsafe function, so it runs before the runtime frees it.
        sys::napi_add_env_cleanup_hook(env, Some(teardown), std::ptr::null_mut());
    }
    let tsfn_addr = tsfn as usize;
    std::thread::Builder::new()
        .name("ferrisession-io".into())
        .spawn(move || watch_loop(watch, tsfn_addr))
        .ok()?;
    Some(Driver {
        registry: Mutex::new(Registry::default()),
        wake,
        tsfn: tsfn_addr,
        env: env as usize,
    })
}

unsafe extern "C" fn teardown(_: *mut c_void) {
    registry().gone = true;
}

fn wake() {
    let _ = (&driver().wake).write(&[1]);
}

/// The thread: waits for sockets to become ready and timers to fall due, and sends what
/// happened to the JS thread.
fn watch_loop(mut watch: UnixStream, tsfn: usize) {
    let mut drain = [0u8; 64];
    loop {
        while matches!(watch.read(&mut drain), Ok(n) if n > 0) {}
        let mut events = Vec::new();
        let mut fds = vec![libc::pollfd {
            fd: watch.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let mut handles = vec![0usize];
        let timeout = {
            let Some(d) = DRIVER.get().and_then(Option::as_ref) else {
                return;
            };
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
            events.extend(r.closing.drain(..).map(|(h, cb)| Event::Close(h, cb)));
            for (&h, p) in r.polls.iter() {
                if p.armed && p.cb.is_some() && p.events != 0 {
                    let mut want = 0;
                    if p.events & READABLE != 0 {
                        want |= libc::POLLIN;
                    }
                    if p.events & WRITABLE != 0 {
                        want |= libc::POLLOUT;
                    }
                    fds.push(libc::pollfd {
                        fd: p.fd,
                        events: want,
                        revents: 0,
                    });
                    handles.push(h);
                }
            }
            match (events.is_empty(), next) {
                (false, _) => 0,
                (true, Some(at)) => at
                    .saturating_duration_since(now)
                    .as_millis()
                    .saturating_add(1)
                    .min(i32::MAX as u128) as c_int,
                (true, None) => -1,
            }
        };
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n > 0 {
            let mut r = registry();
            for (fd, &h) in fds.iter().zip(&handles).skip(1) {
                if fd.revents == 0 {
                    continue;
                }
                let Some(p) = r.polls.get_mut(&h) else {
                    continue;
                };
                let mut ready = 0;
                let failed = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
                if fd.revents & (libc::POLLIN | failed) != 0 {
                    ready |= READABLE;
                }
                if fd.revents & (libc::POLLOUT | failed) != 0 {
                    ready |= WRITABLE;
                }
                p.armed = false;
                events.push(Event::Poll(h, ready));
            }
        }
        if !events.is_empty() {
            // Held across the call, so the env cannot be torn down in the middle of it.
            let r = registry();
            if r.gone {
                return;
            }
            let data = Box::into_raw(Box::new(events)) as *mut c_void;
            let status = unsafe {
                sys::napi_call_threadsafe_function(
                    tsfn as sys::napi_threadsafe_function,
                    data,
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                )
            };
            drop(r);
            if status != sys::Status::napi_ok {
                drop(unsafe { Box::from_raw(data as *mut Vec<Event>) });
                // The runtime is shutting down.
                return;
            }
        } else if timeout == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// On the JS thread: runs the callbacks of what the thread saw, then watches the sockets
/// again.
unsafe extern "C" fn dispatch(
    env: sys::napi_env,
    _js_cb: sys::napi_value,
    _context: *mut c_void,
    data: *mut c_void,
) {
    if data.is_null() {
        return;
    }
    let events = unsafe { Box::from_raw(data as *mut Vec<Event>) };
    if env.is_null() {
        return;
    }
    for event in *events {
        match event {
            Event::Poll(h, ready) => {
                let call = registry()
                    .polls
                    .get(&h)
                    .and_then(|p| Some((p.cb?, p.events & ready)));
                if let Some((cb, ready)) = call {
                    if ready != 0 {
                        unsafe { cb(h as *mut Handle, 0, ready) };
                    }
                }
                if let Some(p) = registry().polls.get_mut(&h) {
                    p.armed = true;
                }
                wake();
            }
            Event::Timer(h, generation) => {
                let cb = {
                    let mut r = registry();
                    match r.timers.get_mut(&h) {
                        Some(t) if t.generation == generation => {
                            t.firing = false;
                            t.cb
                        }
                        _ => None,
                    }
                };
                if let Some(cb) = cb {
                    unsafe { cb(h as *mut Handle) };
                }
            }
            Event::Close(h, cb) => {
                if let Some(cb) = cb {
                    unsafe { cb(h as *mut Handle) };
                }
            }
        }
    }
    hold();
}

/// Refs the threadsafe function while a started, ref'd handle needs the process alive, and
/// unrefs it otherwise (libuv's rule for its loop). JS thread only.
fn hold() {
    let d = driver();
    let mut r = registry();
    let needed = r
        .polls
        .values()
        .any(|p| p.refd && p.events != 0 && p.cb.is_some())
        || r.timers
            .values()
            .any(|t| t.refd && (t.due.is_some() || t.firing));
    if needed == r.held || r.gone {
        return;
    }
    r.held = needed;
    drop(r);
    let env = d.env as sys::napi_env;
    let tsfn = d.tsfn as sys::napi_threadsafe_function;
    unsafe {
        if needed {
            sys::napi_ref_threadsafe_function(env, tsfn);
        } else {
            sys::napi_unref_threadsafe_function(env, tsfn);
        }
    }
}

unsafe extern "C" fn poll_init_socket(_: *mut Loop, handle: *mut Handle, fd: OsSocket) -> c_int {
    registry().polls.insert(
        handle as usize,
        Poll {
            fd,
            events: 0,
            cb: None,
            armed: true,
            refd: true,
        },
    );
    0
}

unsafe extern "C" fn poll_start(handle: *mut Handle, events: c_int, cb: PollCb) -> c_int {
    if let Some(p) = registry().polls.get_mut(&(handle as usize)) {
        p.events = events;
        p.cb = Some(cb);
    }
    hold();
    wake();
    0
}

unsafe extern "C" fn poll_stop(handle: *mut Handle) -> c_int {
    if let Some(p) = registry().polls.get_mut(&(handle as usize)) {
        p.events = 0;
    }
    hold();
    wake();
    0
}

unsafe extern "C" fn timer_init(_: *mut Loop, handle: *mut Handle) -> c_int {
    registry().timers.insert(
        handle as usize,
        Timer {
            due: None,
            cb: None,
            generation: 0,
            firing: false,
            refd: true,
        },
    );
    0
}

unsafe extern "C" fn timer_start(handle: *mut Handle, cb: TimerCb, ms: u64, _repeat: u64) -> c_int {
    if let Some(t) = registry().timers.get_mut(&(handle as usize)) {
        t.due = Some(Instant::now() + Duration::from_millis(ms));
        t.cb = Some(cb);
        t.generation += 1;
        t.firing = false;
    }
    hold();
    wake();
    0
}

unsafe extern "C" fn timer_stop(handle: *mut Handle) -> c_int {
    if let Some(t) = registry().timers.get_mut(&(handle as usize)) {
        t.due = None;
        t.generation += 1;
        t.firing = false;
    }
    hold();
    0
}

unsafe extern "C" fn close(handle: *mut Handle, cb: Option<CloseCb>) {
    {
        let mut r = registry();
        let h = handle as usize;
        r.polls.remove(&h);
        r.timers.remove(&h);
        r.closing.push((h, cb));
    }
    hold();
    wake();
}

unsafe extern "C" fn ref_(handle: *mut Handle) {
    set_ref(handle, true);
}

unsafe extern "C" fn unref(handle: *mut Handle) {
    set_ref(handle, false);
}

fn set_ref(handle: *mut Handle, on: bool) {
    {
        let mut r = registry();
        let h = handle as usize;
        if let Some(p) = r.polls.get_mut(&h) {
            p.refd = on;
        }
        if let Some(t) = r.timers.get_mut(&h) {
            t.refd = on;
        }
    }
    hold();
}
