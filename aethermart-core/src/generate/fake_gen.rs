//! [`FakeGenerator`]: the `fake`-based [`Generator`].

use super::calendar::OrderCalendar;
use super::catalog::{Leaf, PRODUCT_TREE, Root, SERVICE_TREE, slug};
use super::vocabulary;
use super::{
    BookingRequest, CustomerBatch, GenerateConfig, Generator, ORDERS_PER_BATCH, OrderBatch, Plan,
    ROWS_PER_BATCH,
};
use crate::model::{
    Address, AddressId, AddressKind, BookingId, Category, CategoryId, ContactChannel, Customer,
    CustomerId, Email, LineItem, Media, MediaKind, Order, OrderId, OrderItem, OrderItemId,
    OrderStatus, Preferences, Product, ProductId, Rating, Review, ReviewId, Service,
    ServiceBooking, ServiceId,
};
use chrono::{DateTime, Duration, NaiveTime, Timelike, Utc};
use fake::Fake;
use fake::faker::address::en::{
    BuildingNumber, CityName, SecondaryAddress, StateAbbr, StreetName, ZipCode,
};
use fake::faker::lorem::en::{Sentence, Words};
use fake::faker::name::en::{FirstName, LastName};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use std::collections::HashMap;

/// The meaningful part of an item's description: three features and two uses of its leaf
/// ([`vocabulary`]), each list in words ("a, b and c").
struct Description {
    features: String,
    uses: String,
}

impl Description {
    fn draw(leaf: &Leaf, rng: &mut ChaCha8Rng) -> Self {
        let words = vocabulary::of(leaf.code);
        let mut pick = |from: &[&str], n: usize| {
            let chosen: Vec<&str> = from.choose_multiple(&mut *rng, n).copied().collect();
            match chosen.split_last() {
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => String::new(),
            }
        };
        Self {
            features: pick(words.features, 3),
            uses: pick(words.uses, 2),
        }
    }
}

/// Independent random streams, one per kind of row.
mod stream {
    pub(super) const CUSTOMERS: u64 = 1;
    pub(super) const PRODUCTS: u64 = 2;
    pub(super) const SERVICES: u64 = 3;
    pub(super) const ORDERS: u64 = 4;
    pub(super) const CONSULTANTS: u64 = 5;
    pub(super) const POPULARITY: u64 = 6;
}

/// Zipf exponent of product popularity: the top 1% of products take about a quarter of sales.
const ZIPF_EXPONENT: f64 = 1.07;
/// Chance that an order also books a consultation.
const SERVICE_LINE_CHANCE: f64 = 0.06;
/// Chance that a delivered product line gets a review (about 30,000 at scale 1).
const REVIEW_CHANCE: f64 = 0.12;
/// Customers sign up over this many days before the first order day, and during the window.
const SIGNUP_LEAD_DAYS: i64 = 365;
/// Services per consultant.
const SERVICES_PER_CONSULTANT: u64 = 5;
/// Ids of order lines are `(order_id - 1) * LINE_ID_STRIDE + line`: explicit and collision-free.
const LINE_ID_STRIDE: u64 = 8;
/// Ids of addresses are `(customer_id - 1) * ADDRESS_ID_STRIDE + n`.
const ADDRESS_ID_STRIDE: u64 = 3;

const COUNTRIES: &[(&str, u32)] = &[
    ("US", 40),
    ("GB", 15),
    ("DE", 15),
    ("FR", 10),
    ("ES", 8),
    ("NL", 7),
    ("CA", 5),
];
const EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "example.net",
    "example.org",
    "mail.example.com",
];
const MODEL_SUFFIXES: &[&str] = &[
    "",
    " Pro",
    " OC",
    " Elite",
    " Max",
    " SE",
    " Ultra",
    " Gaming X",
    " Mk II",
];
const DURATIONS: &[u32] = &[30, 45, 60, 90, 120];

/// SplitMix64 finaliser: spreads (seed, stream, index) over the whole seed space.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Picks from `(value, weight)` pairs.
fn weighted<'a, T>(rng: &mut ChaCha8Rng, choices: &'a [(T, u32)]) -> &'a T {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for (value, weight) in choices {
        if roll < *weight {
            return value;
        }
        roll -= weight;
    }
    &choices[choices.len() - 1].0
}

/// Money with cents from a whole amount minus a cent: 19 -> 18.99.
fn price_99(whole: u32) -> Decimal {
    Decimal::new(i64::from(whole.max(1)) * 100 - 1, 2)
}

/// Keeps `[a-z0-9]` of a name, lower-cased.
fn email_part(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The `fake`-based [`Generator`]: catalogue precomputed (a few thousand rows), customers and
/// orders computed per batch on demand.
#[derive(Debug, Clone)]
pub struct FakeGenerator {
    config: GenerateConfig,
    plan: Plan,
    calendar: OrderCalendar,
    /// Last instant of `as_of`.
    end: DateTime<Utc>,
    /// Customer 1 signs up here; the last one just before `end`.
    signup_start: DateTime<Utc>,
    categories: Vec<Category>,
    products: Vec<Product>,
    services: Vec<Service>,
    /// Cumulative Zipf weights by popularity rank.
    popularity: Vec<f64>,
    /// Product id at each popularity rank.
    by_rank: Vec<ProductId>,
    /// Names of the root categories (for preferences).
    roots: Vec<String>,
}

impl FakeGenerator {
    /// Builds the generator (and its catalogue) for a configuration.
    pub fn new(config: GenerateConfig) -> Self {
        let plan = Plan::for_scale(config.scale);
        let calendar = OrderCalendar::new(config.as_of);
        let end = config
            .as_of
            .and_time(NaiveTime::from_hms_opt(23, 59, 59).unwrap_or_default())
            .and_utc();
        let signup_start = calendar
            .start()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            - Duration::days(SIGNUP_LEAD_DAYS);
        let mut generator = Self {
            config,
            plan,
            calendar,
            end,
            signup_start,
            categories: Vec::new(),
            products: Vec::new(),
            services: Vec::new(),
            popularity: Vec::new(),
            by_rank: Vec::new(),
            roots: PRODUCT_TREE.iter().map(|r| r.name.to_owned()).collect(),
        };
        let (categories, product_leaves, service_leaves) = build_categories();
        generator.categories = categories;
        generator.products = (1..=plan.products)
            .map(|id| generator.product(id, &product_leaves))
            .collect();
        generator.services = generator.build_services(&service_leaves);
        generator.build_popularity();
        generator
    }

    fn rng(&self, stream: u64, index: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(mix(
            self.config.seed ^ mix(stream.wrapping_mul(0x1000_0000_01B3) ^ mix(index))
        ))
    }

    fn product(&self, id: u64, leaves: &[(CategoryId, &'static Leaf)]) -> Product {
        let mut rng = self.rng(stream::PRODUCTS, id);
        let (category_id, leaf) = *leaves.choose(&mut rng).unwrap_or(&leaves[0]);
        let brand = leaf.brands.choose(&mut rng).copied().unwrap_or_default();
        let noun = leaf.nouns.choose(&mut rng).copied().unwrap_or_default();
        let suffix = MODEL_SUFFIXES.choose(&mut rng).copied().unwrap_or_default();
        let about = Description::draw(leaf, &mut rng);
        let stock = if rng.random_bool(0.04) {
            rng.random_range(0..=10)
        } else {
            rng.random_range(leaf.stock.0..=leaf.stock.1)
        };
        Product {
            id: ProductId(id),
            sku: format!("{}-{id:06}", leaf.code),
            name: format!("{brand} {noun}{suffix}"),
            description: format!(
                "{noun}{suffix} by {brand}: {}. Made for {}.",
                about.features, about.uses
            ),
            category_id,
            price: price_99(rng.random_range(leaf.price.0..=leaf.price.1)),
            stock,
            is_active: rng.random_bool(0.97),
        }
    }

    fn build_services(&self, leaves: &[(CategoryId, &'static Leaf)]) -> Vec<Service> {
        let consultants_count = self.plan.services.div_ceil(SERVICES_PER_CONSULTANT).max(1);
        let consultants: Vec<String> = (1..=consultants_count)
            .map(|c| {
                let mut rng = self.rng(stream::CONSULTANTS, c);
                let first: String = FirstName().fake_with_rng(&mut rng);
                let last: String = LastName().fake_with_rng(&mut rng);
                format!("{first} {last}")
            })
            .collect();
        (1..=self.plan.services)
            .map(|id| {
                let mut rng = self.rng(stream::SERVICES, id);
                let (category_id, leaf) = leaves[(id as usize - 1) % leaves.len()];
                let topic = leaf.nouns.choose(&mut rng).copied().unwrap_or_default();
                let duration = DURATIONS.choose(&mut rng).copied().unwrap_or(60);
                let per_minute = rng.random_range(100..=160u32);
                let whole = (duration * per_minute / 100 / 10) * 10 + 9;
                let about = Description::draw(leaf, &mut rng);
                Service {
                    id: ServiceId(id),
                    code: format!("SRV-{}-{id:04}", leaf.code),
                    name: format!("{topic} ({duration} min)"),
                    description: format!(
                        "{topic} with an AetherMart expert, {duration} minutes: {}. Helps with {}.",
                        about.features, about.uses
                    ),
                    category_id,
                    duration_minutes: duration,
                    price: Decimal::from(whole),
                    consultant: consultants[((id - 1) % consultants_count) as usize].clone(),
                    // Consultations stay bookable; products are what gets discontinued.
                    is_active: true,
                }
            })
            .collect()
    }

    fn build_popularity(&mut self) {
        let mut by_rank: Vec<ProductId> = self.products.iter().map(|p| p.id).collect();
        by_rank.shuffle(&mut self.rng(stream::POPULARITY, 0));
        let mut total = 0.0;
        self.popularity = (1..=by_rank.len())
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(ZIPF_EXPONENT);
                total
            })
            .collect();
        self.by_rank = by_rank;
    }

    /// A product drawn by popularity.
    fn popular_product(&self, rng: &mut ChaCha8Rng) -> &Product {
        let total = self.popularity.last().copied().unwrap_or(1.0);
        let roll = rng.random::<f64>() * total;
        let rank = self
            .popularity
            .partition_point(|&c| c <= roll)
            .min(self.by_rank.len() - 1);
        &self.products[(self.by_rank[rank].get() - 1) as usize]
    }

    /// When customer `id` signed up: ids increase with time over the signup window.
    fn signup_time(&self, id: u64, jitter: f64) -> DateTime<Utc> {
        let span = (self.end - self.signup_start).num_seconds() as f64;
        let q = ((id - 1) as f64 + jitter) / self.plan.customers as f64;
        self.signup_start + Duration::seconds((q * span) as i64)
    }

    /// How many customers had signed up by `t` (at least 1).
    fn customers_by(&self, t: DateTime<Utc>) -> u64 {
        let span = (self.end - self.signup_start).num_seconds() as f64;
        let q = (t - self.signup_start).num_seconds() as f64 / span;
        ((q * self.plan.customers as f64).floor() as u64).clamp(1, self.plan.customers)
    }

    fn status_for_age(&self, rng: &mut ChaCha8Rng, placed_at: DateTime<Utc>) -> OrderStatus {
        use OrderStatus::*;
        let age_days = (self.end - placed_at).num_hours() as f64 / 24.0;
        let choices: &[(OrderStatus, u32)] = if age_days < 1.0 {
            &[(Pending, 55), (Paid, 40), (Cancelled, 5)]
        } else if age_days < 4.0 {
            &[(Paid, 30), (Shipped, 63), (Cancelled, 7)]
        } else if age_days < 10.0 {
            &[(Shipped, 35), (Delivered, 58), (Cancelled, 7)]
        } else {
            &[(Delivered, 86), (Cancelled, 7), (Returned, 7)]
        };
        *weighted(rng, choices)
    }

    fn review(
        &self,
        rng: &mut ChaCha8Rng,
        item: &OrderItem,
        order: &Order,
        product: ProductId,
    ) -> Option<Review> {
        let created_at = order.placed_at
            + Duration::days(rng.random_range(4..=60))
            + Duration::minutes(rng.random_range(0..1440));
        if created_at > self.end {
            return None;
        }
        let stars: u8 = if order.status == OrderStatus::Returned {
            *weighted(rng, &[(1, 60), (2, 30), (3, 10)])
        } else {
            *weighted(rng, &[(5, 47), (4, 30), (3, 11), (2, 5), (1, 7)])
        };
        let (titles, tone): (&[&str], &str) = match stars {
            5 => (
                &[
                    "Fantastic",
                    "Exactly what I needed",
                    "Love it",
                    "Best purchase this year",
                ],
                "Works perfectly and arrived quickly.",
            ),
            4 => (
                &["Very good", "Great value", "Solid choice"],
                "Very happy with it, small niggles aside.",
            ),
            3 => (
                &["Okay", "Does the job", "Mixed feelings"],
                "It is fine, nothing special.",
            ),
            2 => (
                &["Disappointing", "Not great"],
                "Expected more for the price.",
            ),
            _ => (
                &["Returned it", "Would not buy again", "Broken on arrival"],
                "Did not work for me.",
            ),
        };
        let id = item.id.get();
        let media_count = *weighted(
            rng,
            &[(0usize, 55), (1, 20), (2, 12), (3, 7), (4, 4), (5, 2)],
        );
        let media = (1..=media_count)
            .map(|k| {
                let video = rng.random_bool(0.2);
                let caption: Option<Vec<String>> =
                    rng.random_bool(0.5).then(|| Words(2..5).fake_with_rng(rng));
                Media {
                    kind: if video {
                        MediaKind::Video
                    } else {
                        MediaKind::Image
                    },
                    url: format!(
                        "https://cdn.aethermart.example/reviews/{id}/{k}.{}",
                        if video { "mp4" } else { "jpg" }
                    ),
                    caption: caption.map(|w| w.join(" ")),
                }
            })
            .collect();
        let detail: String = Sentence(5..12).fake_with_rng(rng);
        Some(Review {
            id: ReviewId(id),
            product_id: product,
            customer_id: order.customer_id,
            rating: Rating::new(stars).ok()?,
            title: titles.choose(rng).copied().unwrap_or("Review").to_owned(),
            text: format!("{tone} {detail}"),
            media,
            created_at,
        })
    }
}

/// The category tree in insertion order (roots, then branches, then leaves) and the leaves that
/// carry products and services.
#[allow(clippy::type_complexity)]
fn build_categories() -> (
    Vec<Category>,
    Vec<(CategoryId, &'static Leaf)>,
    Vec<(CategoryId, &'static Leaf)>,
) {
    let roots: Vec<&'static Root> = PRODUCT_TREE
        .iter()
        .chain(std::iter::once(&SERVICE_TREE))
        .collect();
    let mut categories = Vec::new();
    let mut next = 1u64;
    let mut add = |parent: Option<CategoryId>, name: &str, categories: &mut Vec<Category>| {
        let id = CategoryId(next);
        next += 1;
        categories.push(Category {
            id,
            parent_id: parent,
            name: name.to_owned(),
            slug: slug(name),
        });
        id
    };
    let root_ids: Vec<CategoryId> = roots
        .iter()
        .map(|r| add(None, r.name, &mut categories))
        .collect();
    let mut branch_ids = Vec::new();
    for (root, &root_id) in roots.iter().zip(&root_ids) {
        for branch in root.branches {
            branch_ids.push((
                add(Some(root_id), branch.name, &mut categories),
                branch,
                root.name,
            ));
        }
    }
    let (mut product_leaves, mut service_leaves) = (Vec::new(), Vec::new());
    for (branch_id, branch, root_name) in branch_ids {
        for leaf in branch.leaves {
            let id = add(Some(branch_id), leaf.name, &mut categories);
            if root_name == SERVICE_TREE.name {
                service_leaves.push((id, leaf));
            } else {
                product_leaves.push((id, leaf));
            }
        }
    }
    (categories, product_leaves, service_leaves)
}

impl Generator for FakeGenerator {
    fn plan(&self) -> Plan {
        self.plan
    }

    fn categories(&self) -> Vec<Category> {
        self.categories.clone()
    }

    fn customers(&self, index: u64) -> CustomerBatch {
        let mut rng = self.rng(stream::CUSTOMERS, index);
        let first_id = index * ROWS_PER_BATCH + 1;
        let last_id = ((index + 1) * ROWS_PER_BATCH).min(self.plan.customers);
        let mut batch = CustomerBatch {
            customers: Vec::new(),
            addresses: Vec::new(),
            preferences: Vec::new(),
        };
        for id in first_id..=last_id {
            let first: String = FirstName().fake_with_rng(&mut rng);
            let last: String = LastName().fake_with_rng(&mut rng);
            let domain = EMAIL_DOMAINS
                .choose(&mut rng)
                .copied()
                .unwrap_or("example.com");
            let email = format!("{}.{}.{id}@{domain}", email_part(&first), email_part(&last));
            let created_at = self.signup_time(id, rng.random());
            let updated_at = (created_at + Duration::days(rng.random_range(0..400))).min(self.end);
            let phone = rng.random_bool(0.85).then(|| {
                format!(
                    "+1 555 {:03} {:04}",
                    rng.random_range(0..1000),
                    rng.random_range(0..10_000)
                )
            });
            batch.customers.push(Customer {
                id: CustomerId(id),
                first_name: first,
                last_name: last,
                // Cannot fail: the parts are [a-z0-9] and the domain has a dot.
                email: Email::parse(&email)
                    .unwrap_or_else(|_| unreachable!("generated e-mail {email} is valid")),
                phone,
                created_at,
                updated_at,
            });
            let count = *weighted(&mut rng, &[(1u64, 50), (2, 35), (3, 15)]);
            let country = *weighted(&mut rng, COUNTRIES);
            for n in 1..=count {
                let kind = if n == 2 {
                    AddressKind::Billing
                } else {
                    AddressKind::Shipping
                };
                let street: String = StreetName().fake_with_rng(&mut rng);
                let number: String = BuildingNumber().fake_with_rng(&mut rng);
                batch.addresses.push(Address {
                    id: AddressId((id - 1) * ADDRESS_ID_STRIDE + n),
                    customer_id: CustomerId(id),
                    kind,
                    line1: format!("{number} {street}"),
                    line2: rng
                        .random_bool(0.2)
                        .then(|| SecondaryAddress().fake_with_rng(&mut rng)),
                    city: CityName().fake_with_rng(&mut rng),
                    region: matches!(country, "US" | "CA")
                        .then(|| StateAbbr().fake_with_rng(&mut rng)),
                    postal_code: ZipCode().fake_with_rng(&mut rng),
                    country: country.to_owned(),
                    is_default: n <= 2,
                });
            }
            let favourites = rng.random_range(0..=3usize);
            let mut favourite_categories: Vec<String> = self
                .roots
                .choose_multiple(&mut rng, favourites)
                .cloned()
                .collect();
            favourite_categories.sort();
            batch.preferences.push((
                CustomerId(id),
                Preferences {
                    newsletter: rng.random_bool(0.4),
                    contact: *weighted(
                        &mut rng,
                        &[
                            (ContactChannel::Email, 70),
                            (ContactChannel::Sms, 20),
                            (ContactChannel::None, 10),
                        ],
                    ),
                    favourite_categories,
                },
            ));
        }
        batch
    }

    fn products(&self, index: u64) -> Vec<Product> {
        let start = (index * ROWS_PER_BATCH) as usize;
        let end = (start + ROWS_PER_BATCH as usize).min(self.products.len());
        self.products.get(start..end).unwrap_or_default().to_vec()
    }

    fn services(&self, index: u64) -> Vec<Service> {
        let start = (index * ROWS_PER_BATCH) as usize;
        let end = (start + ROWS_PER_BATCH as usize).min(self.services.len());
        self.services.get(start..end).unwrap_or_default().to_vec()
    }

    fn orders(&self, index: u64) -> OrderBatch {
        let mut rng = self.rng(stream::ORDERS, index);
        let first_id = index * ORDERS_PER_BATCH + 1;
        let last_id = ((index + 1) * ORDERS_PER_BATCH).min(self.plan.orders);
        let mut batch = OrderBatch {
            orders: Vec::new(),
            items: Vec::new(),
            booking_requests: Vec::new(),
            reviews: Vec::new(),
        };
        let n = self.plan.orders as f64;
        for id in first_id..=last_id {
            let placed_at = self
                .calendar
                .at(((id - 1) as f64 + rng.random::<f64>()) / n);
            let customer_id = CustomerId(rng.random_range(1..=self.customers_by(placed_at)));
            let status = self.status_for_age(&mut rng, placed_at);
            let lines = *weighted(
                &mut rng,
                &[(1usize, 15), (2, 25), (3, 25), (4, 20), (5, 15)],
            );
            let wants_service = rng.random_bool(SERVICE_LINE_CHANCE);
            let mut chosen: Vec<ProductId> = Vec::with_capacity(lines);
            let mut items = Vec::with_capacity(lines + 1);
            let mut line_no = 0;
            let product_lines = if wants_service {
                lines.saturating_sub(1)
            } else {
                lines
            };
            for _ in 0..product_lines {
                // Distinct products per order; a popular product may win twice, then try again.
                let Some(product) = (0..5)
                    .map(|_| self.popular_product(&mut rng))
                    .find(|p| !chosen.contains(&p.id))
                else {
                    continue;
                };
                chosen.push(product.id);
                line_no += 1;
                let quantity = *weighted(&mut rng, &[(1u32, 82), (2, 13), (3, 4), (4, 1)]);
                // Prices move a little over time; the line keeps the price of its day.
                let unit_price = if rng.random_bool(0.3) {
                    (product.price * Decimal::new(rng.random_range(90..=110), 2)).round_dp(2)
                } else {
                    product.price
                };
                items.push(OrderItem {
                    id: OrderItemId((id - 1) * LINE_ID_STRIDE + line_no),
                    order_id: OrderId(id),
                    item: LineItem::Product(product.id),
                    quantity,
                    unit_price,
                });
            }
            if wants_service || items.is_empty() {
                let service = &self.services[rng.random_range(0..self.services.len())];
                line_no += 1;
                let item_id = OrderItemId((id - 1) * LINE_ID_STRIDE + line_no);
                items.push(OrderItem {
                    id: item_id,
                    order_id: OrderId(id),
                    item: LineItem::Service(service.id),
                    quantity: 1,
                    unit_price: service.price,
                });
                if status != OrderStatus::Cancelled {
                    let wanted = (placed_at + Duration::days(rng.random_range(2..=14)))
                        .with_hour(rng.random_range(9..=16))
                        .unwrap_or(placed_at)
                        .with_minute(0)
                        .and_then(|t| t.with_second(0))
                        .unwrap_or(placed_at);
                    batch.booking_requests.push(BookingRequest {
                        order_item_id: item_id,
                        service_id: service.id,
                        wanted,
                    });
                }
            }
            let total = items.iter().map(OrderItem::line_total).sum();
            let updated_at = (placed_at + Duration::hours(rng.random_range(0..240)))
                .min(self.end)
                .max(placed_at);
            let order = Order {
                id: OrderId(id),
                customer_id,
                status,
                total,
                placed_at,
                updated_at,
            };
            if matches!(status, OrderStatus::Delivered | OrderStatus::Returned) {
                for item in &items {
                    if let LineItem::Product(product) = item.item
                        && rng.random_bool(REVIEW_CHANCE)
                        && let Some(review) = self.review(&mut rng, item, &order, product)
                    {
                        batch.reviews.push(review);
                    }
                }
            }
            batch.items.extend(items);
            batch.orders.push(order);
        }
        batch
    }

    fn bookings(&self, mut requests: Vec<BookingRequest>) -> Vec<ServiceBooking> {
        requests.sort_by_key(|r| r.order_item_id);
        let mut busy_until: HashMap<&str, DateTime<Utc>> = HashMap::new();
        requests
            .into_iter()
            .enumerate()
            .filter_map(|(n, r)| {
                let service = self.services.get((r.service_id.get() - 1) as usize)?;
                let free = busy_until
                    .get(service.consultant.as_str())
                    .copied()
                    .unwrap_or(r.wanted);
                let start = round_up_half_hour(r.wanted.max(free));
                let end = start + Duration::minutes(i64::from(service.duration_minutes));
                busy_until.insert(service.consultant.as_str(), end);
                Some(ServiceBooking {
                    id: BookingId(n as u64 + 1),
                    order_item_id: r.order_item_id,
                    service_id: r.service_id,
                    consultant: service.consultant.clone(),
                    starts_at: start,
                    ends_at: end,
                })
            })
            .collect()
    }
}

/// The next full or half hour at or after `t`.
fn round_up_half_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    let rounded = secs.div_euclid(1800) * 1800 + if secs.rem_euclid(1800) == 0 { 0 } else { 1800 };
    DateTime::from_timestamp(rounded, 0).unwrap_or(t)
}
