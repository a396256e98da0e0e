//! Typed identifiers: a `CustomerId` can never be passed where a `ProductId` is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta] $name:ident),+ $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw numeric key, as stored in MariaDB.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<u64> for $name {
            fn from(raw: u64) -> Self {
                Self(raw)
            }
        }
    )+};
}

id_type! {
    /// Primary key of a row in `Customers`.
    CustomerId,
    /// Primary key of a customer's postal address.
    AddressId,
    /// Primary key of a row in `Categories`.
    CategoryId,
    /// Primary key of a row in `Products`.
    ProductId,
    /// Primary key of a row in `Services` (consultations).
    ServiceId,
    /// Primary key of a row in `Orders`.
    OrderId,
    /// Primary key of a row in `Order_Items`.
    OrderItemId,
    /// Primary key of a consultation booking.
    BookingId,
    /// Key of a review document in MongoDB.
    ReviewId,
}
