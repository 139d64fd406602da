//! The hot path for a plain-TCP standalone server: one connection owned by the JS thread,
//! polled by Node's own libuv loop. Simple calls (get, set, touch, destroy, exists, small mget)
//! are encoded straight into its write buffer and written in the same native call; replies are
//! decoded from its read buffer into JS values and handed to JS in one call per read.
//!
//! Why: with the I/O-thread path every call crossed threads twice (JS to tokio, tokio to JS).
//! Measured on a 2-core machine, those hand-offs cost more CPU per operation than the Redis
//! work itself, and end to end under Express the extra thread competed with Node for the two
//! cores. Connection setup (address resolution, connect, AUTH, SELECT) still happens off the
//! JS thread; TLS, Cluster, Sentinel, unix sockets and the bulk operations keep the redis-rs
//! path.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use napi::sys;
use redis::ConnectionAddr;

use crate::backend::Command;
use crate::config::{ConnectionSpec, Topology};
use crate::error::ErrorKind;
use crate::resp::{self, Frame};
use crate::uv;

const READ_CHUNK: usize = 64 * 1024;
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Where and how to connect; only plain TCP qualifies for the direct path.
#[derive(Clone, Debug)]
pub struct Target {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    connect_timeout: Duration,
}

impl Target {
    pub fn from_spec(spec: &ConnectionSpec) -> Option<Target> {
        let Topology::Standalone(endpoint) = &spec.topology else {
            return None;
        };
        if endpoint.tls.is_some() {
            return None;
        }
        let ConnectionAddr::Tcp(host, port) = endpoint.info.addr() else {
            return None;
        };
        let r = endpoint.info.redis_settings();
        Some(Target {
            host: host.clone(),
            port: *port,
            username: r.username().map(str::to_string),
            password: r.password().map(str::to_string),
            db: r.db(),
            connect_timeout: spec.connect_timeout,
        })
    }

    /// Blocking connect and handshake; runs off the JS thread.
    fn open(&self) -> Result<TcpStream, String> {
        let addrs = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?;
        let mut last = format!("no address for {}", self.host);
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(mut stream) => {
                    let io = |e: std::io::Error| format!("handshake with {addr}: {e}");
                    stream.set_nodelay(true).map_err(io)?;
                    stream
                        .set_read_timeout(Some(self.connect_timeout))
                        .map_err(io)?;
                    stream
                        .set_write_timeout(Some(self.connect_timeout))
                        .map_err(io)?;
                    if let Some(password) = &self.password {
                        let reply = match &self.username {
                            Some(user) => resp::roundtrip(
                                &mut stream,
                                &[b"AUTH", user.as_bytes(), password.as_bytes()],
                            ),
                            None => resp::roundtrip(&mut stream, &[b"AUTH", password.as_bytes()]),
                        };
                        reply
                            .map_err(io)?
                            .map_err(|e| format!("AUTH failed: {e}"))?;
                    }
                    if self.db != 0 {
                        resp::roundtrip(
                            &mut stream,
                            &[b"SELECT", resp::int_arg(self.db).as_bytes()],
                        )
                        .map_err(io)?
                        .map_err(|e| format!("SELECT failed: {e}"))?;
                    }
                    stream.set_nonblocking(true).map_err(io)?;
                    return Ok(stream);
                }
                Err(e) => last = format!("cannot connect to {addr}: {e}"),
            }
        }
        Err(last)
    }
}

/// What the connector thread reports back to the JS thread.
pub struct Opened {
    generation: u64,
    result: Result<TcpStream, String>,
}

/// Hands a finished connection attempt to the JS thread.
pub type Report = std::sync::Arc<dyn Fn(Opened) + Send + Sync>;

/// Hears, on the JS thread, that the connection was established (`None`) or dropped.
pub type LinkHook = Box<dyn Fn(Option<&str>)>;

struct Conn {
    stream: TcpStream,
    poll: *mut uv::Handle,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    /// Where reads land before they join `inbuf`; allocated once, so no read clears 64 KiB.
    scratch: Box<[u8]>,
    /// Call ids in the order their replies will arrive, with their deadlines.
    pending: VecDeque<(u32, Instant)>,
    want_write: bool,
}

struct State {
    env: sys::napi_env,
    callback: sys::napi_ref,
    async_context: sys::napi_async_context,
    target: Target,
    command_timeout: Duration,
    max_pending: usize,
    conn: Option<Conn>,
    timer: *mut uv::Handle,
    timer_armed: bool,
    connecting: bool,
    generation: u64,
    retry_at: Instant,
    backoff: Duration,
    closing: bool,
    closed: bool,
    /// False once JS may no longer be called (after close, or inside a finalizer).
    callback_live: bool,
    report: Option<Report>,
    /// Told when the connection comes up or drops, so the store's events follow at once.
    on_link: Option<LinkHook>,
    /// Sockets of torn-down connections, closed once libuv has let go of their poll handle.
    graveyard: VecDeque<TcpStream>,
}

/// The JS-thread connection. Every method must be called on the JS thread.
pub struct Direct {
    state: Rc<RefCell<State>>,
}

type Shared = RefCell<State>;

fn uvs() -> &'static uv::Uv {
    uv::get().expect("direct connections exist only when libuv was found")
}

impl Direct {
    /// `None` when the spec does not qualify or libuv is not reachable.
    ///
    /// # Safety
    /// `env` and `callback` must be the JS thread's env and a live JS function.
    pub unsafe fn new(
        env: sys::napi_env,
        callback: sys::napi_value,
        spec: &ConnectionSpec,
    ) -> Option<Direct> {
        let target = Target::from_spec(spec)?;
        let uv = uv::get()?;
        unsafe {
            let mut loop_ = std::ptr::null_mut();
            if sys::napi_get_uv_event_loop(env, &mut loop_) != sys::Status::napi_ok
                || loop_.is_null()
            {
                return None;
            }
            let mut callback_ref = std::ptr::null_mut();
            if sys::napi_create_reference(env, callback, 1, &mut callback_ref)
                != sys::Status::napi_ok
            {
                return None;
            }
            let mut name = std::ptr::null_mut();
            sys::napi_create_string_utf8(env, c"ferrisession".as_ptr(), 12, &mut name);
            let mut async_context = std::ptr::null_mut();
            sys::napi_async_init(env, std::ptr::null_mut(), name, &mut async_context);

            let timer = uv::alloc_handle(uv.timer_size);
            (uv.timer_init)(loop_ as *mut c_void, timer);
            (uv.unref)(timer);

            let state = Rc::new(RefCell::new(State {
                env,
                callback: callback_ref,
                async_context,
                target,
                command_timeout: spec.command_timeout,
                max_pending: spec.max_pending,
                conn: None,
                timer,
                timer_armed: false,
                connecting: false,
                generation: 0,
                retry_at: Instant::now(),
                backoff: RETRY_MIN,
                closing: false,
                closed: false,
                callback_live: true,
                report: None,
                on_link: None,
                graveyard: VecDeque::new(),
            }));
            uv::set_data(timer, Rc::into_raw(state.clone()) as *mut c_void);
            Some(Direct { state })
        }
    }

    /// Starts the first connection attempt; `report` carries its outcome back, and `on_link`
    /// hears when the connection comes up or drops.
    pub fn start(&self, report: Report, on_link: LinkHook) {
        {
            let mut s = self.state.borrow_mut();
            s.report = Some(report);
            s.on_link = Some(on_link);
        }
        connect(&self.state);
    }

    /// Whether calls can go through this connection right now. When it cannot, a new
    /// connection attempt starts if the backoff allows.
    pub fn ready(&self) -> bool {
        let s = self.state.borrow();
        if s.closed || s.closing {
            return false;
        }
        if s.conn.is_some() {
            return true;
        }
        let retry = !s.connecting && Instant::now() >= s.retry_at;
        drop(s);
        if retry {
            connect(&self.state);
        }
        false
    }

    /// Queues one command; `Err` gives it back when the connection cannot take it.
    pub fn push(&self, id: u32, command: &Command) -> Result<(), crate::error::StoreError> {
        let mut s = self.state.borrow_mut();
        let max = s.max_pending;
        let deadline = Instant::now() + s.command_timeout;
        let Some(conn) = s.conn.as_mut() else {
            return Err(crate::error::StoreError::new(
                ErrorKind::NotConnected,
                "not connected",
            ));
        };
        if conn.pending.len() >= max {
            return Err(crate::error::StoreError::new(
                ErrorKind::Overloaded,
                format!("more than {max} calls are waiting on Redis"),
            ));
        }
        resp::encode_command(&mut conn.out, command);
        conn.pending.push_back((id, deadline));
        Ok(())
    }

    /// Writes what `push` queued. Replies arrive through the JS callback.
    pub fn flush(&self) {
        let failure = {
            let mut s = self.state.borrow_mut();
            let Some(conn) = s.conn.as_mut() else { return };
            let result = write_out(conn);
            if result.is_ok() {
                let has_pending = !conn.pending.is_empty();
                let poll = conn.poll;
                if has_pending {
                    unsafe { (uvs().ref_)(poll) };
                    arm_timer(&mut s);
                }
            }
            result.err()
        };
        if let Some(reason) = failure {
            fail_connection(&self.state, ErrorKind::NotConnected, &reason);
        }
    }

    /// Stops taking calls; the connection closes once calls in flight have settled.
    pub fn close(&self) {
        let idle = {
            let mut s = self.state.borrow_mut();
            s.closing = true;
            s.conn.as_ref().is_none_or(|c| c.pending.is_empty())
        };
        if idle {
            shut_down(&self.state);
        }
    }

    /// Installs a finished connection attempt; called on the JS thread.
    pub fn opened(&self, opened: Opened) {
        install(&self.state, opened);
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        // This can run in a GC finalizer, where JS must not be called: close without
        // notifying. Calls still in flight then have no one waiting on them.
        let conn = {
            let mut s = self.state.borrow_mut();
            s.callback_live = false;
            s.conn.take()
        };
        if let Some(conn) = conn {
            let mut s = self.state.borrow_mut();
            retire(&mut s, conn);
        }
        shut_down(&self.state);
    }
}

fn connect(state: &Rc<Shared>) {
    let (target, generation, report) = {
        let mut s = state.borrow_mut();
        if s.connecting || s.conn.is_some() || s.closed || s.closing {
            return;
        }
        let Some(report) = s.report.clone() else {
            return;
        };
        s.connecting = true;
        s.generation += 1;
        (s.target.clone(), s.generation, report)
    };
    crate::runtime::get().spawn_blocking(move || {
        let result = target.open();
        report(Opened { generation, result });
    });
}

/// Calls the link hook without holding the state borrowed, since it may reach JS.
fn tell_link(state: &Rc<Shared>, lost: Option<&str>) {
    let hook = state.borrow_mut().on_link.take();
    if let Some(tell) = hook {
        tell(lost);
        let mut s = state.borrow_mut();
        if s.on_link.is_none() && !s.closed {
            s.on_link = Some(tell);
        }
    }
}

fn install(state: &Rc<Shared>, opened: Opened) {
    let installed = install_stream(state, opened);
    if installed {
        tell_link(state, None);
    }
}

/// Puts a new connection in place; false when the attempt failed or is stale.
fn install_stream(state: &Rc<Shared>, opened: Opened) -> bool {
    let mut s = state.borrow_mut();
    if opened.generation != s.generation {
        return false;
    }
    s.connecting = false;
    let stream = match opened.result {
        Ok(stream) if !s.closed && !s.closing => stream,
        Ok(_) => return false,
        Err(_) => {
            s.retry_at = Instant::now() + s.backoff;
            s.backoff = (s.backoff * 2).clamp(RETRY_MIN, RETRY_MAX);
            return false;
        }
    };
    let uv = uvs();
    unsafe {
        let mut loop_ = std::ptr::null_mut();
        sys::napi_get_uv_event_loop(s.env, &mut loop_);
        let poll = uv::alloc_handle(uv.poll_size);
        #[cfg(unix)]
        let socket = std::os::unix::io::AsRawFd::as_raw_fd(&stream);
        #[cfg(windows)]
        let socket = std::os::windows::io::AsRawSocket::as_raw_socket(&stream) as usize;
        if (uv.poll_init_socket)(loop_ as *mut c_void, poll, socket) != 0 {
            uv::free_handle(poll, uv.poll_size);
            s.retry_at = Instant::now() + s.backoff;
            return false;
        }
        uv::set_data(poll, Rc::into_raw(state.clone()) as *mut c_void);
        (uv.poll_start)(poll, uv::READABLE, on_poll);
        (uv.unref)(poll);
        // The first reconnect after a healthy connection drops is immediate.
        s.backoff = Duration::ZERO;
        s.conn = Some(Conn {
            stream,
            poll,
            out: Vec::with_capacity(16 * 1024),
            out_pos: 0,
            inbuf: Vec::with_capacity(READ_CHUNK),
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
            pending: VecDeque::new(),
            want_write: false,
        });
    }
    true
}

fn write_out(conn: &mut Conn) -> Result<(), String> {
    while conn.out_pos < conn.out.len() {
        match conn.stream.write(&conn.out[conn.out_pos..]) {
            Ok(0) => return Err("the connection closed while writing".into()),
            Ok(n) => conn.out_pos += n,
            Err(e) if e.kind() == IoKind::WouldBlock => break,
            Err(e) if e.kind() == IoKind::Interrupted => {}
            Err(e) => return Err(format!("write failed: {e}")),
        }
    }
    let drained = conn.out_pos == conn.out.len();
    if drained {
        conn.out.clear();
        conn.out_pos = 0;
    }
    if drained == conn.want_write {
        conn.want_write = !drained;
        let events = if drained {
            uv::READABLE
        } else {
            uv::READABLE | uv::WRITABLE
        };
        unsafe { (uvs().poll_start)(conn.poll, events, on_poll) };
    }
    Ok(())
}

fn arm_timer(s: &mut State) {
    if s.timer_armed {
        return;
    }
    let Some(front) = s.conn.as_ref().and_then(|c| c.pending.front()) else {
        return;
    };
    let wait = front.1.saturating_duration_since(Instant::now());
    s.timer_armed = true;
    unsafe { (uvs().timer_start)(s.timer, on_timer, wait.as_millis() as u64 + 1, 0) };
}

unsafe fn borrow_state(handle: *mut uv::Handle) -> std::mem::ManuallyDrop<Rc<Shared>> {
    std::mem::ManuallyDrop::new(unsafe { Rc::from_raw(uv::data(handle) as *const Shared) })
}

unsafe extern "C" fn on_timer(handle: *mut uv::Handle) {
    let state = unsafe { borrow_state(handle) };
    let expired = {
        let mut s = state.borrow_mut();
        s.timer_armed = false;
        let now = Instant::now();
        match s.conn.as_ref().and_then(|c| c.pending.front()) {
            Some(&(_, deadline)) if deadline <= now => true,
            Some(_) => {
                arm_timer(&mut s);
                false
            }
            None => false,
        }
    };
    if expired {
        let limit = state.borrow().command_timeout;
        fail_connection(
            &state,
            ErrorKind::Timeout,
            &format!("no reply from Redis within {} ms", limit.as_millis()),
        );
    }
}

unsafe extern "C" fn on_poll(handle: *mut uv::Handle, status: c_int, events: c_int) {
    let state = unsafe { borrow_state(handle) };
    // A poll handle of a connection already torn down can still fire once.
    if state
        .borrow()
        .conn
        .as_ref()
        .is_none_or(|c| c.poll != handle)
    {
        return;
    }
    if status < 0 {
        fail_connection(
            &state,
            ErrorKind::NotConnected,
            &format!("socket error {status}"),
        );
        return;
    }
    if events & uv::WRITABLE != 0 {
        let failure = {
            let mut s = state.borrow_mut();
            s.conn.as_mut().and_then(|c| write_out(c).err())
        };
        if let Some(reason) = failure {
            fail_connection(&state, ErrorKind::NotConnected, &reason);
            return;
        }
    }
    if events & uv::READABLE != 0 {
        read_and_deliver(&state);
    }
}

fn read_and_deliver(state: &Rc<Shared>) {
    let mut lost: Option<String> = None;
    let env;
    let mut scope = std::ptr::null_mut();
    let mut array = std::ptr::null_mut();
    let mut delivered = 0usize;
    {
        let mut s = state.borrow_mut();
        env = s.env;
        let Some(conn) = s.conn.as_mut() else { return };
        loop {
            match conn.stream.read(&mut conn.scratch) {
                Ok(0) => {
                    lost = Some("the server closed the connection".into());
                    break;
                }
                Ok(n) => {
                    conn.inbuf.extend_from_slice(&conn.scratch[..n]);
                    if n < READ_CHUNK {
                        break;
                    }
                }
                Err(e) if e.kind() == IoKind::WouldBlock => break,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => {
                    lost = Some(format!("read failed: {e}"));
                    break;
                }
            }
        }
        unsafe {
            sys::napi_open_handle_scope(env, &mut scope);
            sys::napi_create_array(env, &mut array);
        }
        let mut used = 0;
        let mut index = 0u32;
        while !conn.pending.is_empty() {
            match resp::decode(&conn.inbuf[used..]) {
                Ok(Some((frame, n))) => {
                    used += n;
                    let (id, _) = conn.pending.pop_front().expect("checked non-empty");
                    unsafe {
                        let mut js_id = std::ptr::null_mut();
                        sys::napi_create_uint32(env, id, &mut js_id);
                        sys::napi_set_element(env, array, index, js_id);
                        sys::napi_set_element(env, array, index + 1, frame_to_js(env, &frame));
                    }
                    index += 2;
                    delivered += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    lost = Some(format!("protocol error: {}", e.0));
                    break;
                }
            }
        }
        conn.inbuf.drain(..used);
        if conn.pending.is_empty() {
            unsafe { (uvs().unref)(conn.poll) };
        }
    }
    if delivered > 0 {
        call_js(state, array);
    }
    unsafe { sys::napi_close_handle_scope(env, scope) };
    if let Some(reason) = lost {
        fail_connection(state, ErrorKind::NotConnected, &reason);
    } else {
        let drained_and_closing = {
            let s = state.borrow();
            s.closing && s.conn.as_ref().is_none_or(|c| c.pending.is_empty())
        };
        if drained_and_closing {
            shut_down(state);
        }
    }
}

fn error_to_js(env: sys::napi_env, kind: ErrorKind, message: &str) -> sys::napi_value {
    unsafe {
        let code = kind.code();
        let mut js_code = std::ptr::null_mut();
        let mut js_msg = std::ptr::null_mut();
        let mut err = std::ptr::null_mut();
        sys::napi_create_string_utf8(env, code.as_ptr().cast(), code.len() as isize, &mut js_code);
        sys::napi_create_string_utf8(
            env,
            message.as_ptr().cast(),
            message.len() as isize,
            &mut js_msg,
        );
        sys::napi_create_error(env, js_code, js_msg, &mut err);
        err
    }
}

/// A JS string for valid UTF-8, else `None`.
fn str_to_js(env: sys::napi_env, bytes: &[u8]) -> Option<sys::napi_value> {
    let s = std::str::from_utf8(bytes).ok()?;
    let mut v = std::ptr::null_mut();
    unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut v) };
    Some(v)
}

fn null_js(env: sys::napi_env) -> sys::napi_value {
    let mut v = std::ptr::null_mut();
    unsafe { sys::napi_get_null(env, &mut v) };
    v
}

fn text_to_js(env: sys::napi_env, bytes: &[u8]) -> sys::napi_value {
    str_to_js(env, bytes)
        .unwrap_or_else(|| error_to_js(env, ErrorKind::Redis, "stored value is not valid UTF-8"))
}

fn frame_to_js(env: sys::napi_env, frame: &Frame<'_>) -> sys::napi_value {
    unsafe {
        let mut v = std::ptr::null_mut();
        match frame {
            Frame::Simple(s) => return text_to_js(env, s),
            Frame::Error(e) => {
                let text = String::from_utf8_lossy(e);
                let kind = if text.starts_with("WRONGTYPE") {
                    ErrorKind::WrongType
                } else if text.starts_with("NOPERM") || text.starts_with("NOAUTH") {
                    ErrorKind::Auth
                } else {
                    ErrorKind::Redis
                };
                return error_to_js(env, kind, &text);
            }
            Frame::Int(n) => {
                sys::napi_create_double(env, *n as f64, &mut v);
            }
            Frame::Bulk(Some(b)) => return text_to_js(env, b),
            Frame::Bulk(None) | Frame::Array(None) => return null_js(env),
            Frame::Array(Some(items)) => {
                sys::napi_create_array_with_length(env, items.len(), &mut v);
                for (i, item) in items.iter().enumerate() {
                    // Like redis-rs's path: a missing or non-text element is null.
                    let js = match item {
                        Frame::Bulk(Some(b)) | Frame::Simple(b) => str_to_js(env, b),
                        _ => None,
                    }
                    .unwrap_or_else(|| null_js(env));
                    sys::napi_set_element(env, v, i as u32, js);
                }
            }
        }
        v
    }
}

/// Calls the JS delivery function with `payload` as a top-level callback, so promise
/// reactions run when it returns.
fn call_js(state: &Rc<Shared>, payload: sys::napi_value) {
    let (env, callback, async_context, live) = {
        let s = state.borrow();
        (s.env, s.callback, s.async_context, s.callback_live)
    };
    if !live || callback.is_null() {
        return;
    }
    unsafe {
        let mut func = std::ptr::null_mut();
        if sys::napi_get_reference_value(env, callback, &mut func) != sys::Status::napi_ok
            || func.is_null()
        {
            return;
        }
        // napi_make_callback needs an object as `this`.
        let mut recv = std::ptr::null_mut();
        sys::napi_get_global(env, &mut recv);
        let mut result = std::ptr::null_mut();
        let argv = [payload];
        let status = sys::napi_make_callback(
            env,
            async_context,
            recv,
            func,
            1,
            argv.as_ptr(),
            &mut result,
        );
        if status == sys::Status::napi_pending_exception {
            let mut exception = std::ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut exception);
            sys::napi_fatal_exception(env, exception);
        }
    }
}

/// Rejects every call in flight with `kind`, drops the connection, and lets the next call
/// start a new one after a backoff.
fn fail_connection(state: &Rc<Shared>, kind: ErrorKind, reason: &str) {
    let (env, pending) = {
        let mut s = state.borrow_mut();
        let Some(conn) = s.conn.take() else { return };
        retire(&mut s, conn)
    };
    if !pending.is_empty() {
        unsafe {
            let mut scope = std::ptr::null_mut();
            sys::napi_open_handle_scope(env, &mut scope);
            let mut array = std::ptr::null_mut();
            sys::napi_create_array_with_length(env, pending.len() * 2, &mut array);
            for (i, id) in pending.iter().enumerate() {
                let mut js_id = std::ptr::null_mut();
                sys::napi_create_uint32(env, *id, &mut js_id);
                sys::napi_set_element(env, array, (2 * i) as u32, js_id);
                sys::napi_set_element(
                    env,
                    array,
                    (2 * i + 1) as u32,
                    error_to_js(env, kind, reason),
                );
            }
            call_js(state, array);
            sys::napi_close_handle_scope(env, scope);
        }
    }
    let closing = state.borrow().closing;
    if kind == ErrorKind::NotConnected {
        tell_link(state, Some(reason));
    }
    if closing {
        shut_down(state);
    }
}

/// Stops polling a connection and hands its socket to the graveyard; returns the ids of the
/// calls that were waiting on it.
fn retire(s: &mut State, conn: Conn) -> (sys::napi_env, Vec<u32>) {
    let uv = uvs();
    unsafe {
        (uv.poll_stop)(conn.poll);
        (uv.close)(conn.poll, Some(on_poll_closed));
        if s.timer_armed {
            (uv.timer_stop)(s.timer);
            s.timer_armed = false;
        }
    }
    s.graveyard.push_back(conn.stream);
    s.retry_at = Instant::now() + s.backoff;
    s.backoff = (s.backoff * 2).clamp(RETRY_MIN, RETRY_MAX);
    (s.env, conn.pending.into_iter().map(|(id, _)| id).collect())
}

unsafe extern "C" fn on_poll_closed(handle: *mut uv::Handle) {
    unsafe {
        let state = Rc::from_raw(uv::data(handle) as *const Shared);
        state.borrow_mut().graveyard.pop_front();
        uv::free_handle(handle, uvs().poll_size);
    }
}

unsafe extern "C" fn on_timer_closed(handle: *mut uv::Handle) {
    unsafe {
        drop(Rc::from_raw(uv::data(handle) as *const Shared));
        uv::free_handle(handle, uvs().timer_size);
    }
}

/// Closes everything for good. Calls still in flight are rejected with `ERR_CLOSED`.
fn shut_down(state: &Rc<Shared>) {
    if state.borrow().closed {
        return;
    }
    {
        let mut s = state.borrow_mut();
        s.closing = true;
    }
    if state.borrow().conn.is_some() {
        fail_connection(state, ErrorKind::Closed, "the store is closed");
    }
    let mut s = state.borrow_mut();
    if s.closed {
        return;
    }
    s.closed = true;
    s.report = None;
    unsafe {
        let uv = uvs();
        (uv.timer_stop)(s.timer);
        (uv.close)(s.timer, Some(on_timer_closed));
        if s.callback_live {
            sys::napi_async_destroy(s.env, s.async_context);
        }
        sys::napi_delete_reference(s.env, s.callback);
    }
    s.callback_live = false;
    s.callback = std::ptr::null_mut();
}
