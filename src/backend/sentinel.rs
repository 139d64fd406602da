//! A primary found through Redis Sentinel. redis-rs asks the sentinels where the primary is
//! when connecting, but does not follow a failover by itself: this backend drops its
//! connection and asks again on connection loss, on `READONLY` (it reached a demoted
//! primary), and when a sentinel announces `+switch-master`.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::AsyncConnectionConfig;
use tokio::sync::Mutex;

use super::standalone::{run_pipeline, scan_node};
use super::{Command, Reply};
use crate::config::{ConnectionSpec, SentinelSpec};
use crate::error::{StoreError, StoreResult};

pub struct Sentinel {
    client: Mutex<SentinelClient>,
    conn: Arc<Mutex<Option<MultiplexedConnection>>>,
    config: AsyncConnectionConfig,
}

fn is_readonly(e: &StoreError) -> bool {
    e.message.contains("READONLY") || e.message.contains("read-only")
}

impl Sentinel {
    pub fn new(sentinel: &SentinelSpec, spec: &ConnectionSpec) -> StoreResult<Sentinel> {
        let mut node =
            SentinelNodeConnectionInfo::default().set_redis_connection_info(sentinel.node.clone());
        if let Some(tls) = &sentinel.tls {
            node = node.set_tls_mode(if tls.reject_unauthorized {
                redis::TlsMode::Secure
            } else {
                redis::TlsMode::Insecure
            });
        }
        let client = SentinelClient::build(
            sentinel.sentinels.clone(),
            sentinel.name.clone(),
            Some(node),
            SentinelServerType::Master,
        )
        .map_err(|e| StoreError::bad_argument(format!("invalid sentinel settings: {e}")))?;
        let conn = Arc::new(Mutex::new(None));
        watch_switch_master(
            sentinel.sentinels.clone(),
            sentinel.name.clone(),
            Arc::downgrade(&conn),
            spec.counters.clone(),
        );
        Ok(Sentinel {
            client: Mutex::new(client),
            conn,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(spec.connect_timeout))
                .set_response_timeout(Some(spec.command_timeout)),
        })
    }

    async fn connection(&self) -> StoreResult<MultiplexedConnection> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let client = self.client.lock().await.async_get_client().await?;
        let c = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    async fn forget(&self) {
        self.conn.lock().await.take();
    }

    async fn run(&self, commands: &[Command], atomic: bool) -> StoreResult<Vec<Reply>> {
        let mut conn = self.connection().await?;
        run_pipeline(&mut conn, commands, atomic).await
    }

    /// Runs the commands; after a failover sign it asks the sentinels again and retries once.
    pub async fn execute(&self, commands: &[Command], atomic: bool) -> StoreResult<Vec<Reply>> {
        let first = self.run(commands, atomic).await;
        let stale = match &first {
            Err(e) => e.is_connection_loss() || is_readonly(e),
            Ok(replies) => replies
                .iter()
                .any(|r| matches!(r, Reply::Error(e) if is_readonly(e))),
        };
        if !stale {
            return first;
        }
        self.forget().await;
        self.run(commands, atomic).await
    }

    pub async fn scan_prefix(&self, prefix: &str, count: usize) -> StoreResult<Vec<String>> {
        let mut conn = self.connection().await?;
        match scan_node(&mut conn, prefix, count).await {
            Err(e) if e.is_connection_loss() => {
                self.forget().await;
                let mut conn = self.connection().await?;
                scan_node(&mut conn, prefix, count).await
            }
            other => other,
        }
    }
}

/// Listens on every sentinel for `+switch-master` of our primary and drops the cached
/// connection when it comes, so the next call connects to the new primary. The engine's
/// connection hears of it through `counters.switches_announced`.
fn watch_switch_master(
    sentinels: Vec<redis::ConnectionInfo>,
    name: String,
    conn: std::sync::Weak<Mutex<Option<MultiplexedConnection>>>,
    counters: Arc<crate::stats::LinkCounters>,
) {
    use futures_util::StreamExt;
    for info in sentinels {
        let name = name.clone();
        let conn = conn.clone();
        let counters = counters.clone();
        crate::runtime::get().spawn(async move {
            loop {
                if conn.strong_count() == 0 {
                    return;
                }
                let listened = async {
                    let client = redis::Client::open(info.clone())?;
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe("+switch-master").await?;
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let payload: String = msg.get_payload().unwrap_or_default();
                        if payload.split(' ').next() == Some(name.as_str()) {
                            crate::stats::LinkCounters::add(&counters.switches_announced);
                            if let Some(tell) = counters.on_switch.get() {
                                tell();
                            }
                            match conn.upgrade() {
                                Some(c) => {
                                    c.lock().await.take();
                                }
                                None => return Ok::<(), redis::RedisError>(()),
                            }
                        }
                    }
                    Ok(())
                };
                let _ = listened.await;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }
}
