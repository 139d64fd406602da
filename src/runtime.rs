//! The one tokio runtime every store in the process shares. A single worker: measured faster
//! than two for this workload, and it leaves the other core to Node.

use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub fn get() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        // rustls needs one process-wide crypto provider; another library may have set it first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ferrisession-io")
            .enable_all()
            .build()
            .expect("the I/O runtime must start")
    })
}
