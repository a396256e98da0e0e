//! Row → document mappings for MongoDB (pure functions, no I/O).
//!
//! Ids become `_id` (as 64-bit integers), times become BSON dates, money stays exact
//! (`Decimal128` is not used: amounts are kept as strings where they appear).

use crate::model::{ContactChannel, CustomerId, MediaKind, Preferences, Review};
use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, Document, doc};

/// Collection of review documents.
pub const REVIEWS: &str = "reviews";
/// Collection of customer profile documents.
pub const CUSTOMER_PROFILES: &str = "customer_profiles";

/// A key as BSON: ids are far below `i64::MAX`; larger ones saturate rather than wrap.
pub fn key(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// A time as a BSON date (millisecond precision).
pub fn date(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

/// A `reviews` document: `{_id, product_id, customer_id, rating, title, text, media: [{type,
/// url, caption}], created_at}`.
pub fn review_document(review: &Review) -> Document {
    let media: Vec<Bson> = review
        .media
        .iter()
        .map(|m| {
            Bson::Document(doc! {
                "type": match m.kind { MediaKind::Image => "image", MediaKind::Video => "video" },
                "url": &m.url,
                "caption": m.caption.as_deref().map_or(Bson::Null, |c| Bson::String(c.to_owned())),
            })
        })
        .collect();
    doc! {
        "_id": key(review.id.get()),
        "product_id": key(review.product_id.get()),
        "customer_id": key(review.customer_id.get()),
        "rating": i32::from(review.rating.stars()),
        "title": &review.title,
        "text": &review.text,
        "media": media,
        "created_at": date(review.created_at),
    }
}

/// The MongoDB-only part of a `customer_profiles` document: `{_id, preferences: {newsletter,
/// contact, favourite_categories}}`. The relational part (names, addresses, order summary) is
/// added by the migration.
pub fn preferences_document(customer: CustomerId, preferences: &Preferences) -> Document {
    doc! {
        "_id": key(customer.get()),
        "preferences": {
            "newsletter": preferences.newsletter,
            "contact": match preferences.contact {
                ContactChannel::Email => "email",
                ContactChannel::Sms => "sms",
                ContactChannel::None => "none",
            },
            "favourite_categories": &preferences.favourite_categories,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Media, ProductId, Rating, ReviewId};
    use chrono::TimeZone;

    #[test]
    fn reviews_map_to_native_documents() {
        let review = Review {
            id: ReviewId(81),
            product_id: ProductId(5),
            customer_id: CustomerId(9),
            rating: Rating::new(4).unwrap(),
            title: "Great value".into(),
            text: "Quiet and fast.".into(),
            media: vec![Media {
                kind: MediaKind::Video,
                url: "https://x.example/v.mp4".into(),
                caption: None,
            }],
            created_at: Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap(),
        };
        let d = review_document(&review);
        assert_eq!(d.get_i64("_id").unwrap(), 81);
        assert_eq!(d.get_i32("rating").unwrap(), 4);
        let media = d.get_array("media").unwrap();
        let first = media[0].as_document().unwrap();
        assert_eq!(first.get_str("type").unwrap(), "video");
        assert_eq!(first.get("caption"), Some(&Bson::Null));
        assert_eq!(
            d.get_datetime("created_at").unwrap().timestamp_millis(),
            review.created_at.timestamp_millis()
        );
    }

    #[test]
    fn preferences_map_under_the_customer_id() {
        let p = Preferences {
            newsletter: true,
            contact: ContactChannel::Sms,
            favourite_categories: vec!["Audio".into()],
        };
        let d = preferences_document(CustomerId(3), &p);
        assert_eq!(d.get_i64("_id").unwrap(), 3);
        let prefs = d.get_document("preferences").unwrap();
        assert_eq!(prefs.get_str("contact").unwrap(), "sms");
        assert!(prefs.get_bool("newsletter").unwrap());
    }
}
