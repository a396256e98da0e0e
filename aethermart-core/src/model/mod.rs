//! The typed domain: customers, the catalogue, orders, bookings, reviews and profiles.
//!
//! Money is [`rust_decimal::Decimal`] everywhere (`DECIMAL(12,2)` in MariaDB), never a float.
//! Every type is `serde`-serialisable; `validate()` checks what the types alone cannot and returns
//! a [`ValidationError`] that names the field.

mod catalog;
mod customer;
mod ids;
mod order;
mod profile;
mod review;
pub(crate) mod stored;
mod validation;

pub use catalog::{Category, CategoryTree, Product, Service};
pub use customer::{Address, AddressKind, Customer, Email};
pub use ids::{
    AddressId, BookingId, CategoryId, CustomerId, OrderId, OrderItemId, ProductId, ReviewId,
    ServiceId,
};
pub use order::{LineItem, NewOrderLine, Order, OrderItem, OrderStatus, ServiceBooking};
pub use profile::{ContactChannel, CustomerProfile, OrderSummary, Preferences, ProfileAddress};
pub use review::{Media, MediaKind, Rating, Review};
pub use validation::ValidationError;

#[cfg(test)]
mod tests;
