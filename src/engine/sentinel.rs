//! Hears the sentinels announce a new primary (`+switch-master`), so a store moves to it at
//! once rather than when its connection to the old one fails. Each sentinel is listened to
//! through redis-rs's pub/sub on the runtime's threads; what it hears is counted in
//! `LinkCounters::switches_announced`, and the JS thread is woken (`on_switch`) to follow.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::stats::LinkCounters;

/// Listens on every sentinel for `+switch-master` of primary `name` (`None`: the one primary
/// they monitor, which the dial has checked), for as long as the store owning `counters` lives.
pub fn watch(
    sentinels: Vec<redis::ConnectionInfo>,
    name: Option<String>,
    counters: &Arc<LinkCounters>,
) {
    let _guard = crate::runtime::get().enter();
    for info in sentinels {
        let name = name.clone();
        let counters = Arc::downgrade(counters);
        crate::runtime::get().spawn(async move {
            while counters.strong_count() > 0 {
                let _ = listen(&info, name.as_deref(), &counters).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

async fn listen(
    info: &redis::ConnectionInfo,
    name: Option<&str>,
    counters: &Weak<LinkCounters>,
) -> redis::RedisResult<()> {
    use futures_util::StreamExt;
    let client = redis::Client::open(info.clone())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe("+switch-master").await?;
    let mut messages = pubsub.on_message();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(1), messages.next()).await;
        let Some(counters) = counters.upgrade() else {
            return Ok(());
        };
        match next {
            // Checked each second: a store that is gone stops listening.
            Err(_) => continue,
            Ok(None) => return Ok(()),
            Ok(Some(msg)) => {
                let payload: String = msg.get_payload().unwrap_or_default();
                let announced = payload.split(' ').next();
                if name.is_none() || announced == name {
                    LinkCounters::add(&counters.switches_announced);
                    if let Some(tell) = counters.on_switch.get() {
                        tell();
                    }
                }
            }
        }
    }
}
