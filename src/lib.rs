//! napi exports only: JS calls in, replies and events out. No session logic lives here.

#![deny(clippy::all)]

pub mod batch;
pub mod command;
pub mod config;
pub mod engine;
pub mod error;
pub mod memory;
pub mod refresh;
pub mod request;
pub mod runtime;
pub mod seal;
pub mod session;
pub mod stats;
pub mod token;
pub mod walk;

use std::rc::Rc;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::sys;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use command::Reply;
use engine::js::Scope;
use engine::outbox::Outbox;
use engine::{Bounce, Engine, EngineReport};
use error::StoreError;
use request::Request;
use session::{Delivery, LinkEvent, LocalCore, Plan};

/// A delivery on its way into JS: replies in the format of `Scope::replies`, events as
/// `["connect"]` or `["disconnect", reason]`.
pub struct JsDelivery(Delivery);

impl ToNapiValue for JsDelivery {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        // SAFETY: napi-rs converts return values and threadsafe-function arguments inside the
        // JS call it makes.
        let scope = unsafe { Scope::inside_call(env) };
        Ok(match val.0 {
            Delivery::Replies(replies) => {
                let mut out = Outbox::default();
                for (id, reply) in replies {
                    out.reply(id, reply);
                }
                scope.replies(out)
            }
            Delivery::Event(LinkEvent::Connect) => scope.array(&[scope.string("connect")]),
            Delivery::Event(LinkEvent::Disconnect(reason)) => {
                scope.array(&[scope.string("disconnect"), scope.string(&reason)])
            }
        })
    }
}

/// What other threads hand to the JS thread.
pub enum Wake {
    Core(Delivery),
    Engine(EngineReport),
}

type Waker = ThreadsafeFunction<Wake, (), JsDelivery, Status, false, true>;

#[napi]
pub struct NativeStore {
    /// What its calls need, shared with this thread's table of stores.
    hot: Rc<Hot>,
    /// Its place in that table (`Stores`), which `cachedValue` is given.
    number: u32,
    /// Calls per operation, as JS records them, and what the connections went through.
    calls: std::cell::RefCell<stats::CallStats>,
    counters: Arc<stats::LinkCounters>,
    server: config::ServerName,
}

/// What a store's calls need: held by its `NativeStore` and by this thread's table of stores,
/// through which the per-read function (`cachedValue`) reaches it by number. That is a
/// module function, not a method: napi-rs 3's wrapper around a method call (its class
/// identity check and native-borrow registry) costs about as much again as the call itself.
struct Hot {
    /// `None` once closed: `close` drops it, and with it the sink whose threadsafe function
    /// holds the store's JS side, so a closed store can be collected. A `Cell`, not a
    /// `RefCell`: a call takes its own `Rc` (`Hot::core`), so nothing is borrowed while the
    /// engine may call JS, which may call `close`.
    core: std::cell::Cell<Option<Rc<LocalCore>>>,
    engine: Option<Rc<Engine>>,
    /// The copied client's key prefix, put before every key (see `Request::in_namespace`).
    namespace: String,
    /// `touchAfter`, when set.
    gate: Option<std::cell::RefCell<refresh::RefreshGate>>,
    /// `hashIds` and `encryption`.
    seal: Arc<seal::Seal>,
}

/// This JS thread's stores, by number; a collected store's slot is empty and reused. A number
/// names a store of this thread only: each JS thread (a worker) has its own table. The table
/// holds its stores weakly: a store lives exactly as long as its `NativeStore`, so its
/// connections are never dropped by the thread's exit.
#[derive(Default)]
struct Stores {
    slots: Vec<std::rc::Weak<Hot>>,
    free: Vec<u32>,
}

thread_local! {
    static STORES: std::cell::RefCell<Stores> = std::cell::RefCell::new(Stores::default());
}

impl Stores {
    fn add(hot: &Rc<Hot>) -> u32 {
        let weak = Rc::downgrade(hot);
        STORES.with_borrow_mut(|t| match t.free.pop() {
            Some(n) => {
                t.slots[n as usize] = weak;
                n
            }
            None => {
                t.slots.push(weak);
                (t.slots.len() - 1) as u32
            }
        })
    }

    /// Frees the slot of a store being dropped (its finalizer); nothing once the thread's
    /// table is itself gone.
    fn remove(number: u32) {
        let _ = STORES.try_with(|t| {
            if let Ok(mut t) = t.try_borrow_mut() {
                if let Some(slot) = t.slots.get_mut(number as usize) {
                    *slot = std::rc::Weak::new();
                    t.free.push(number);
                }
            }
        });
    }

    fn get(number: u32) -> Option<Rc<Hot>> {
        STORES.with_borrow(|t| {
            t.slots
                .get(number as usize)
                .and_then(std::rc::Weak::upgrade)
        })
    }
}

impl Drop for NativeStore {
    fn drop(&mut self) {
        Stores::remove(self.number);
    }
}

/// The near cache's live value of session `id` under `prefix` in store `store` (the id
/// hashed with `hashIds`, the namespace before), opened: a hot `get` costs one small native
/// call, no batch and no promise on this side. JS asks only when none of its calls wait to be
/// sent, so no earlier write is overtaken. `false` when the cache knows the key is absent,
/// `null` when it does not know (or the store is closed). Throws `ERR_BAD_DATA` when the
/// value does not open.
#[napi]
pub fn cached_value(
    store: u32,
    prefix: String,
    id: String,
) -> Result<Option<Either<String, bool>>> {
    match Stores::get(store) {
        Some(hot) => hot.cached(prefix, &id),
        None => Ok(None),
    }
}

impl Hot {
    /// The store's core, `None` once closed.
    fn core(&self) -> Option<Rc<LocalCore>> {
        let core = self.core.take();
        self.core.set(core.clone());
        core
    }

    /// A request as it goes to Redis: under the namespace, its value sealed; or the reply
    /// `touchAfter` gives it without a round trip. The gate is borrowed for this request only: work after it (the engine's
    /// writes) may call JS, which may call the store again.
    fn admit(&self, request: Request) -> std::result::Result<Request, Reply> {
        let request = self
            .seal
            .close_request(request.in_namespace(&self.namespace));
        if matches!(&request, Request::MGet { keys } if keys.is_empty()) {
            return Err(Reply::List(Vec::new()));
        }
        let skip = self.gate.as_ref().and_then(|g| match g.try_borrow_mut() {
            Ok(mut g) => g.admit(&request),
            // Asked again from inside its own admit (cannot happen: admit calls no JS): the
            // call goes to Redis, which is always right.
            Err(_) => None,
        });
        match skip {
            Some(reply) => Err(reply),
            None => Ok(request),
        }
    }

    fn cached(&self, prefix: String, id: &str) -> Result<Option<Either<String, bool>>> {
        let Some(engine) = self.engine.as_ref() else {
            return Ok(None);
        };
        // The key grows from the prefix JS gave, as `Request::in_namespace` puts the namespace
        // before a key (nothing to insert without one).
        let mut key = prefix;
        key.insert_str(0, &self.namespace);
        key.push_str(&self.seal.id(id));
        match engine.cached(&key) {
            None => Ok(None),
            Some(Ok(Some(value))) => Ok(Some(Either::A(value))),
            Some(Ok(None)) => Ok(Some(Either::B(false))),
            Some(Err(e)) => Err(to_napi_err(e)),
        }
    }
}

/// Runs `f` (engine work a JS call or a report started); a panic fails the calls in flight
/// with `ERR_INTERNAL` and the connections start again, instead of unwinding into the host.
fn contained(engine: &Rc<Engine>, what: &str, f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let reason = format!(
            "internal error in {what}: {}",
            engine::event_loop::panic_text(&*panic)
        );
        engine::event_loop::contain_quiet("recovering", || engine.recover(&reason));
    }
}

/// The op codes of the batch format, by the names `lib/native.js` uses: one table, in Rust.
#[napi]
pub fn op_codes() -> std::collections::HashMap<String, u32> {
    batch::OPS
        .iter()
        .map(|(code, name, _)| (name.to_string(), *code))
        .collect()
}

fn closed_error() -> napi::Error {
    napi::Error::new(Status::GenericFailure, "ERR_CLOSED: the store is closed")
}

fn to_napi_err(e: StoreError) -> napi::Error {
    napi::Error::new(
        Status::InvalidArg,
        format!("{}: {}", e.kind.code(), e.message),
    )
}

#[napi]
impl NativeStore {
    /// `options` is the JSON of the connection options; `onDelivery` receives replies and
    /// connection events.
    #[napi(constructor)]
    ///
    /// `shared` (three numbers) is where the near cache tells JS it changed; see
    /// `engine::cache::Epoch`.
    pub fn new(
        env: Env,
        options: String,
        on_delivery: Function<JsDelivery, ()>,
        shared: Option<Float64Array>,
    ) -> Result<Self> {
        let spec = config::parse(&options).map_err(to_napi_err)?;
        let namespace = spec.namespace.clone();
        let server = spec.server_name();
        let seal = spec.seal.clone();
        let counters = spec.counters.clone();
        let gate = spec
            .touch_after
            .map(|t| std::cell::RefCell::new(refresh::RefreshGate::new(t)));
        let epoch = shared.map(engine::cache::Epoch);
        // SAFETY: called in this JS call, on its thread; the delivery function is live.
        let boundary = || unsafe { engine::js::Boundary::new(env.raw(), on_delivery.raw()) };
        let engine = Engine::new(boundary, &spec, epoch)
            .map_err(to_napi_err)?
            .map(Rc::new);
        let engine_in_cb = engine.as_ref().map(Rc::downgrade);
        let waker: Waker = on_delivery
            .build_threadsafe_function::<Wake>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(move |ctx| {
                let delivery = match ctx.value {
                    Wake::Core(d) => d,
                    Wake::Engine(report) => {
                        if let Some(e) = engine_in_cb.as_ref().and_then(|w| w.upgrade()) {
                            contained(&e, "a connection report", || e.report(report));
                        }
                        Delivery::Replies(Vec::new())
                    }
                };
                Ok(JsDelivery(delivery))
            })?;
        let waker = Arc::new(waker);
        let sink_waker = waker.clone();
        let sink: session::Sink = Arc::new(move |d| {
            sink_waker.call(Wake::Core(d), ThreadsafeFunctionCallMode::NonBlocking);
        });
        let switch_waker = Arc::downgrade(&waker);
        let _ = spec.counters.on_switch.set(Box::new(move || {
            if let Some(w) = switch_waker.upgrade() {
                w.call(
                    Wake::Engine(EngineReport::Switched),
                    ThreadsafeFunctionCallMode::NonBlocking,
                );
            }
        }));
        let core = LocalCore::open(spec, sink).map_err(to_napi_err)?;
        if let Some(e) = &engine {
            let report_waker = waker.clone();
            e.start(
                Arc::new(move |report| {
                    report_waker.call(
                        Wake::Engine(report),
                        ThreadsafeFunctionCallMode::NonBlocking,
                    );
                }),
                Rc::new(core.link_reporter()),
            );
        }
        let hot = Rc::new(Hot {
            core: std::cell::Cell::new(Some(Rc::new(core))),
            engine,
            namespace,
            gate,
            seal,
        });
        Ok(NativeStore {
            number: Stores::add(&hot),
            hot,
            calls: Default::default(),
            counters,
            server,
        })
    }

    /// Starts a batch of calls (see `batch.rs` for the format). Replies that are known at
    /// once (refusals, near-cache hits, `touchAfter` skips, and every reply of an embedded
    /// `memory://` store) are the return value, in the delivery format; the rest come back
    /// through `onDelivery`.
    #[napi]
    pub fn submit(
        &self,
        nums: Float64ArraySlice,
        len: u32,
        text: String,
    ) -> Result<Option<JsDelivery>> {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine::fault::check(engine::fault::Site::Submit);
            self.submit_batch(&nums, len, text)
        }));
        run.unwrap_or_else(|panic| {
            let reason = format!(
                "internal error in submit: {}",
                engine::event_loop::panic_text(&*panic)
            );
            if let Some(e) = &self.hot.engine {
                contained(e, "recovering", || e.recover(&reason));
            }
            Err(napi::Error::new(
                Status::GenericFailure,
                format!("ERR_INTERNAL: {reason}"),
            ))
        })
    }

    fn submit_batch(
        &self,
        nums: &Float64ArraySlice,
        len: u32,
        text: String,
    ) -> Result<Option<JsDelivery>> {
        let hot = &*self.hot;
        let Some(core) = hot.core() else {
            return Err(closed_error());
        };
        let records = nums.get(..len as usize).ok_or_else(|| {
            napi::Error::new(
                Status::InvalidArg,
                "ERR_BAD_ARGUMENT: batch length out of range",
            )
        })?;
        let calls = batch::decode_sealed(records, &text, &hot.seal).map_err(to_napi_err)?;
        // Each call as it goes on, or the reply it already has (a refusal, a `touchAfter`
        // skip).
        let admitted = calls
            .into_iter()
            .map(|(id, request)| (id, request.map_err(Reply::Error).and_then(|r| hot.admit(r))));
        if core.answers_inline() {
            // Every reply in call order, those known before the table included.
            let replies = core.run_inline(admitted.collect());
            return Ok(Some(JsDelivery(Delivery::Replies(replies))));
        }
        let Some(engine) = hot.engine.as_deref().filter(|e| e.ready()) else {
            return Err(closed_error());
        };
        // Replies known now (refusals, near-cache hits, `touchAfter` skips) are the return
        // value; the rest come through `onDelivery`.
        let mut inline = Vec::new();
        for (id, request) in admitted {
            let request = match request {
                Ok(r) => r,
                Err(reply) => {
                    inline.push((id, reply));
                    continue;
                }
            };
            let queued = match session::plan(request, &hot.seal) {
                Ok(Plan::Command(command)) => match engine.push(id, command) {
                    Ok(()) => Ok(()),
                    Err(Bounce::Refused(err)) => Err(err),
                    Err(Bounce::Answered(reply)) => {
                        inline.push((id, reply));
                        Ok(())
                    }
                },
                Ok(Plan::Walk(command, walk)) => engine.push_walk(id, &command, walk),
                Ok(Plan::Transaction(commands)) => engine.push_atomic(id, &commands),
                Err(err) => Err(err),
            };
            if let Err(err) = queued {
                inline.push((id, Reply::Error(err)));
            }
        }
        engine.flush();
        Ok((!inline.is_empty()).then_some(JsDelivery(Delivery::Replies(inline))))
    }

    /// True for an embedded (`memory://`) store, whose calls `submit` answers.
    #[napi(getter)]
    pub fn inline(&self) -> bool {
        self.hot.core().is_some_and(|c| c.answers_inline())
    }

    /// How many calls to gather into one `submit` while the server is idle: the engine's
    /// advice. (A `memory://` store's batch is each run of JS's calls, whole.)
    #[napi(getter)]
    pub fn batch_cap(&self) -> u32 {
        self.hot
            .engine
            .as_ref()
            .map_or(16, |engine| engine.batch_cap())
    }

    /// This store's number, which `cachedValue` is given.
    #[napi(getter)]
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Where calls go, for tracing: `[address, port, database, namespace]` (port `null` for a
    /// unix socket or memory://; namespace: the copied client's key prefix).
    #[napi(getter)]
    pub fn server(&self) -> (String, Option<u32>, i64, String) {
        let s = &self.server;
        (
            s.address.clone(),
            s.port.map(u32::from),
            s.database,
            self.hot.namespace.clone(),
        )
    }

    /// `id` as keys and indexes hold it: `base64url(SHA-256(id))` with `hashIds`, else itself.
    #[napi]
    pub fn seal_id(&self, id: String) -> String {
        self.hot.seal.id(&id).into_owned()
    }

    /// Takes settled calls as `[op, micros, code, …]` (code: 0 for success, else 1 + the
    /// index in `errorCodes`).
    #[napi]
    pub fn record(&self, entries: Float64ArraySlice, len: u32) {
        if let Some(entries) = entries.get(..len as usize) {
            self.calls.borrow_mut().record(entries);
        }
    }

    /// The error codes `record` numbers, in order.
    #[napi(getter)]
    pub fn error_codes(&self) -> Vec<&'static str> {
        stats::ERROR_KINDS.iter().map(|k| k.code()).collect()
    }

    /// `{"calls": {op: {calls, errors, latency}}, "link": {connects, reconnects, failovers}}`.
    #[napi]
    pub fn stats_json(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        // What wakes the engine: libuv, or its own thread on hosts without it.
        let driver = match &self.hot.engine {
            Some(_) => engine::event_loop::kind().unwrap_or("none"),
            None => "none",
        };
        format!(
            "{{\"calls\":{},\"link\":{{\"connects\":{},\"reconnects\":{},\"failovers\":{},\"internalErrors\":{}}},\"driver\":\"{driver}\"}}",
            self.calls.borrow().to_json(batch::op_name),
            c.connects.load(Relaxed),
            c.reconnects.load(Relaxed),
            c.failovers.load(Relaxed),
            c.internal_errors.load(Relaxed),
        )
    }

    /// The near cache's counters (`[hits, misses, invalidations, entries]`), or `null` when it
    /// is off.
    #[napi]
    pub fn cache_stats(&self) -> Option<Vec<f64>> {
        let s = self.hot.engine.as_ref()?.cache_stats()?;
        Some(vec![
            s.hits as f64,
            s.misses as f64,
            s.invalidations as f64,
            s.entries as f64,
        ])
    }

    /// Stops new calls; calls in flight still settle. The connection closes once they have
    /// (the engine stays until then; `ready()` refuses new calls).
    #[napi]
    pub fn close(&self) {
        if let Some(e) = &self.hot.engine {
            let e = e.clone();
            contained(&e, "close", || e.close());
        }
        if let Some(core) = self.hot.core.take() {
            core.close();
        }
    }
}

/// A new session token's parts for `ferrisession/sessions`: `[id, secret, secretHash]`.
#[napi]
pub fn mint_session_token() -> Result<Vec<String>> {
    let t = token::mint().map_err(to_napi_err)?;
    Ok(vec![t.id, t.secret, t.secret_hash])
}

/// Whether `secret` hashes to `secretHash`, compared in constant time.
#[napi]
pub fn session_secret_matches(secret: String, secret_hash: String) -> bool {
    token::secret_matches(&secret, &secret_hash)
}
