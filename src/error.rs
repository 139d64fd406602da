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
    /// A fault inside the store itself (a caught panic): the call failed, the connection
    /// started again, the process lives.
    Internal,
    /// The server is older than a command or option the call needs, and refused it as an
    /// older server does: the message names the command and the Redis version it needs.
    ServerVersion,
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
            ErrorKind::Internal => "ERR_INTERNAL",
            ErrorKind::ServerVersion => "ERR_SERVER_VERSION",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StoreError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadArgument, message)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for StoreError {}

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
        assert_eq!(ErrorKind::ServerVersion.code(), "ERR_SERVER_VERSION");
    }
}
