//! Customers and their postal addresses.

use super::validation::{self, ValidationError};
use super::{AddressId, CustomerId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A syntactically valid e-mail address, stored as given (trimmed).
///
/// The check is deliberately practical, not RFC 5322: one `@`, a non-empty local part without
/// spaces, and a domain with a dot whose labels are non-empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// The longest address the `Customers.email` column holds.
    pub const MAX_LEN: usize = 254;

    /// Parses and validates an address.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let value = raw.trim();
        let invalid = |reason| ValidationError::InvalidEmail { reason };
        if value.len() > Self::MAX_LEN {
            return Err(invalid("longer than 254 characters"));
        }
        let (local, domain) = value.split_once('@').ok_or_else(|| invalid("no '@'"))?;
        if local.is_empty() {
            return Err(invalid("nothing before '@'"));
        }
        if domain.contains('@') {
            return Err(invalid("more than one '@'"));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("contains whitespace"));
        }
        if !domain.contains('.') || domain.split('.').any(str::is_empty) {
            return Err(invalid("domain needs a dot between non-empty labels"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Email {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A row of `Customers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// Primary key.
    pub id: CustomerId,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Unique e-mail address.
    pub email: Email,
    /// Phone number as entered, if any.
    pub phone: Option<String>,
    /// When the customer signed up.
    pub created_at: DateTime<Utc>,
    /// Last change to the row.
    pub updated_at: DateTime<Utc>,
}

impl Customer {
    /// Checks the fields the type system cannot (names present and within column sizes).
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::text("customer.first_name", &self.first_name, 100)?;
        validation::text("customer.last_name", &self.last_name, 100)?;
        if let Some(phone) = &self.phone {
            validation::text("customer.phone", phone, 32)?;
        }
        Ok(())
    }
}

/// What an address is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// Where parcels go.
    Shipping,
    /// Where invoices go.
    Billing,
}

impl AddressKind {
    /// The name stored in MariaDB and MongoDB.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Shipping => "shipping",
            Self::Billing => "billing",
        }
    }
}

impl FromStr for AddressKind {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shipping" => Ok(Self::Shipping),
            "billing" => Ok(Self::Billing),
            _ => Err(ValidationError::UnknownVariant {
                field: "address.kind",
                expected: "shipping, billing",
            }),
        }
    }
}

/// A customer's postal address (a customer has one or more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    /// Primary key.
    pub id: AddressId,
    /// Owner of the address.
    pub customer_id: CustomerId,
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
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
    /// The customer's default address of this kind.
    pub is_default: bool,
}

impl Address {
    /// Checks required fields and the country code.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::text("address.line1", &self.line1, 200)?;
        validation::text("address.city", &self.city, 100)?;
        validation::text("address.postal_code", &self.postal_code, 20)?;
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ValidationError::UnknownVariant {
                field: "address.country",
                expected: "an ISO 3166-1 alpha-2 code such as DE or US",
            });
        }
        Ok(())
    }
}
