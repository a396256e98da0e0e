//! Row → document mappings for MongoDB (pure functions, no I/O).
//!
//! Ids become `_id` (as 64-bit integers), times become BSON dates (milliseconds), money
//! becomes `Decimal128` (exact, and ordered numerically by MongoDB).

use crate::model::{
    Address, ContactChannel, Customer, CustomerId, LineItem, MediaKind, Order, OrderItem,
    OrderSummary, Preferences, Product, Review, Service,
};
use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, Decimal128, Document, doc};
use rust_decimal::Decimal;

/// Collection of review documents.
pub const REVIEWS: &str = "reviews";
/// Collection of customer profile documents.
pub const CUSTOMER_PROFILES: &str = "customer_profiles";
/// Collection of product documents.
pub const PRODUCTS: &str = "products";
/// Collection of service documents.
pub const SERVICES: &str = "services";
/// Collection of order documents.
pub const ORDERS: &str = "orders";

/// Money as BSON `Decimal128`, exactly (a `Decimal` always has a valid decimal text form).
pub fn money(amount: Decimal) -> Bson {
    amount
        .to_string()
        .parse::<Decimal128>()
        .map_or(Bson::Null, Bson::Decimal128)
}

/// A product's rating summary from its reviews.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RatingSummary {
    /// Number of reviews.
    pub count: u64,
    /// Mean stars, rounded to two decimals (0 without reviews).
    pub average: f64,
}

fn text_or_null(value: Option<&str>) -> Bson {
    value.map_or(Bson::Null, |v| Bson::String(v.to_owned()))
}

/// The relational part of a `customer_profiles` document, set on top of whatever MongoDB-only
/// fields (preferences) the document already has: `{first_name, last_name, email, phone,
/// addresses: [...], orders: {count, lifetime_value, last_order_at}, created_at, updated_at}`.
pub fn profile_fields(
    customer: &Customer,
    addresses: &[Address],
    orders: &OrderSummary,
) -> Document {
    let addresses: Vec<Bson> = addresses
        .iter()
        .map(|a| {
            Bson::Document(doc! {
                "address_id": key(a.id.get()),
                "kind": a.kind.as_str(),
                "line1": &a.line1,
                "line2": text_or_null(a.line2.as_deref()),
                "city": &a.city,
                "region": text_or_null(a.region.as_deref()),
                "postal_code": &a.postal_code,
                "country": &a.country,
                "is_default": a.is_default,
            })
        })
        .collect();
    doc! {
        "first_name": &customer.first_name,
        "last_name": &customer.last_name,
        "email": customer.email.as_str(),
        "phone": text_or_null(customer.phone.as_deref()),
        "addresses": addresses,
        "orders": {
            "count": i64::try_from(orders.order_count).unwrap_or(i64::MAX),
            "lifetime_value": money(orders.lifetime_value),
            "last_order_at": orders.last_order_at.map_or(Bson::Null, |t| Bson::DateTime(date(t))),
        },
        "created_at": date(customer.created_at),
        "updated_at": date(customer.updated_at),
    }
}

/// A `products` document: `{_id, sku, name, description, category: {id, path}, price, stock,
/// is_active, rating: {count, average}}`.
pub fn product_document(
    product: &Product,
    category_path: &[&str],
    rating: RatingSummary,
) -> Document {
    doc! {
        "_id": key(product.id.get()),
        "sku": &product.sku,
        "name": &product.name,
        "description": &product.description,
        "category": { "id": key(product.category_id.get()), "path": category_path },
        "price": money(product.price),
        "stock": i64::from(product.stock),
        "is_active": product.is_active,
        "rating": { "count": i64::try_from(rating.count).unwrap_or(i64::MAX), "average": rating.average },
    }
}

/// A `services` document: `{_id, code, name, description, category: {id, path},
/// duration_minutes, price, consultant, is_active}`.
pub fn service_document(service: &Service, category_path: &[&str]) -> Document {
    doc! {
        "_id": key(service.id.get()),
        "code": &service.code,
        "name": &service.name,
        "description": &service.description,
        "category": { "id": key(service.category_id.get()), "path": category_path },
        "duration_minutes": i64::from(service.duration_minutes),
        "price": money(service.price),
        "consultant": &service.consultant,
        "is_active": service.is_active,
    }
}

/// An `orders` document with its lines embedded, each a snapshot of what was sold:
/// `{_id, customer_id, status, total, placed_at, updated_at, lines: [{line_id, kind, item_id,
/// name, quantity, unit_price, line_total}]}`. `names` gives each line's product or service name.
pub fn order_document(order: &Order, lines: &[(OrderItem, String)]) -> Document {
    let lines: Vec<Bson> = lines
        .iter()
        .map(|(item, name)| {
            let (kind, id) = match item.item {
                LineItem::Product(p) => ("product", p.get()),
                LineItem::Service(s) => ("service", s.get()),
            };
            Bson::Document(doc! {
                "line_id": key(item.id.get()),
                "kind": kind,
                "item_id": key(id),
                "name": name,
                "quantity": i64::from(item.quantity),
                "unit_price": money(item.unit_price),
                "line_total": money(item.line_total()),
            })
        })
        .collect();
    doc! {
        "_id": key(order.id.get()),
        "customer_id": key(order.customer_id.get()),
        "status": order.status.as_str(),
        "total": money(order.total),
        "placed_at": date(order.placed_at),
        "updated_at": date(order.updated_at),
        "lines": lines,
    }
}

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
    use rust_decimal::Decimal;

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

    proptest::proptest! {
        /// Money survives the trip through Decimal128 exactly.
        #[test]
        fn money_is_exact_in_decimal128(cents in -10_000_000_000i64..10_000_000_000, scale in 0u32..=4) {
            let amount = Decimal::new(cents, scale);
            let Bson::Decimal128(d) = money(amount) else { panic!("not a Decimal128") };
            proptest::prop_assert_eq!(d.to_string().parse::<Decimal>().unwrap(), amount);
        }
    }

    #[test]
    fn orders_embed_their_lines_with_order_time_prices() {
        use crate::model::{OrderId, OrderItemId, OrderStatus, ServiceId};
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap();
        let order = Order {
            id: OrderId(7),
            customer_id: CustomerId(2),
            status: OrderStatus::Paid,
            total: Decimal::new(32_998, 2),
            placed_at: t,
            updated_at: t,
        };
        let lines = vec![
            (
                OrderItem {
                    id: OrderItemId(1),
                    order_id: OrderId(7),
                    item: LineItem::Product(ProductId(5)),
                    quantity: 2,
                    unit_price: Decimal::new(11_999, 2),
                },
                "Mouse".to_owned(),
            ),
            (
                OrderItem {
                    id: OrderItemId(2),
                    order_id: OrderId(7),
                    item: LineItem::Service(ServiceId(1)),
                    quantity: 1,
                    unit_price: Decimal::new(8_999, 2),
                },
                "Build consultation".to_owned(),
            ),
        ];
        let d = order_document(&order, &lines);
        assert_eq!(d.get_i64("_id").unwrap(), 7);
        assert_eq!(d.get_str("status").unwrap(), "paid");
        let embedded = d.get_array("lines").unwrap();
        assert_eq!(embedded.len(), 2);
        let first = embedded[0].as_document().unwrap();
        assert_eq!(
            (
                first.get_str("kind").unwrap(),
                first.get_i64("item_id").unwrap(),
                first.get_str("name").unwrap()
            ),
            ("product", 5, "Mouse")
        );
        assert_eq!(
            first.get("line_total"),
            Some(&money(Decimal::new(23_998, 2)))
        );
        assert_eq!(
            embedded[1].as_document().unwrap().get_str("kind").unwrap(),
            "service"
        );
        assert_eq!(d.get("total"), Some(&money(order.total)));
    }

    #[test]
    fn products_carry_their_category_path_and_rating() {
        use crate::model::CategoryId;
        let p = Product {
            id: ProductId(3),
            sku: "GPU-3".into(),
            name: "RTX".into(),
            description: String::new(),
            category_id: CategoryId(9),
            price: Decimal::new(59_999, 2),
            stock: 4,
            is_active: true,
        };
        let d = product_document(
            &p,
            &["Components", "Graphics Cards"],
            RatingSummary {
                count: 12,
                average: 4.25,
            },
        );
        assert_eq!(
            d.get_document("category")
                .unwrap()
                .get_array("path")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            d.get_document("rating").unwrap().get_i64("count").unwrap(),
            12
        );
        assert!(matches!(d.get("price"), Some(Bson::Decimal128(_))));
    }

    #[test]
    fn profiles_nest_addresses_and_summarise_orders() {
        use crate::model::{AddressId, AddressKind, Email};
        let t = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let c = Customer {
            id: CustomerId(4),
            first_name: "Ana".into(),
            last_name: "Ruiz".into(),
            email: Email::parse("ana@example.com").unwrap(),
            phone: None,
            created_at: t,
            updated_at: t,
        };
        let a = Address {
            id: AddressId(10),
            customer_id: CustomerId(4),
            kind: AddressKind::Billing,
            line1: "1 Calle".into(),
            line2: None,
            city: "Madrid".into(),
            region: None,
            postal_code: "28001".into(),
            country: "ES".into(),
            is_default: true,
        };
        let d = profile_fields(
            &c,
            &[a],
            &OrderSummary {
                order_count: 2,
                lifetime_value: Decimal::new(1_000, 2),
                last_order_at: Some(t),
            },
        );
        assert!(
            d.get("_id").is_none(),
            "merged into the profile by _id, not carrying it"
        );
        let addresses = d.get_array("addresses").unwrap();
        assert_eq!(
            addresses[0].as_document().unwrap().get_str("kind").unwrap(),
            "billing"
        );
        assert_eq!(
            d.get_document("orders").unwrap().get_i64("count").unwrap(),
            2
        );
        assert_eq!(d.get("phone"), Some(&Bson::Null));

        // The stored document (fields, _id, preferences) is exactly a `CustomerProfile`.
        let prefs = Preferences {
            newsletter: true,
            contact: ContactChannel::Email,
            favourite_categories: vec!["Audio".into()],
        };
        let mut stored = preferences_document(c.id, &prefs);
        stored.extend(d);
        let profile: crate::model::CustomerProfile =
            bson::from_document(stored.clone()).expect("a stored profile decodes");
        assert_eq!(profile.customer_id, c.id);
        assert_eq!(profile.orders.lifetime_value, Decimal::new(1_000, 2));
        assert_eq!((profile.created_at, &profile.preferences), (t, &prefs));
        let encoded = bson::to_document(&profile).unwrap();
        assert_eq!(
            crate::projection::content_hash(&encoded),
            crate::projection::content_hash(&stored),
            "encodes to the same document: {encoded} vs {stored}"
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
