//! Error kinds of the store. Each kind has a stable `code` that reaches JS as `err.code`.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Redis cannot be reached, or the connection dropped mid-call.
    NotConnected,
    /// The call did not settle within `commandTimeout`.
    Timeout,
    /// The caller passed something the store cannot use.
    BadArgument,
    /// Redis answered with an error.
    Redis,
    /// A key holds a value of another Redis type (`WRONGTYPE`).
    WrongType,
    /// Too many calls are waiting; the store sheds load instead of growing without bound.
    Overloaded,
    /// The store was closed.
    Closed,
    /// Redis refused the credentials, or the ACL user lacks a permission.
    Auth,
    /// A stored value cannot be read: it does not parse, was altered, or does not open with
    /// the store's encryption keys.
    BadData,
}

impl ErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotConnected => "ERR_NOT_CONNECTED",
            ErrorKind::Timeout => "ERR_TIMEOUT",
            ErrorKind::BadArgument => "ERR_BAD_ARGUMENT",
            ErrorKind::Redis => "ERR_REDIS",
            ErrorKind::WrongType => "ERR_WRONG_TYPE",
            ErrorKind::Overloaded => "ERR_OVERLOADED",
            ErrorKind::Closed => "ERR_CLOSED",
            ErrorKind::Auth => "ERR_AUTH",
            ErrorKind::BadData => "ERR_BAD_DATA",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    pub kind: ErrorKind,
    pub message: String,
    /// The topology is moving (a restart, a failover, a slot migration: `MOVED`, `ASK`,
    /// `TRYAGAIN`, `CLUSTERDOWN`, `READONLY`, `LOADING`, `MASTERDOWN`, a dropped connection),
    /// so the same call may succeed if sent again shortly.
    pub transient: bool,
}

impl StoreError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
            transient: kind == ErrorKind::NotConnected,
        }
    }

    pub fn bad_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadArgument, message)
    }

    pub fn timeout(after: std::time::Duration) -> Self {
        Self::new(
            ErrorKind::Timeout,
            format!("no reply from Redis within {} ms", after.as_millis()),
        )
    }

    /// True when the error says the server is out of reach, as opposed to a bad reply.
    pub fn is_connection_loss(&self) -> bool {
        matches!(self.kind, ErrorKind::NotConnected)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for StoreError {}

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        let auth = matches!(
            err.kind(),
            redis::ErrorKind::AuthenticationFailed
                | redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
        ) || err
            .code()
            .is_some_and(|c| c == "WRONGPASS" || c == "NOAUTH" || c == "NOPERM");
        let kind = if auth {
            ErrorKind::Auth
        } else if err.is_timeout() {
            ErrorKind::Timeout
        } else if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            // The sentinels know no healthy primary: during a failover, until one is promoted.
            || err.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel
        {
            ErrorKind::NotConnected
        } else if err.code() == Some("WRONGTYPE") {
            ErrorKind::WrongType
        } else {
            ErrorKind::Redis
        };
        let moving = matches!(
            err.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::Moved
                    | redis::ServerErrorKind::Ask
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::MasterDown
                    | redis::ServerErrorKind::ReadOnly
                    | redis::ServerErrorKind::BusyLoading
            )
        );
        let mut e = StoreError::new(kind, err.to_string());
        e.transient |= moving;
        e
    }
}

impl From<redis::ServerError> for StoreError {
    fn from(err: redis::ServerError) -> Self {
        StoreError::from(redis::RedisError::from(err))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(ErrorKind::NotConnected.code(), "ERR_NOT_CONNECTED");
        assert_eq!(ErrorKind::Timeout.code(), "ERR_TIMEOUT");
        assert_eq!(ErrorKind::BadArgument.code(), "ERR_BAD_ARGUMENT");
        assert_eq!(ErrorKind::Redis.code(), "ERR_REDIS");
    }

    #[test]
    fn io_errors_mean_not_connected() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = StoreError::from(redis::RedisError::from(io));
        assert_eq!(err.kind, ErrorKind::NotConnected);
        assert!(err.is_connection_loss());
    }
}
