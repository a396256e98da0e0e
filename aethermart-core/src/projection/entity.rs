//! [`Entity`]: what becomes one MongoDB collection, and everything that follows from it (its
//! tables, key column, collection, sync queue).

use super::document::{CUSTOMER_PROFILES, ORDERS, PRODUCTS, SERVICES};
use serde::Serialize;
use std::fmt;

/// What is projected from MariaDB rows into MongoDB documents, one collection each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// `Customers` + addresses + order summary → `customer_profiles` (preferences kept).
    Customers,
    /// `Products` (+ category path, rating summary from `reviews`) → `products`.
    Products,
    /// `Services` (+ category path) → `services`.
    Services,
    /// `Orders` + `Order_Items` → `orders` with embedded lines.
    Orders,
}

impl Entity {
    /// Every entity, in the order they are reported.
    pub const ALL: [Self; 4] = [
        Self::Customers,
        Self::Products,
        Self::Services,
        Self::Orders,
    ];

    /// The entity's name (also its migration checkpoint key).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::Products => "products",
            Self::Services => "services",
            Self::Orders => "orders",
        }
    }

    /// Its position in [`Entity::ALL`] (for per-entity arrays).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Target collection.
    pub const fn collection(self) -> &'static str {
        match self {
            Self::Customers => CUSTOMER_PROFILES,
            Self::Products => PRODUCTS,
            Self::Services => SERVICES,
            Self::Orders => ORDERS,
        }
    }

    /// The table whose key is the document's `_id` (and pages a bulk read).
    pub const fn table(self) -> &'static str {
        match self {
            Self::Customers => "Customers",
            Self::Products => "Products",
            Self::Services => "Services",
            Self::Orders => "Orders",
        }
    }

    /// The key column of [`Entity::table`].
    pub const fn key_column(self) -> &'static str {
        match self {
            Self::Customers => "customer_id",
            Self::Products => "product_id",
            Self::Services => "service_id",
            Self::Orders => "order_id",
        }
    }

    /// Every source a document is built from, for lineage.
    pub const fn sources(self) -> &'static str {
        match self {
            Self::Customers => "Customers,Customer_Addresses,Orders",
            Self::Products => "Products,Categories,reviews",
            Self::Services => "Services,Categories",
            Self::Orders => "Orders,Order_Items,Products,Services",
        }
    }

    /// The trigger queue (`sql/0005_sync_capture.sql`) that names the documents to rebuild.
    pub const fn queue_table(self) -> &'static str {
        match self {
            Self::Customers => "customer_sync_queue",
            Self::Products => "product_sync_queue",
            Self::Services => "service_sync_queue",
            Self::Orders => "order_sync_queue",
        }
    }

    /// True when the document also holds fields that live only in MongoDB (a profile's
    /// `preferences`): it is then merged field by field, never replaced whole.
    pub const fn merges(self) -> bool {
        matches!(self, Self::Customers)
    }

    /// True when its documents need [`super::Lookups`] (category paths, rating summaries):
    /// products and services. The others are read with empty lookups.
    pub const fn uses_lookups(self) -> bool {
        matches!(self, Self::Products | Self::Services)
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, e) in Entity::ALL.into_iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }
}
