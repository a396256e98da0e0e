//! `aethermart order place | cancel`.

use crate::opt::OrderCommand;
use crate::output::print_json;
use crate::{EXIT_OK, mariadb_pool};
use aethermart_core::model::{CustomerId, NewOrderLine, OrderId};
use aethermart_core::{Error, orders};

pub async fn run(command: OrderCommand) -> Result<u8, Error> {
    match command {
        OrderCommand::Place {
            customer,
            product,
            service,
            json,
        } => {
            let lines: Vec<NewOrderLine> = product.into_iter().chain(service).collect();
            let placed =
                orders::place_order(&mariadb_pool().await?, CustomerId(customer), &lines).await?;
            if json {
                print_json(&placed);
            } else {
                println!("order {} placed, total {}", placed.order_id, placed.total);
            }
        }
        OrderCommand::Cancel { order, json } => {
            orders::cancel_order(&mariadb_pool().await?, OrderId(order)).await?;
            if json {
                print_json(&serde_json::json!({ "order_id": order, "cancelled": true }));
            } else {
                println!("order {order} cancelled; stock restored");
            }
        }
    }
    Ok(EXIT_OK)
}
