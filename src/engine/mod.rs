//! The connection engine the calls ride: a socket (plain or TLS) owned by the JS thread and
//! polled by Node's libuv loop, RESP encoding and decoding, and the reconnect-and-resend
//! journal. It serves one server and the primary behind Sentinel; Redis Cluster and hosts
//! without libuv still go through `backend` (redis-rs on the I/O thread).

pub mod connection;
pub mod resp;
pub mod tls;
pub mod uv;
