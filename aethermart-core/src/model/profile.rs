//! The `customer_profiles` document: one per customer, addresses nested inside.

use super::validation::ValidationError;
use super::{Address, AddressId, AddressKind, CustomerId, Email};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An address as nested inside a customer profile (the owner is the enclosing document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileAddress {
    /// Key of the source row.
    pub address_id: AddressId,
    /// Shipping or billing.
    pub kind: AddressKind,
    /// Street and number.
    pub line1: String,
    /// Flat, floor, building.
    pub line2: Option<String>,
    /// City or town.
    pub city: String,
    /// State, county or province.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// Default address of its kind.
    pub is_default: bool,
}

impl From<&Address> for ProfileAddress {
    fn from(a: &Address) -> Self {
        Self {
            address_id: a.id,
            kind: a.kind,
            line1: a.line1.clone(),
            line2: a.line2.clone(),
            city: a.city.clone(),
            region: a.region.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
            is_default: a.is_default,
        }
    }
}

/// A customer's order history in brief, as a profile's `orders` field stores it: `{count,
/// lifetime_value (Decimal128), last_order_at (date or null)}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderSummary {
    /// Orders placed (cancelled ones included).
    #[serde(rename = "count")]
    pub order_count: u64,
    /// Sum of the totals of orders not cancelled or returned.
    #[serde(with = "super::stored::decimal128")]
    pub lifetime_value: Decimal,
    /// When the latest order was placed.
    #[serde(with = "super::stored::optional_date")]
    pub last_order_at: Option<DateTime<Utc>>,
}

/// How the customer likes to be contacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactChannel {
    /// E-mail (the default).
    #[default]
    Email,
    /// Text message.
    Sms,
    /// No marketing contact at all.
    None,
}

/// Preferences that live only in MongoDB (flexible, not part of the 3NF schema).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Preferences {
    /// Subscribed to the newsletter.
    pub newsletter: bool,
    /// Preferred contact channel.
    pub contact: ContactChannel,
    /// Category names the customer follows.
    pub favourite_categories: Vec<String>,
}

/// A `customer_profiles` document exactly as stored (the migration and the sync write it,
/// `projection::document::profile_fields` plus the MongoDB-only `preferences`): read one with
/// `collection::<CustomerProfile>("customer_profiles")`. Money is BSON `Decimal128`, times are
/// BSON dates (milliseconds). A profile whose relational fields have not been migrated yet
/// (only `preferences`) does not decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerProfile {
    /// The customer: the document's `_id`.
    #[serde(rename = "_id")]
    pub customer_id: CustomerId,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// E-mail address.
    pub email: Email,
    /// Phone number, if any.
    pub phone: Option<String>,
    /// All the customer's addresses.
    pub addresses: Vec<ProfileAddress>,
    /// Order history in brief.
    pub orders: OrderSummary,
    /// Flexible preferences (only in MongoDB; the defaults when none were set).
    #[serde(default)]
    pub preferences: Preferences,
    /// When the customer was created.
    #[serde(with = "super::stored::date")]
    pub created_at: DateTime<Utc>,
    /// When the customer's row last changed.
    #[serde(with = "super::stored::date")]
    pub updated_at: DateTime<Utc>,
}

impl CustomerProfile {
    /// Checks that at most one address per kind is the default.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for kind in [AddressKind::Shipping, AddressKind::Billing] {
            let defaults = self
                .addresses
                .iter()
                .filter(|a| a.kind == kind && a.is_default)
                .count();
            if defaults > 1 {
                return Err(ValidationError::UnknownVariant {
                    field: "customer_profile.addresses",
                    expected: "at most one default address per kind",
                });
            }
        }
        Ok(())
    }
}
