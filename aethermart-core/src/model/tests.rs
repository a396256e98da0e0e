use super::*;
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let json = serde_json::to_string(value).expect("serialise");
    let back: T = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(&back, value, "serde round trip changed the value: {json}");
}

fn money() -> impl Strategy<Value = Decimal> {
    (0i64..10_000_000).prop_map(|cents| Decimal::new(cents, 2))
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (946_684_800i64..4_102_444_800).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

fn email() -> impl Strategy<Value = Email> {
    (
        "[a-z][a-z0-9._+-]{0,20}",
        "[a-z][a-z0-9-]{0,15}",
        "[a-z]{2,6}",
    )
        .prop_map(|(l, d, t)| Email::parse(&format!("{l}@{d}.{t}")).expect("generated email"))
}

fn text() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9 äöüé'-]{0,30}"
}

prop_compose! {
    fn customer()(id in any::<u64>(), first in text(), last in text(), email in email(),
                  phone in proptest::option::of("[+][0-9]{1,3} [0-9 ]{4,15}[0-9]"), created in time(), updated in time())
                  -> Customer {
        Customer { id: CustomerId(id), first_name: first, last_name: last, email, phone,
                   created_at: created, updated_at: updated }
    }
}

prop_compose! {
    fn address()(id in any::<u64>(), cid in any::<u64>(), billing in any::<bool>(), line1 in text(),
                 line2 in proptest::option::of(text()), city in text(), region in proptest::option::of(text()),
                 postal in "[0-9A-Z]{4,8}", country in "[A-Z]{2}", is_default in any::<bool>()) -> Address {
        Address { id: AddressId(id), customer_id: CustomerId(cid),
                  kind: if billing { AddressKind::Billing } else { AddressKind::Shipping },
                  line1, line2, city, region, postal_code: postal, country, is_default }
    }
}

prop_compose! {
    fn product()(id in any::<u64>(), sku in "[A-Z]{3}-[0-9]{6}", name in text(), description in text(),
                 cat in any::<u64>(), price in money(), stock in any::<u32>(), is_active in any::<bool>()) -> Product {
        Product { id: ProductId(id), sku, name, description, category_id: CategoryId(cat), price, stock, is_active }
    }
}

prop_compose! {
    fn service()(id in any::<u64>(), code in "SRV-[A-Z]{4}", name in text(), description in text(),
                 cat in any::<u64>(), minutes in 1u32..480, price in money(), consultant in text(),
                 is_active in any::<bool>()) -> Service {
        Service { id: ServiceId(id), code, name, description, category_id: CategoryId(cat),
                  duration_minutes: minutes, price, consultant, is_active }
    }
}

fn status() -> impl Strategy<Value = OrderStatus> {
    proptest::sample::select(OrderStatus::ALL.to_vec())
}

prop_compose! {
    fn order()(id in any::<u64>(), cid in any::<u64>(), status in status(), total in money(),
               placed in time(), updated in time()) -> Order {
        Order { id: OrderId(id), customer_id: CustomerId(cid), status, total, placed_at: placed, updated_at: updated }
    }
}

prop_compose! {
    fn order_item()(id in any::<u64>(), oid in any::<u64>(), is_service in any::<bool>(), target in any::<u64>(),
                    quantity in 1u32..100, unit_price in money()) -> OrderItem {
        let item = if is_service { LineItem::Service(ServiceId(target)) } else { LineItem::Product(ProductId(target)) };
        OrderItem { id: OrderItemId(id), order_id: OrderId(oid), item, quantity, unit_price }
    }
}

prop_compose! {
    fn media()(video in any::<bool>(), path in "[a-z0-9]{1,20}", caption in proptest::option::of(text())) -> Media {
        Media { kind: if video { MediaKind::Video } else { MediaKind::Image },
                url: format!("https://cdn.aethermart.example/{path}"), caption }
    }
}

prop_compose! {
    fn review()(id in any::<u64>(), pid in any::<u64>(), cid in any::<u64>(), stars in 1u8..=5, title in text(),
                body in text(), media in proptest::collection::vec(media(), 0..5), created in time()) -> Review {
        Review { id: ReviewId(id), product_id: ProductId(pid), customer_id: CustomerId(cid),
                 rating: Rating::new(stars).unwrap(), title, text: body, media, created_at: created }
    }
}

prop_compose! {
    fn profile()(c in customer(), addresses in proptest::collection::vec(address(), 0..4),
                 count in any::<u32>(), ltv in money(), last in proptest::option::of(time()),
                 newsletter in any::<bool>(), favs in proptest::collection::vec(text(), 0..3)) -> CustomerProfile {
        CustomerProfile {
            customer_id: c.id, first_name: c.first_name, last_name: c.last_name, email: c.email, phone: c.phone,
            addresses: addresses.iter().map(ProfileAddress::from).collect(),
            orders: OrderSummary { order_count: u64::from(count), lifetime_value: ltv, last_order_at: last },
            preferences: Preferences { newsletter, contact: ContactChannel::Sms, favourite_categories: favs },
            created_at: c.created_at, updated_at: c.updated_at,
        }
    }
}

proptest! {
    #[test]
    fn customers_round_trip(c in customer()) { round_trip(&c); prop_assert!(c.validate().is_ok()); }
    #[test]
    fn addresses_round_trip(a in address()) { round_trip(&a); prop_assert!(a.validate().is_ok()); }
    #[test]
    fn products_round_trip(p in product()) { round_trip(&p); prop_assert!(p.validate().is_ok()); }
    #[test]
    fn services_round_trip(s in service()) { round_trip(&s); prop_assert!(s.validate().is_ok()); }
    #[test]
    fn orders_round_trip(o in order()) { round_trip(&o); prop_assert!(o.validate().is_ok()); }
    #[test]
    fn order_items_round_trip(i in order_item()) {
        round_trip(&i);
        prop_assert_eq!(i.line_total(), i.unit_price * Decimal::from(i.quantity));
    }
    #[test]
    fn reviews_round_trip(r in review()) { round_trip(&r); prop_assert!(r.validate().is_ok()); }
    #[test]
    fn profiles_round_trip_through_bson(mut p in profile()) {
        // A profile describes the stored document: it goes through BSON, not JSON. Keys above
        // i64::MAX cannot be a BSON integer (the projection refuses such rows).
        p.customer_id = CustomerId(p.customer_id.get() >> 1);
        for a in &mut p.addresses {
            a.address_id = AddressId(a.address_id.get() >> 1);
        }
        let stored = mongodb::bson::to_document(&p).expect("serialise");
        let back: CustomerProfile = mongodb::bson::from_document(stored.clone()).expect("deserialise");
        prop_assert_eq!(&back, &p, "{}", stored);
    }
    #[test]
    fn statuses_parse_their_own_names(s in status()) {
        prop_assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), s);
    }
    #[test]
    fn ratings_accept_exactly_one_to_five(stars in any::<u8>()) {
        prop_assert_eq!(Rating::new(stars).is_ok(), (1..=5).contains(&stars));
    }
}

#[test]
fn emails_are_checked() {
    assert!(Email::parse("ana@example.com").is_ok());
    assert_eq!(
        Email::parse(" ana@example.com ").unwrap().as_str(),
        "ana@example.com"
    );
    for bad in [
        "",
        "ana",
        "@example.com",
        "ana@",
        "ana@example",
        "a@b@c.com",
        "an a@example.com",
        "ana@example..com",
    ] {
        let err = Email::parse(bad).expect_err(bad);
        assert!(
            matches!(err, ValidationError::InvalidEmail { .. }),
            "{bad}: {err}"
        );
        // The field and the rule, never the value: these errors reach logs and dead letters.
        assert!(err.to_string().contains("customer.email"), "{err}");
        if bad.len() > 3 {
            assert!(
                !err.to_string().contains(bad),
                "error shows the value: {err}"
            );
            assert!(
                !format!("{err:?}").contains(bad),
                "Debug shows the value: {err:?}"
            );
        }
    }
    let json = serde_json::to_string("not-an-email").unwrap();
    assert!(
        serde_json::from_str::<Email>(&json).is_err(),
        "serde refuses bad e-mails too"
    );
}

#[test]
fn negative_prices_and_zero_quantities_are_rejected() {
    let mut p = Product {
        id: ProductId(1),
        sku: "GPU-1".into(),
        name: "RTX".into(),
        description: String::new(),
        category_id: CategoryId(1),
        price: Decimal::new(-1, 2),
        stock: 0,
        is_active: true,
    };
    assert_eq!(
        p.validate().unwrap_err(),
        ValidationError::NegativeAmount {
            field: "product.price"
        }
    );
    p.price = Decimal::ZERO;
    assert!(p.validate().is_ok(), "a free product is allowed");

    let line = NewOrderLine::Product {
        product_id: ProductId(1),
        quantity: 0,
    };
    assert!(matches!(
        line.validate(),
        Err(ValidationError::NotPositive {
            field: "line.quantity",
            ..
        })
    ));

    let item = OrderItem {
        id: OrderItemId(1),
        order_id: OrderId(1),
        item: LineItem::Service(ServiceId(3)),
        quantity: 2,
        unit_price: Decimal::ONE,
    };
    assert!(
        item.validate().is_err(),
        "a service line books exactly one session"
    );
    assert_eq!(
        Rating::new(0).unwrap_err(),
        ValidationError::RatingOutOfRange
    );
    assert!(serde_json::from_str::<Rating>("6").is_err());
}

#[test]
fn unknown_status_names_the_field_and_the_rule_not_the_value() {
    let err = "lost-parcel".parse::<OrderStatus>().unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("order.status") && text.contains("pending"),
        "{text}"
    );
    assert!(!text.contains("lost-parcel"), "{text}");
}

fn cat(id: u64, parent: Option<u64>, name: &str) -> Category {
    Category {
        id: CategoryId(id),
        parent_id: parent.map(CategoryId),
        name: name.into(),
        slug: name.to_lowercase(),
    }
}

#[test]
fn category_tree_gives_paths_and_rejects_cycles_and_orphans() {
    let tree = CategoryTree::new([
        cat(1, None, "Computers"),
        cat(2, Some(1), "Components"),
        cat(3, Some(2), "GPUs"),
    ])
    .unwrap();
    assert_eq!(
        tree.path(CategoryId(3)),
        ["Computers", "Components", "GPUs"]
    );
    assert_eq!(tree.depth(CategoryId(1)), 1);
    assert!(tree.path(CategoryId(9)).is_empty());

    let cycle = CategoryTree::new([cat(1, Some(2), "a"), cat(2, Some(1), "b")]).unwrap_err();
    assert!(matches!(
        cycle,
        ValidationError::BadCategoryTree {
            reason: "parent chain forms a cycle",
            ..
        }
    ));
    let orphan = CategoryTree::new([cat(1, Some(7), "a")]).unwrap_err();
    assert!(matches!(
        orphan,
        ValidationError::BadCategoryTree {
            category: 1,
            reason: "parent does not exist"
        }
    ));
    assert!(cat(1, None, "Bad Slug").validate().is_err());
}

#[test]
fn bookings_need_a_positive_period() {
    let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let b = ServiceBooking {
        id: BookingId(1),
        order_item_id: OrderItemId(1),
        service_id: ServiceId(1),
        consultant: "Dana".into(),
        starts_at: t,
        ends_at: t,
    };
    assert!(matches!(
        b.validate(),
        Err(ValidationError::EmptyPeriod { .. })
    ));
}

#[test]
fn media_serialises_its_kind_as_type() {
    let m = Media {
        kind: MediaKind::Video,
        url: "https://x.example/v.mp4".into(),
        caption: None,
    };
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["type"], "video");
    let bad = Media {
        url: "ftp://x".into(),
        ..m
    };
    assert!(bad.validate().is_err());
}
