//! `aethermart search`.

use crate::EXIT_OK;
use crate::opt::SearchArgs;
use crate::output::print_json;
use aethermart_core::config::Config;
use aethermart_core::search::{Catalogue, Kind, Query};
use aethermart_core::{Error, connect};

pub async fn run(args: SearchArgs) -> Result<u8, Error> {
    let config = Config::from_env()?;
    let mongo = connect::mongodb_database(&config.mongodb).await?;
    let catalogue = Catalogue::load(&mongo).await?;
    // The parser allows only the two names.
    let kind = args.kind.as_deref().and_then(|k| k.parse::<Kind>().ok());
    let query = Query {
        k: args.k as usize,
        kind,
        category: args.category.as_deref(),
        min_price: args.min_price,
        max_price: args.max_price,
        in_stock: args.in_stock,
        ..Query::new(&args.query)
    };
    let hits = catalogue.search(&query);
    for skipped in catalogue.skipped() {
        eprintln!("warning: left out of the search: {skipped}");
    }
    if args.json {
        print_json(&hits);
        return Ok(EXIT_OK);
    }
    if catalogue.items().is_empty() {
        println!(
            "the catalogue in MongoDB database `{}` is empty: run `aethermart up` (or migrate) first",
            mongo.name()
        );
    } else if hits.is_empty() {
        println!("no item matches");
    }
    for h in &hits {
        println!(
            "{:>6.2}  {:<7} {:>6}  {:<40} {:>9}  {}",
            h.score,
            h.kind.name(),
            h.id,
            h.name,
            h.price,
            h.category_path.join(" > ")
        );
    }
    Ok(EXIT_OK)
}
