//! Place and cancel an order through the typed API, handling each refusal by its variant.
//!
//! Run on a database with data (e.g. after `scripts/demo.sh`):
//! `eval "$(scripts/services.sh env)"; cargo run -p aethermart-examples --bin place_and_cancel -- 1 2`
//! (customer id, product id).

use aethermart_core::cluster;
use aethermart_core::config::Config;
use aethermart_core::model::{CustomerId, NewOrderLine, ProductId};
use aethermart_core::orders::{self, PlaceOrderError};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let (Some(Ok(customer)), Some(Ok(product))) = (args.next(), args.next()) else {
        eprintln!("usage: place_and_cancel CUSTOMER_ID PRODUCT_ID");
        return ExitCode::from(2);
    };
    match run(customer, product).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(customer: u64, product: u64) -> Result<(), aethermart_core::Error> {
    let config = Config::from_env()?;
    let pool = cluster::writable_pool(&config.mariadb, Default::default()).await?;
    let lines = [NewOrderLine::Product {
        product_id: ProductId(product),
        quantity: 1,
    }];
    let placed = match orders::place_order(&pool, CustomerId(customer), &lines).await {
        Ok(placed) => placed,
        // Each refusal is its own variant: react to the ones your service expects.
        Err(PlaceOrderError::InsufficientStock(message)) => {
            println!("sold out: {message}");
            return Ok(());
        }
        Err(e) if e.is_retryable() => {
            println!("busy, try again: {e}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    println!("placed order {} for {}", placed.order_id, placed.total);
    orders::cancel_order(&pool, placed.order_id).await?;
    println!("cancelled order {}: stock is back", placed.order_id);
    Ok(())
}
