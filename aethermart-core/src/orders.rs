//! Typed wrappers over `sp_PlaceOrder` and `sp_CancelOrder`.
//!
//! The procedures own validation, locking and stock; every failure they raise has its own
//! `MYSQL_ERRNO`, mapped here to its own error variant carrying the server's message (which
//! names the product, the quantities, the consultant…).

use crate::model::{CustomerId, NewOrderLine, OrderId};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::mysql::{MySqlDatabaseError, MySqlPool};

/// `MYSQL_ERRNO` values raised by the schema's procedures and triggers.
pub mod errno {
    /// `sp_PlaceOrder`: the customer does not exist.
    pub const UNKNOWN_CUSTOMER: u16 = 30001;
    /// `sp_PlaceOrder`: a product does not exist or is inactive.
    pub const UNKNOWN_PRODUCT: u16 = 30002;
    /// `sp_PlaceOrder`: not enough stock for a product.
    pub const INSUFFICIENT_STOCK: u16 = 30003;
    /// `sp_PlaceOrder`: no lines.
    pub const EMPTY_ORDER: u16 = 30004;
    /// `sp_PlaceOrder`: a quantity is zero, negative, or not 1 on a service line.
    pub const BAD_QUANTITY: u16 = 30005;
    /// `sp_PlaceOrder`: a service does not exist or is inactive.
    pub const UNKNOWN_SERVICE: u16 = 30006;
    /// `sp_PlaceOrder`: the consultant is booked for an overlapping slot.
    pub const CONSULTANT_BOOKED: u16 = 30007;
    /// `sp_PlaceOrder`: the lines are not a JSON array of well-formed lines.
    pub const MALFORMED_LINES: u16 = 30008;
    /// `sp_PlaceOrder`, `sp_CancelOrder`: called inside an open transaction.
    pub const IN_TRANSACTION: u16 = 30009;
    /// `sp_CancelOrder`: the order does not exist.
    pub const UNKNOWN_ORDER: u16 = 30010;
    /// `sp_CancelOrder`: the order is shipped, delivered, returned or cancelled already.
    pub const NOT_CANCELLABLE: u16 = 30011;
    /// Trigger: a forbidden order status change.
    pub const BAD_STATUS_CHANGE: u16 = 30012;
    /// Trigger: an order line was updated.
    pub const LINE_IMMUTABLE: u16 = 30013;
    /// Trigger: a category move would create a cycle.
    pub const CATEGORY_CYCLE: u16 = 30014;
    /// Trigger: an order that is not cancelled was deleted.
    pub const DELETE_NOT_CANCELLED: u16 = 30015;
    /// `sp_PlaceOrder`: more than 100 lines.
    pub const TOO_MANY_LINES: u16 = 30016;
    /// `sp_PlaceOrder`: a consultation would start in the past.
    pub const SLOT_IN_THE_PAST: u16 = 30017;
    /// `sp_PlaceOrder`: a line total or the order total exceeds the money columns.
    pub const AMOUNT_TOO_LARGE: u16 = 30018;
    /// MariaDB: deadlock; retry the transaction.
    pub const DEADLOCK: u16 = 1213;
    /// MariaDB: lock wait timeout; retry the transaction.
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
}

/// An order that was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PlacedOrder {
    /// The new order's key.
    pub order_id: OrderId,
    /// Sum of its lines at order-time prices.
    pub total: Decimal,
}

/// Why `sp_PlaceOrder` refused an order. Nothing of the order was written, except possibly after
/// a lost connection (see [`PlaceOrderError::Database`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlaceOrderError {
    /// 30001.
    #[error("{0}")]
    UnknownCustomer(String),
    /// 30002.
    #[error("{0}")]
    UnknownProduct(String),
    /// 30003.
    #[error("{0}")]
    InsufficientStock(String),
    /// 30004.
    #[error("{0}")]
    EmptyOrder(String),
    /// 30005.
    #[error("{0}")]
    BadQuantity(String),
    /// 30006.
    #[error("{0}")]
    UnknownService(String),
    /// 30007.
    #[error("{0}")]
    ConsultantBooked(String),
    /// 30008.
    #[error("{0}")]
    MalformedLines(String),
    /// 30009: the connection had an open transaction.
    #[error("{0}")]
    InTransaction(String),
    /// 30016: more than 100 lines.
    #[error("{0}")]
    TooManyLines(String),
    /// 30017: a consultation would start in the past (the server's UTC clock).
    #[error("{0}")]
    SlotInThePast(String),
    /// 30018: a line total or the order total exceeds the money columns.
    #[error("{0}")]
    AmountTooLarge(String),
    /// Any other server error. After a lost connection the outcome is unknown: the order may
    /// have been committed, so look it up before placing it again.
    #[error("placing the order failed: {0}")]
    Database(#[source] sqlx::Error),
}

impl PlaceOrderError {
    /// True when nothing was written and the same call may succeed again (deadlock, lock wait
    /// timeout, no free connection).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Database(e) if crate::retry::mariadb_not_committed(e))
    }
}

/// Why `sp_CancelOrder` refused. Nothing was changed in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CancelOrderError {
    /// 30010.
    #[error("{0}")]
    UnknownOrder(String),
    /// 30011.
    #[error("{0}")]
    NotCancellable(String),
    /// 30009: the connection had an open transaction.
    #[error("{0}")]
    InTransaction(String),
    /// Any other server error.
    #[error("cancelling the order failed: {0}")]
    Database(#[source] sqlx::Error),
}

impl CancelOrderError {
    /// True when nothing was written and the same call may succeed again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Database(e) if crate::retry::mariadb_not_committed(e))
    }
}

/// The server's `MYSQL_ERRNO` and message, when `err` is a server error.
pub fn server_error(err: &sqlx::Error) -> Option<(u16, &str)> {
    match err {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(|e| (e.number(), e.message())),
        _ => None,
    }
}

/// The JSON `sp_PlaceOrder` takes: times as `YYYY-MM-DD HH:MM:SS.ffffff` in UTC.
fn lines_json(lines: &[NewOrderLine]) -> String {
    let lines: Vec<Value> = lines
        .iter()
        .map(|line| match *line {
            NewOrderLine::Product {
                product_id,
                quantity,
            } => {
                json!({ "product_id": product_id.get(), "quantity": quantity })
            }
            NewOrderLine::Service {
                service_id,
                starts_at,
            } => json!({
                "service_id": service_id.get(),
                "starts_at": starts_at.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            }),
        })
        .collect();
    Value::Array(lines).to_string()
}

/// Places an order through `sp_PlaceOrder`, atomically: either the order, its lines, the stock
/// decrements and the bookings are all committed, or nothing is.
pub async fn place_order(
    pool: &MySqlPool,
    customer: CustomerId,
    lines: &[NewOrderLine],
) -> Result<PlacedOrder, PlaceOrderError> {
    let row = sqlx::query("CALL sp_PlaceOrder(?, ?)")
        .bind(customer.get())
        .bind(lines_json(lines))
        .fetch_one(pool)
        .await
        .map_err(place_order_error)?;
    let order_id: u64 = row.try_get(0).map_err(PlaceOrderError::Database)?;
    let total: Decimal = row.try_get(1).map_err(PlaceOrderError::Database)?;
    Ok(PlacedOrder {
        order_id: OrderId(order_id),
        total,
    })
}

fn place_order_error(err: sqlx::Error) -> PlaceOrderError {
    let Some((number, message)) = server_error(&err) else {
        return PlaceOrderError::Database(err);
    };
    let message = message.to_owned();
    match number {
        errno::UNKNOWN_CUSTOMER => PlaceOrderError::UnknownCustomer(message),
        errno::UNKNOWN_PRODUCT => PlaceOrderError::UnknownProduct(message),
        errno::INSUFFICIENT_STOCK => PlaceOrderError::InsufficientStock(message),
        errno::EMPTY_ORDER => PlaceOrderError::EmptyOrder(message),
        errno::BAD_QUANTITY => PlaceOrderError::BadQuantity(message),
        errno::UNKNOWN_SERVICE => PlaceOrderError::UnknownService(message),
        errno::CONSULTANT_BOOKED => PlaceOrderError::ConsultantBooked(message),
        errno::MALFORMED_LINES => PlaceOrderError::MalformedLines(message),
        errno::IN_TRANSACTION => PlaceOrderError::InTransaction(message),
        errno::TOO_MANY_LINES => PlaceOrderError::TooManyLines(message),
        errno::SLOT_IN_THE_PAST => PlaceOrderError::SlotInThePast(message),
        errno::AMOUNT_TOO_LARGE => PlaceOrderError::AmountTooLarge(message),
        _ => PlaceOrderError::Database(err),
    }
}

/// Cancels a pending or paid order through `sp_CancelOrder`: stock goes back, bookings are freed.
pub async fn cancel_order(pool: &MySqlPool, order: OrderId) -> Result<(), CancelOrderError> {
    let result = sqlx::query("CALL sp_CancelOrder(?)")
        .bind(order.get())
        .execute(pool)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(err) => Err(match server_error(&err) {
            Some((errno::UNKNOWN_ORDER, m)) => CancelOrderError::UnknownOrder(m.to_owned()),
            Some((errno::NOT_CANCELLABLE, m)) => CancelOrderError::NotCancellable(m.to_owned()),
            Some((errno::IN_TRANSACTION, m)) => CancelOrderError::InTransaction(m.to_owned()),
            _ => CancelOrderError::Database(err),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ProductId, ServiceId};
    use chrono::{TimeZone, Utc};

    #[test]
    fn lines_are_encoded_the_way_the_procedure_reads_them() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 10, 30, 0).unwrap();
        let json = lines_json(&[
            NewOrderLine::Product {
                product_id: ProductId(7),
                quantity: 2,
            },
            NewOrderLine::Service {
                service_id: ServiceId(3),
                starts_at: at,
            },
        ]);
        assert_eq!(
            json,
            r#"[{"product_id":7,"quantity":2},{"service_id":3,"starts_at":"2026-12-01 10:30:00.000000"}]"#
        );
    }
}
