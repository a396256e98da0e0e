//! Orders, their lines, and consultation bookings.

use super::validation::{self, ValidationError};
use super::{BookingId, CustomerId, OrderId, OrderItemId, ProductId, ServiceId};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where an order is in its life. Stored as the lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, not yet paid.
    Pending,
    /// Paid, waiting to ship.
    Paid,
    /// Handed to the carrier.
    Shipped,
    /// Received by the customer.
    Delivered,
    /// Cancelled before delivery; stock was put back.
    Cancelled,
    /// Sent back after delivery.
    Returned,
}

impl OrderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Paid,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
        Self::Returned,
    ];

    /// The name stored in MariaDB and MongoDB.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Returned => "returned",
        }
    }

    /// Whether an order in this status may still be cancelled.
    pub const fn is_cancellable(self) -> bool {
        matches!(self, Self::Pending | Self::Paid)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(ValidationError::UnknownVariant {
                field: "order.status",
                expected: "pending, paid, shipped, delivered, cancelled, returned",
            })
    }
}

/// A row of `Orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Primary key.
    pub id: OrderId,
    /// Who placed it.
    pub customer_id: CustomerId,
    /// Lifecycle status.
    pub status: OrderStatus,
    /// Sum of the lines' totals, computed when the order was placed.
    pub total: Decimal,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
    /// Last change to the row.
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// Checks that the total is not negative.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::non_negative("order.total", self.total)
    }
}

/// What an order line sells: a product or a service, never both, never neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum LineItem {
    /// A physical product.
    Product(ProductId),
    /// A consultation service.
    Service(ServiceId),
}

/// A row of `Order_Items`, with the price captured when the order was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    /// Primary key.
    pub id: OrderItemId,
    /// The order this line belongs to.
    pub order_id: OrderId,
    /// The product or service sold.
    pub item: LineItem,
    /// Units sold (always 1 for a service line).
    pub quantity: u32,
    /// Price of one unit at order time.
    pub unit_price: Decimal,
}

impl OrderItem {
    /// Checks a positive quantity, a non-negative price, and one session per service line.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::positive("order_item.quantity", self.quantity)?;
        validation::non_negative("order_item.unit_price", self.unit_price)?;
        if matches!(self.item, LineItem::Service(_)) && self.quantity != 1 {
            return Err(ValidationError::NotPositive {
                field: "order_item.quantity of a service line (must be exactly 1)",
            });
        }
        Ok(())
    }

    /// `quantity × unit_price`.
    pub fn line_total(&self) -> Decimal {
        self.unit_price * Decimal::from(self.quantity)
    }
}

/// A line of an order about to be placed (input of `sp_PlaceOrder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NewOrderLine {
    /// Buy `quantity` units of a product.
    Product {
        /// What to buy.
        product_id: ProductId,
        /// How many units.
        quantity: u32,
    },
    /// Book one session of a consultation starting at `starts_at`.
    Service {
        /// What to book.
        service_id: ServiceId,
        /// Start of the slot; it lasts the service's duration.
        starts_at: DateTime<Utc>,
    },
}

impl NewOrderLine {
    /// Checks a positive quantity.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match *self {
            Self::Product { quantity, .. } => validation::positive("line.quantity", quantity),
            Self::Service { .. } => Ok(()),
        }
    }
}

/// A consultant's time slot booked by a service line. The database guarantees that a consultant
/// is never booked twice for overlapping periods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceBooking {
    /// Primary key.
    pub id: BookingId,
    /// The order line that booked the slot.
    pub order_item_id: OrderItemId,
    /// The booked service.
    pub service_id: ServiceId,
    /// Who delivers the session.
    pub consultant: String,
    /// Start of the slot.
    pub starts_at: DateTime<Utc>,
    /// End of the slot (exclusive).
    pub ends_at: DateTime<Utc>,
}

impl ServiceBooking {
    /// Checks that the slot has a positive length.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::text("booking.consultant", &self.consultant, 100)?;
        if self.ends_at <= self.starts_at {
            return Err(ValidationError::EmptyPeriod { field: "booking" });
        }
        Ok(())
    }
}
