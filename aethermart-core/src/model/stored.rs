//! Serde formats of the stored documents: money as BSON `Decimal128`, times as BSON dates
//! (milliseconds), so a model type describes a document exactly as MongoDB holds it.

/// `Decimal` ⇄ BSON `Decimal128` (exact both ways).
pub(crate) mod decimal128 {
    use mongodb::bson::Decimal128;
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        let d: Decimal128 = value
            .to_string()
            .parse()
            .map_err(serde::ser::Error::custom)?;
        d.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        to_decimal(&Decimal128::deserialize(d)?)
            .ok_or_else(|| D::Error::custom("a Decimal128 beyond the range of a decimal"))
    }

    /// The exact value of `d`, in plain or exponent notation; `None` beyond a `Decimal`'s range.
    pub(crate) fn to_decimal(d: &Decimal128) -> Option<Decimal> {
        let text = d.to_string();
        text.parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(&text))
            .ok()
    }
}

/// `DateTime<Utc>` ⇄ BSON date (millisecond precision).
pub(crate) mod date {
    use chrono::{DateTime, Utc};
    use mongodb::bson;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(value: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        bson::DateTime::from_millis(value.timestamp_millis()).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let millis = bson::DateTime::deserialize(d)?.timestamp_millis();
        DateTime::from_timestamp_millis(millis).ok_or_else(|| D::Error::custom("date out of range"))
    }
}

/// `Option<DateTime<Utc>>` ⇄ BSON date or null.
pub(crate) mod optional_date {
    use chrono::{DateTime, Utc};
    use mongodb::bson;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        value
            .map(|t| bson::DateTime::from_millis(t.timestamp_millis()))
            .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<bson::DateTime>::deserialize(d)?
            .map(|t| {
                DateTime::from_timestamp_millis(t.timestamp_millis())
                    .ok_or_else(|| D::Error::custom("date out of range"))
            })
            .transpose()
    }
}
