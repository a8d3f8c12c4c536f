//! What can go wrong with the order database: configuration mistakes and failed lookups.

use std::sync::Arc;
use std::time::Duration;

use super::Backend;

/// A configuration mistake, found before any connection is made.
#[derive(Debug, thiserror::Error)]
pub enum OrdersConfigError {
    #[error("orders.url: expected a URL starting with postgres://, postgresql://, mysql://, mariadb:// or sqlite://")]
    NotAUrl,
    #[error("orders.url: unsupported scheme `{0}://`; expected postgres://, postgresql://, mysql://, mariadb:// or sqlite://")]
    UnsupportedScheme(String),
    #[error("orders.url: not a valid {backend} URL: {reason}")]
    InvalidUrl { backend: Backend, reason: String },
    #[error("orders.query: no :email placeholder outside quotes and comments; write :email where the customer's email goes")]
    NoEmailPlaceholder,
    #[error("orders.max_connections: must be at least 1")]
    ZeroMaxConnections,
    #[error("orders.query_timeout: must be more than 0s")]
    ZeroQueryTimeout,
}

/// A lookup that failed. Cheap to clone (the cache hands one error to every waiting caller).
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrdersError {
    #[error("{backend} order database unavailable: {}", crate::connect_error::describe_db(.cause))]
    Unavailable {
        backend: Backend,
        cause: Arc<sqlx::Error>,
    },
    #[error("{backend} order database did not answer within {after:?}")]
    Timeout { backend: Backend, after: Duration },
    #[error("{backend} order query failed: {cause}")]
    Query {
        backend: Backend,
        cause: Arc<sqlx::Error>,
    },
    #[error("orders.query: the {backend} query returned several rows for one customer; it must return one (aggregate with sum()/count(), or group by the customer)")]
    SeveralRows { backend: Backend },
    #[error("orders.query: the {backend} result has no `{column}` column")]
    MissingColumn {
        backend: Backend,
        column: &'static str,
    },
    #[error("orders.query: the {backend} result column `{column}` has type {found}; expected numeric/decimal, an integer or real/double (cast it)")]
    ColumnType {
        backend: Backend,
        column: &'static str,
        found: String,
    },
    #[error("orders.query: the {backend} result column `{column}` cannot be read: {reason}")]
    ColumnValue {
        backend: Backend,
        column: &'static str,
        reason: String,
    },
}

impl OrdersError {
    /// No connection could be had from the pool.
    pub(super) fn unavailable(backend: Backend, e: sqlx::Error) -> Self {
        OrdersError::Unavailable {
            backend,
            cause: Arc::new(e),
        }
    }

    /// An error from a statement on an acquired connection: the database's own refusal is a query
    /// error, anything else (I/O, protocol) means the database went away.
    pub(super) fn from_statement(backend: Backend, e: sqlx::Error) -> Self {
        let cause = Arc::new(e);
        match *cause {
            sqlx::Error::Database(_) => OrdersError::Query { backend, cause },
            _ => OrdersError::Unavailable { backend, cause },
        }
    }
}
