//! Which documents a row change affects: the fan-out the capture triggers implement
//! (`sql/0012_history_loader.sql`), computed from the row images of the binlog.
//!
//! Both images are looked at, so a row whose key changed names the old document (gone) and the
//! new one; the re-read decides what each becomes. Cheap fan-outs are not filtered by which
//! columns changed (a needless re-read costs little); the ones that need a query (the orders
//! that embed a renamed product or service, the subtree of a renamed or moved category) are
//! asked for only when the name or the parent changed.

use super::stream::{Image, RowChange};
use crate::projection::Entity;

/// The tables whose row events name documents (and whose capture triggers write queue entries
/// named after them, in `source_table`).
pub(crate) const CAPTURED: [&str; 7] = [
    "Customers",
    "Customer_Addresses",
    "Orders",
    "Order_Items",
    "Products",
    "Services",
    "Categories",
];

/// The followed table `name`, when its row events can name documents or requests (a captured
/// table or a sync queue); the rows of other tables are not decoded.
pub(super) fn table(name: &str) -> Option<&'static str> {
    CAPTURED.iter().copied().find(|t| *t == name).or_else(|| {
        Entity::ALL
            .into_iter()
            .map(|e| e.queue_table())
            .find(|t| *t == name)
    })
}

/// The columns the fan-out, the requests and the visibility wait read: a row image keeps
/// only these (a decoded row's other values are dropped at once).
const COLUMNS: [&str; 12] = [
    "customer_id",
    "address_id",
    "order_id",
    "order_item_id",
    "product_id",
    "service_id",
    "category_id",
    "parent_id",
    "name",
    "queue_id",
    "entity_key",
    "source_table",
];

/// `name` as one of the [`COLUMNS`] a row image keeps.
pub(super) fn column(name: &str) -> Option<&'static str> {
    COLUMNS.iter().copied().find(|c| *c == name)
}

/// A document, or a set of documents found by a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Target {
    /// One document.
    Key(Entity, u64),
    /// Every order with a line of this product (its name is embedded).
    OrdersOfProduct(u64),
    /// Every order with a line of this service.
    OrdersOfService(u64),
    /// Every product and service in this category or below it (the path is embedded).
    CategorySubtree(u64),
}

/// Appends the targets of `change` to `out`.
pub(super) fn targets(change: &RowChange, out: &mut Vec<Target>) {
    let images = || change.before.iter().chain(change.after.iter());
    let keys = |column: &str, entity: Entity, out: &mut Vec<Target>| {
        for image in images() {
            if let Some(id) = image.id(column) {
                out.push(Target::Key(entity, id));
            }
        }
    };
    let changed = |column: &str| match (&change.before, &change.after) {
        (Some(b), Some(a)) => b.get(column) != a.get(column),
        _ => false,
    };
    match change.table {
        "Customers" | "Customer_Addresses" => keys("customer_id", Entity::Customers, out),
        "Orders" => {
            keys("order_id", Entity::Orders, out);
            keys("customer_id", Entity::Customers, out);
        }
        "Order_Items" => keys("order_id", Entity::Orders, out),
        "Products" => {
            keys("product_id", Entity::Products, out);
            if changed("name") {
                ids(&change.after, "product_id", Target::OrdersOfProduct, out);
            }
        }
        "Services" => {
            keys("service_id", Entity::Services, out);
            if changed("name") {
                ids(&change.after, "service_id", Target::OrdersOfService, out);
            }
        }
        "Categories" => {
            if changed("name") || changed("parent_id") {
                ids(&change.after, "category_id", Target::CategorySubtree, out);
            }
        }
        _ => {
            // An entry in a sync queue is a request (a resync, a requeued dead letter, the
            // review stream's products): its key, on insert. Entries a capture trigger wrote
            // say nothing the row events above do not.
            if let Some((entity, _, key)) = request(change) {
                out.push(Target::Key(entity, key));
            }
        }
    }
}

/// The request a change is, when it inserts one into a sync queue: `(entity, queue_id, key)`.
/// Entries a capture trigger wrote (named after the table that changed) are not requests.
pub(super) fn request(change: &RowChange) -> Option<(Entity, u64, u64)> {
    let entity = Entity::ALL
        .into_iter()
        .find(|e| e.queue_table() == change.table)?;
    let after = change.after.as_ref().filter(|_| change.before.is_none())?;
    let by_trigger = matches!(after.get("source_table"), Some(mysql_async::Value::Bytes(t))
        if CAPTURED.iter().any(|c| c.as_bytes() == t.as_slice()));
    if by_trigger {
        return None;
    }
    Some((entity, after.id("queue_id")?, after.id("entity_key")?))
}

fn ids(image: &Option<Image>, column: &str, target: fn(u64) -> Target, out: &mut Vec<Target>) {
    if let Some(id) = image.as_ref().and_then(|i| i.id(column)) {
        out.push(target(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::Value;

    fn row(values: &[(&str, Value)]) -> Image {
        Image::new(
            values
                .iter()
                .map(|(c, v)| (column(c).expect("a column images keep"), v.clone()))
                .collect(),
        )
    }

    fn of(table: &'static str, before: Option<Image>, after: Option<Image>) -> Vec<Target> {
        let mut out = Vec::new();
        targets(
            &RowChange {
                table,
                before,
                after,
            },
            &mut out,
        );
        out.sort();
        out.dedup();
        out
    }

    fn name(n: &str) -> Value {
        Value::Bytes(n.as_bytes().to_vec())
    }

    #[test]
    fn orders_and_addresses_name_their_customer_and_lines_their_order() {
        let order = row(&[("order_id", Value::UInt(9)), ("customer_id", Value::Int(4))]);
        assert_eq!(
            of("Orders", None, Some(order)),
            vec![
                Target::Key(Entity::Customers, 4),
                Target::Key(Entity::Orders, 9)
            ]
        );
        let moved = (
            row(&[
                ("address_id", Value::Int(1)),
                ("customer_id", Value::Int(4)),
            ]),
            row(&[
                ("address_id", Value::Int(1)),
                ("customer_id", Value::Int(5)),
            ]),
        );
        assert_eq!(
            of("Customer_Addresses", Some(moved.0), Some(moved.1)),
            vec![
                Target::Key(Entity::Customers, 4),
                Target::Key(Entity::Customers, 5)
            ],
            "an address moved between customers changes both profiles"
        );
        let line = row(&[("order_id", Value::Int(9)), ("product_id", Value::Int(2))]);
        assert_eq!(
            of("Order_Items", None, Some(line)),
            vec![Target::Key(Entity::Orders, 9)]
        );
    }

    #[test]
    fn renames_reach_the_documents_that_embed_the_name() {
        let before = row(&[("product_id", Value::Int(3)), ("name", name("Desk"))]);
        let renamed = row(&[("product_id", Value::Int(3)), ("name", name("Table"))]);
        assert_eq!(
            of("Products", Some(before.clone()), Some(renamed)),
            vec![Target::Key(Entity::Products, 3), Target::OrdersOfProduct(3)]
        );
        let restocked = row(&[("product_id", Value::Int(3)), ("name", name("Desk"))]);
        assert_eq!(
            of("Products", Some(before), Some(restocked)),
            vec![Target::Key(Entity::Products, 3)],
            "a stock change leaves the orders alone"
        );
        let service = |n: &str| row(&[("service_id", Value::Int(8)), ("name", name(n))]);
        assert_eq!(
            of("Services", Some(service("Setup")), Some(service("Install"))),
            vec![Target::Key(Entity::Services, 8), Target::OrdersOfService(8)]
        );
        let category = |n: &str, parent: Value| {
            row(&[
                ("category_id", Value::Int(2)),
                ("name", name(n)),
                ("parent_id", parent),
            ])
        };
        assert_eq!(
            of(
                "Categories",
                Some(category("A", Value::NULL)),
                Some(category("A", Value::Int(1)))
            ),
            vec![Target::CategorySubtree(2)],
            "a move"
        );
        assert!(
            of("Categories", None, Some(category("New", Value::NULL))).is_empty(),
            "a new category changes no document"
        );
    }

    #[test]
    fn queue_inserts_are_requests_and_other_tables_are_ignored() {
        let entry = |source: &str| {
            row(&[
                ("queue_id", Value::Int(5)),
                ("entity_key", Value::Int(77)),
                ("source_table", name(source)),
            ])
        };
        for request in ["resync", "requeue", "reviews", "reviews:all", "sync_home"] {
            assert_eq!(
                of("product_sync_queue", None, Some(entry(request))),
                vec![Target::Key(Entity::Products, 77)],
                "{request}"
            );
        }
        assert!(
            of("product_sync_queue", None, Some(entry("Products"))).is_empty(),
            "a capture trigger's entry: the row event of Products names it already"
        );
        let insert = |source: &str| RowChange {
            table: "product_sync_queue",
            before: None,
            after: Some(entry(source)),
        };
        assert_eq!(
            request(&insert("resync")),
            Some((Entity::Products, 5, 77)),
            "a request, with its queue id (the source deletes exactly it once applied)"
        );
        assert_eq!(request(&insert("Order_Items")), None);
        let entry = entry("resync");
        assert!(
            of("product_sync_queue", Some(entry), None).is_empty(),
            "a delete"
        );
        assert!(of("Service_Bookings", None, Some(row(&[]))).is_empty());
        assert!(
            of(
                "Customers",
                None,
                Some(row(&[("customer_id", Value::NULL)]))
            )
            .is_empty()
        );
    }

    #[test]
    fn images_keep_every_column_read_and_queues_are_followed() {
        for table in CAPTURED {
            let (_, key) = super::super::key_column(table).expect("a key column");
            assert!(column(key).is_some(), "{table}.{key} is kept");
            assert_eq!(super::table(table), Some(table));
        }
        for entity in Entity::ALL {
            assert_eq!(
                super::table(entity.queue_table()),
                Some(entity.queue_table())
            );
        }
        assert_eq!(super::table("sync_lineage"), None);
        assert_eq!(column("email"), None, "other columns are dropped");
    }
}
