use super::*;
use crate::model::{LineItem, OrderStatus};
use std::collections::{HashMap, HashSet};

/// A booking's start and end.
type Slot = (DateTime<Utc>, DateTime<Utc>);

fn config(seed: u64, scale: f64) -> GenerateConfig {
    GenerateConfig::new(seed, scale, NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()).unwrap()
}

/// Everything a generator produces, serialised in a fixed order.
fn dump(g: &dyn Generator, threads: usize) -> String {
    let plan = g.plan();
    let mut jobs: Vec<(Table, u64)> = [
        Table::Customers,
        Table::Products,
        Table::Services,
        Table::Orders,
    ]
    .into_iter()
    .flat_map(|t| (0..plan.batches(t)).map(move |i| (t, i)))
    .collect();
    // Produce batches in a scrambled order on several threads, then put them back in order.
    jobs.reverse();
    let chunks: Vec<Vec<(Table, u64)>> = jobs
        .chunks(jobs.len().div_ceil(threads))
        .map(<[_]>::to_vec)
        .collect();
    let mut parts: Vec<((u8, u64), String)> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(t, i)| {
                            let text = match t {
                                Table::Customers => format!("{:?}", g.customers(i)),
                                Table::Products => format!("{:?}", g.products(i)),
                                Table::Services => format!("{:?}", g.services(i)),
                                Table::Orders => format!("{:?}", g.orders(i)),
                            };
                            ((t as u8, i), text)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    parts.sort_by_key(|(k, _)| *k);
    let mut out = format!("{:?}", g.categories());
    for (_, text) in parts {
        out.push_str(&text);
    }
    out
}

#[test]
fn same_seed_and_scale_give_identical_data_whatever_the_thread_count() {
    let a = FakeGenerator::new(config(7, 0.02));
    let b = FakeGenerator::new(config(7, 0.02));
    let one = dump(&a, 1);
    assert_eq!(one, dump(&b, 3), "same seed, 1 vs 3 threads");
    assert_eq!(one, dump(&a, 2));
    let other = FakeGenerator::new(config(8, 0.02));
    assert_ne!(one, dump(&other, 1), "another seed gives other data");
}

#[test]
fn scale_is_linear_and_bad_scales_are_refused() {
    assert_eq!(
        Plan::for_scale(1.0),
        Plan {
            customers: 10_000,
            products: 2_000,
            services: 200,
            orders: 100_000
        }
    );
    assert_eq!(
        Plan::for_scale(0.01),
        Plan {
            customers: 100,
            products: 20,
            services: 2,
            orders: 1_000
        }
    );
    assert_eq!(Plan::for_scale(2.5).orders, 250_000);
    let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e9] {
        assert!(
            matches!(
                GenerateConfig::new(1, bad, day),
                Err(GenerateConfigError::Scale(_))
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        GenerateConfig::new(1, 0.000_01, day),
        Err(GenerateConfigError::ScaleTooSmall(_))
    ));
}

#[test]
fn generated_data_is_valid_consistent_and_realistic() {
    let g = FakeGenerator::new(config(42, 0.05));
    let plan = g.plan();
    let categories = g.categories();
    crate::model::CategoryTree::new(categories.clone()).expect("a valid tree");
    assert!(
        categories
            .iter()
            .map(|c| &c.slug)
            .collect::<HashSet<_>>()
            .len()
            == categories.len(),
        "unique slugs"
    );
    let tree = crate::model::CategoryTree::new(categories.clone()).unwrap();
    assert_eq!(
        categories.iter().map(|c| tree.depth(c.id)).max(),
        Some(3),
        "three levels"
    );

    let products: Vec<_> = (0..plan.batches(Table::Products))
        .flat_map(|i| g.products(i))
        .collect();
    let services: Vec<_> = (0..plan.batches(Table::Services))
        .flat_map(|i| g.services(i))
        .collect();
    assert_eq!(products.len() as u64, plan.products);
    for p in &products {
        p.validate().unwrap();
        assert_eq!(tree.depth(p.category_id), 3, "products sit in leaves");
    }
    services.iter().for_each(|s| s.validate().unwrap());
    // Descriptions say what an item has and is for, in its leaf's words (what search finds).
    let leaf_code = |sku: &str| sku.split('-').next().unwrap_or_default().to_owned();
    for (code, description) in products
        .iter()
        .map(|p| (leaf_code(&p.sku), &p.description))
        .chain(
            services
                .iter()
                .map(|s| (leaf_code(&s.code["SRV-".len()..]), &s.description)),
        )
    {
        let words = super::vocabulary::of(&code);
        let features = words
            .features
            .iter()
            .filter(|f| description.contains(*f))
            .count();
        let uses = words
            .uses
            .iter()
            .filter(|u| description.contains(*u))
            .count();
        assert_eq!((features, uses), (3, 2), "{code}: {description}");
    }

    let mut signup = HashMap::new();
    let mut address_counts = HashMap::new();
    for i in 0..plan.batches(Table::Customers) {
        let batch = g.customers(i);
        for c in &batch.customers {
            c.validate().unwrap();
            signup.insert(c.id, c.created_at);
        }
        for a in &batch.addresses {
            a.validate().unwrap();
            *address_counts.entry(a.customer_id).or_insert(0) += 1;
        }
        assert_eq!(batch.preferences.len(), batch.customers.len());
    }
    assert_eq!(signup.len() as u64, plan.customers);
    assert!(address_counts.values().all(|&n| (1..=3).contains(&n)));
    assert_eq!(
        address_counts.len(),
        signup.len(),
        "every customer has an address"
    );

    let mut units: HashMap<u64, u64> = HashMap::new();
    let mut statuses: HashMap<OrderStatus, u64> = HashMap::new();
    let mut orders = 0u64;
    let mut lines = 0u64;
    let mut reviews = Vec::new();
    let mut requests = Vec::new();
    let mut bought: HashSet<(u64, u64)> = HashSet::new();
    let mut last_placed = None;
    for i in 0..plan.batches(Table::Orders) {
        let batch = g.orders(i);
        let mut by_order: HashMap<u64, Vec<&crate::model::OrderItem>> = HashMap::new();
        for item in &batch.items {
            item.validate().unwrap();
            by_order.entry(item.order_id.get()).or_default().push(item);
        }
        for o in &batch.orders {
            orders += 1;
            *statuses.entry(o.status).or_default() += 1;
            assert!(
                signup[&o.customer_id] < o.placed_at,
                "customer {} ordered before signing up",
                o.customer_id
            );
            assert!(
                last_placed.is_none_or(|t| t <= o.placed_at),
                "ids increase with time"
            );
            last_placed = Some(o.placed_at);
            let items = &by_order[&o.id.get()];
            assert_eq!(
                o.total,
                items.iter().map(|i| i.line_total()).sum(),
                "order {} total",
                o.id
            );
            let products: Vec<u64> = items
                .iter()
                .filter_map(|i| match i.item {
                    LineItem::Product(p) => Some(p.get()),
                    LineItem::Service(_) => None,
                })
                .collect();
            assert_eq!(
                products.len(),
                products.iter().collect::<HashSet<_>>().len(),
                "distinct products per order"
            );
            for i in items {
                lines += 1;
                if let LineItem::Product(p) = i.item {
                    assert!(p.get() >= 1 && p.get() <= plan.products);
                    if o.status != OrderStatus::Cancelled {
                        *units.entry(p.get()).or_default() += u64::from(i.quantity);
                    }
                    bought.insert((o.customer_id.get(), p.get()));
                }
            }
        }
        for r in &batch.reviews {
            r.validate().unwrap();
            assert!(r.media.len() <= 5);
            let order_id = (r.id.get() - 1) / 8 + 1;
            let order = batch
                .orders
                .iter()
                .find(|o| o.id.get() == order_id)
                .expect("review of an order in its batch");
            assert!(r.created_at > order.placed_at, "review after the order");
            assert!(
                bought.contains(&(r.customer_id.get(), r.product_id.get())),
                "only buyers review"
            );
        }
        reviews.extend(batch.reviews);
        requests.extend(batch.booking_requests);
    }
    assert_eq!(orders, plan.orders);
    let per_order = lines as f64 / orders as f64;
    assert!(
        (2.6..3.3).contains(&per_order),
        "about 3 lines per order, got {per_order}"
    );
    let delivered = statuses[&OrderStatus::Delivered] as f64 / orders as f64;
    assert!(delivered > 0.7, "most orders delivered: {statuses:?}");
    assert!(
        statuses.contains_key(&OrderStatus::Cancelled)
            && statuses.contains_key(&OrderStatus::Returned)
    );
    let expected_reviews = 30_000.0 * 0.05;
    assert!(
        (reviews.len() as f64 - expected_reviews).abs() < expected_reviews * 0.25,
        "{} reviews",
        reviews.len()
    );
    let positive =
        reviews.iter().filter(|r| r.rating.stars() >= 4).count() as f64 / reviews.len() as f64;
    assert!(positive > 0.6, "reviews mostly positive: {positive}");

    // Zipf: the top 5% of products sell far more than their share.
    let mut sold: Vec<u64> = units.values().copied().collect();
    sold.sort_unstable_by(|a, b| b.cmp(a));
    let top = sold
        .iter()
        .take((plan.products as usize / 20).max(1))
        .sum::<u64>() as f64;
    let all = sold.iter().sum::<u64>() as f64;
    assert!(
        top / all > 0.25,
        "best sellers: top 5% sell {:.0}%",
        100.0 * top / all
    );

    // Bookings never overlap for one consultant.
    let bookings = g.bookings(requests);
    let mut by_consultant: HashMap<&str, Vec<Slot>> = HashMap::new();
    for b in &bookings {
        b.validate().unwrap();
        by_consultant
            .entry(b.consultant.as_str())
            .or_default()
            .push((b.starts_at, b.ends_at));
    }
    for (consultant, mut slots) in by_consultant {
        slots.sort();
        assert!(
            slots.windows(2).all(|w| w[0].1 <= w[1].0),
            "{consultant} double-booked"
        );
    }
    assert!(!bookings.is_empty());
}
