//! The typed errors returned by model validation.

use rust_decimal::Decimal;

/// Why a model value was rejected. Each variant names the field and the rule it breaks, never
/// the value: these errors reach logs, dead letters and lineage, and the values are customer
/// data (an e-mail address, a name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The text is not a plausible e-mail address (`local@domain.tld`).
    #[error("customer.email is not a valid e-mail address: {reason}")]
    InvalidEmail {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A money amount is below zero.
    #[error("{field} must not be negative")]
    NegativeAmount {
        /// The field holding the amount, e.g. `product.price`.
        field: &'static str,
    },
    /// A quantity or duration is zero.
    #[error("{field} must be positive")]
    NotPositive {
        /// The field, e.g. `order_item.quantity`.
        field: &'static str,
    },
    /// A review rating outside 1..=5.
    #[error("review.rating must be between 1 and 5")]
    RatingOutOfRange,
    /// A required text field is empty or only whitespace.
    #[error("{field} must not be empty")]
    Empty {
        /// The field, e.g. `customer.first_name`.
        field: &'static str,
    },
    /// A text field is longer than its column allows.
    #[error("{field} is {len} characters long, at most {max} allowed")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length in characters.
        len: usize,
        /// The column's limit.
        max: usize,
    },
    /// A time range whose end is not after its start.
    #[error("{field}: the end is not after the start")]
    EmptyPeriod {
        /// The field, e.g. `booking`.
        field: &'static str,
    },
    /// A category tree with a cycle or a dangling parent.
    #[error("category {category}: {reason}")]
    BadCategoryTree {
        /// The category where the problem was found.
        category: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A value that is not one of the allowed names (status, media type, ...).
    #[error("{field} is not one of {expected}")]
    UnknownVariant {
        /// The field, e.g. `order.status`.
        field: &'static str,
        /// The allowed names, comma separated.
        expected: &'static str,
    },
}

/// Checks that `value` is not blank and at most `max` characters.
pub(crate) fn text(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::Empty { field });
    }
    let len = value.chars().count();
    if len > max {
        return Err(ValidationError::TooLong { field, len, max });
    }
    Ok(())
}

/// Checks that a money amount is not negative.
pub(crate) fn non_negative(field: &'static str, value: Decimal) -> Result<(), ValidationError> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(ValidationError::NegativeAmount { field });
    }
    Ok(())
}

/// Checks that a count is at least one.
pub(crate) fn positive(field: &'static str, value: u32) -> Result<(), ValidationError> {
    if value == 0 {
        return Err(ValidationError::NotPositive { field });
    }
    Ok(())
}
