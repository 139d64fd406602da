//! One Redis server over one multiplexed, auto-reconnecting connection. Concurrent batches
//! pipeline over it.

use std::collections::HashSet;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Pipeline, Value};

use super::{prefix_pattern, value_to_reply, Command, Expiry, Reply};
use crate::config::{ConnectionSpec, Endpoint};
use crate::error::{StoreError, StoreResult};

pub struct Standalone {
    manager: ConnectionManager,
}

impl Standalone {
    pub fn new(endpoint: &Endpoint, spec: &ConnectionSpec) -> StoreResult<Standalone> {
        // Our own timeouts replace redis-rs's defaults (500 ms response, 1 s connect). Retries
        // stay few: the store's health check keeps trying, and a call must not outlive
        // commandTimeout waiting on a reconnect loop.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(spec.command_timeout))
            .set_connection_timeout(Some(spec.connect_timeout))
            .set_number_of_retries(1)
            .set_min_delay(std::time::Duration::from_millis(50))
            .set_max_delay(std::time::Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(endpoint.client()?, config)
            .map_err(StoreError::from)?;
        Ok(Standalone { manager })
    }

    pub async fn execute(&self, commands: &[Command]) -> StoreResult<Vec<Reply>> {
        run_pipeline(&mut self.manager.clone(), commands, false).await
    }

    pub async fn execute_atomic(&self, commands: &[Command]) -> StoreResult<Vec<Reply>> {
        run_pipeline(&mut self.manager.clone(), commands, true).await
    }

    pub async fn scan_prefix(&self, prefix: &str, count: usize) -> StoreResult<Vec<String>> {
        scan_node(&mut self.manager.clone(), prefix, count).await
    }
}

/// Walks one node's keyspace with `SCAN MATCH <escaped prefix>*`. SCAN may repeat a key, so
/// keys are collected into a set.
pub(super) async fn scan_node<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    prefix: &str,
    count: usize,
) -> StoreResult<Vec<String>> {
    let pattern = prefix_pattern(prefix);
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(conn)
            .await?;
        for k in batch {
            if seen.insert(k.clone()) {
                keys.push(k);
            }
        }
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// Sends `commands` in one round trip: as a transaction when `atomic`, otherwise with each
/// command's error kept in its own reply.
pub(super) async fn run_pipeline<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    commands: &[Command],
    atomic: bool,
) -> StoreResult<Vec<Reply>> {
    let mut pipe = Pipeline::with_capacity(commands.len());
    if atomic {
        pipe.atomic();
    } else {
        pipe.ignore_errors();
    }
    for c in commands {
        pipe.add_command(to_cmd(c));
    }
    let values: Vec<Value> = pipe.query_async(conn).await?;
    Ok(values.into_iter().map(value_to_reply).collect())
}

/// The redis-rs form of one session command.
pub(super) fn to_cmd(command: &Command) -> redis::Cmd {
    let mut c;
    match command {
        Command::Ping => c = redis::cmd("PING"),
        Command::Get(key) => {
            c = redis::cmd("GET");
            c.arg(key);
        }
        Command::Set { key, value, expiry } => {
            c = redis::cmd("SET");
            c.arg(key).arg(value);
            match *expiry {
                Expiry::Never => {}
                Expiry::In(secs) => {
                    c.arg("EX").arg(secs);
                }
                Expiry::At(unix) => {
                    c.arg("EXAT").arg(unix);
                }
            }
        }
        Command::Expire { key, seconds } => {
            c = redis::cmd("EXPIRE");
            c.arg(key).arg(*seconds);
        }
        Command::Del(keys) => {
            c = redis::cmd("DEL");
            c.arg(keys);
        }
        Command::MGet(keys) => {
            c = redis::cmd("MGET");
            c.arg(keys);
        }
        Command::SAdd { key, members } => {
            c = redis::cmd("SADD");
            c.arg(key).arg(members);
        }
        Command::SRem { key, members } => {
            c = redis::cmd("SREM");
            c.arg(key).arg(members);
        }
        Command::SMembers(key) => {
            c = redis::cmd("SMEMBERS");
            c.arg(key);
        }
        Command::Exists(key) => {
            c = redis::cmd("EXISTS");
            c.arg(key);
        }
        Command::PTtl(key) => {
            c = redis::cmd("PTTL");
            c.arg(key);
        }
        Command::Scan {
            cursor,
            pattern,
            count,
        } => {
            c = redis::cmd("SCAN");
            c.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(*count);
        }
        Command::LPush { key, member } => {
            c = redis::cmd("LPUSH");
            c.arg(key).arg(member);
        }
        Command::LRem { key, member } => {
            c = redis::cmd("LREM");
            c.arg(key).arg(0).arg(member);
        }
        Command::LRange(key) => {
            c = redis::cmd("LRANGE");
            c.arg(key).arg(0).arg(-1);
        }
    }
    c
}
