//! Redis Cluster through redis-rs's async cluster connection, which follows MOVED/ASK and
//! refreshes the slot map after failovers. Commands of one batch are grouped by hash slot so
//! each group is one pipeline to one node; nothing is ever sent across slots (no CROSSSLOT).

use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};
use redis::Value;
use tokio::sync::Mutex;

use super::standalone::{run_pipeline, to_cmd};
use super::{prefix_pattern, value_to_reply, Command, Reply};
use crate::config::{ClusterSpec, ConnectionSpec};
use crate::error::{StoreError, StoreResult};

pub struct Cluster {
    client: ClusterClient,
    conn: Mutex<Option<ClusterConnection>>,
}

impl Cluster {
    pub fn new(cluster: &ClusterSpec, spec: &ConnectionSpec) -> StoreResult<Cluster> {
        let mut builder = ClusterClientBuilder::new(cluster.nodes.clone())
            .connection_timeout(spec.connect_timeout)
            .response_timeout(spec.command_timeout)
            .retries(3)
            .min_retry_wait(50)
            .max_retry_wait(500);
        if let Some(u) = &cluster.username {
            builder = builder.username(u);
        }
        if let Some(p) = &cluster.password {
            builder = builder.password(p);
        }
        if let Some(tls) = &cluster.tls {
            builder = builder.tls(if tls.reject_unauthorized {
                redis::TlsMode::Secure
            } else {
                redis::TlsMode::Insecure
            });
            if let Some(certs) = tls.certificates()? {
                builder = builder.certs(certs);
            }
        }
        let client = builder
            .build()
            .map_err(|e| StoreError::bad_argument(format!("invalid cluster settings: {e}")))?;
        Ok(Cluster {
            client,
            conn: Mutex::new(None),
        })
    }

    async fn connection(&self) -> StoreResult<ClusterConnection> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = self.client.get_async_connection().await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    pub async fn execute(&self, commands: &[Command]) -> StoreResult<Vec<Reply>> {
        let conn = self.connection().await?;
        // One pipeline per slot; a multi-key command spanning slots goes alone, and redis-rs
        // splits it per slot and merges the replies.
        let mut groups: HashMap<Slot, Vec<usize>> = HashMap::new();
        let mut alone = Vec::new();
        for (i, c) in commands.iter().enumerate() {
            let slots: HashSet<Slot> = c.keys().into_iter().map(Slot::for_key).collect();
            let mut slots = slots.into_iter();
            match (slots.next(), slots.next()) {
                (Some(slot), None) => groups.entry(slot).or_default().push(i),
                _ => alone.push(i),
            }
        }
        let mut replies: Vec<Option<Reply>> = vec![None; commands.len()];
        let pipelines = groups.into_values().map(|idx| {
            let mut conn = conn.clone();
            async move {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for &i in &idx {
                    pipe.add_command(to_cmd(&commands[i]));
                }
                let result: redis::RedisResult<Vec<Value>> = pipe.query_async(&mut conn).await;
                (idx, result)
            }
        });
        let singles = alone.into_iter().map(|i| {
            let mut conn = conn.clone();
            async move {
                let result: redis::RedisResult<Value> =
                    to_cmd(&commands[i]).query_async(&mut conn).await;
                (vec![i], result.map(|v| vec![v]))
            }
        });
        let mut outcomes = join_all(pipelines).await;
        outcomes.extend(join_all(singles).await);
        for (idx, result) in outcomes {
            match result {
                Ok(values) => {
                    for (i, v) in idx.into_iter().zip(values) {
                        replies[i] = Some(value_to_reply(v));
                    }
                }
                Err(e) => {
                    let e = StoreError::from(e);
                    if e.is_connection_loss() {
                        return Err(e);
                    }
                    for i in idx {
                        replies[i] = Some(Reply::Error(e.clone()));
                    }
                }
            }
        }
        Ok(replies
            .into_iter()
            .map(|r| r.unwrap_or(Reply::Nil))
            .collect())
    }

    /// Atomic when every key hashes to one slot; otherwise one command after another.
    pub async fn execute_atomic(&self, commands: &[Command]) -> StoreResult<Vec<Reply>> {
        let slots: HashSet<Slot> = commands
            .iter()
            .flat_map(|c| c.keys())
            .map(Slot::for_key)
            .collect();
        if slots.len() > 1 {
            let mut out = Vec::with_capacity(commands.len());
            for c in commands {
                out.extend(self.execute(std::slice::from_ref(c)).await?);
            }
            return Ok(out);
        }
        let mut conn = self.connection().await?;
        run_pipeline(&mut conn, commands, true).await
    }

    /// Scans every primary: keys live on exactly one, so the union is the keyspace.
    pub async fn scan_prefix(&self, prefix: &str, count: usize) -> StoreResult<Vec<String>> {
        let mut conn = self.connection().await?;
        let nodes = conn
            .route_command(
                redis::cmd("CLUSTER").arg("NODES").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let text = match value_to_reply(nodes) {
            Reply::Text(t) => t,
            other => {
                return Err(StoreError::new(
                    crate::error::ErrorKind::Redis,
                    format!("unexpected CLUSTER NODES reply {other:?}"),
                ))
            }
        };
        let pattern = prefix_pattern(prefix);
        let mut keys = Vec::new();
        let mut seen = HashSet::new();
        for (host, port) in primaries(&text) {
            let mut cursor: u64 = 0;
            loop {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(count.max(1));
                let value = conn
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port,
                        }),
                    )
                    .await?;
                let (next, batch): (u64, Vec<String>) = redis::from_redis_value(value)
                    .map_err(|e| StoreError::new(crate::error::ErrorKind::Redis, e.to_string()))?;
                for k in batch {
                    if seen.insert(k.clone()) {
                        keys.push(k);
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(keys)
    }
}

/// Addresses of the primaries that serve slots, from `CLUSTER NODES` output.
fn primaries(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            let serving = fields.len() > 8;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") || !serving {
                return None;
            }
            let addr = fields.get(1)?.split('@').next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((
                host.trim_matches(['[', ']']).to_string(),
                port.parse().ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::primaries;

    #[test]
    fn reads_serving_primaries_from_cluster_nodes() {
        let text = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 disconnected
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 127.0.0.1:7004@17004 master - 0 0 5 connected
";
        assert_eq!(
            primaries(text),
            vec![
                ("127.0.0.1".to_string(), 7000),
                ("127.0.0.1".to_string(), 7001)
            ]
        );
    }
}
