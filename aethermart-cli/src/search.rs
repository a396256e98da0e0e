//! `aethermart search` and `aethermart search reindex`.

use crate::opt::{ModelArgs, SearchArgs, SearchCommand};
use crate::output::print_json;
use crate::{EXIT_OK, progress};
use aethermart_core::config::Config;
use aethermart_core::progress::{NoProgress, Progress};
use aethermart_core::search::embedding::Embedder;
use aethermart_core::search::{Catalogue, Kind, Query, Ranking, SearchError, index};
use aethermart_core::{Error, connect};
use std::sync::Arc;

pub async fn run(args: SearchArgs) -> Result<u8, Error> {
    if let Some(SearchCommand::Reindex {
        stale_only,
        model,
        json,
    }) = args.command
    {
        return reindex(!stale_only, &model, json).await;
    }
    let config = Config::from_env()?;
    let mongo = connect::mongodb_database(&config.mongodb).await?;
    let catalogue = Catalogue::load(&mongo).await?;
    // The parser allows only the names.
    let kind = args.kind.as_deref().and_then(|k| k.parse::<Kind>().ok());
    let ranking: Ranking = args.ranking.parse().unwrap_or_default();
    let text = args.query.unwrap_or_default();
    let vector = match ranking {
        Ranking::Lexical => None,
        _ => query_vector(&text, &args.model, &catalogue, ranking)?,
    };
    let query = Query {
        vector: vector.as_deref(),
        ranking,
        k: args.k as usize,
        kind,
        category: args.category.as_deref(),
        min_price: args.min_price,
        max_price: args.max_price,
        in_stock: args.in_stock,
        ..Query::new(&text)
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
            "{:>6.3}  {:<7} {:>6}  {:<40} {:>9}  {}",
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

/// The query's embedding; `None` (with a warning) when the hybrid ranking must do without it.
fn query_vector(
    text: &str,
    model: &ModelArgs,
    catalogue: &Catalogue,
    ranking: Ranking,
) -> Result<Option<Vec<f32>>, Error> {
    let strict = ranking == Ranking::Vector;
    if catalogue.vectors_present() == 0 && !catalogue.items().is_empty() {
        let msg = "no search vectors are stored for the current catalogue: run `aethermart search reindex`";
        if strict {
            eprintln!("warning: {msg}");
        } else {
            eprintln!("warning: {msg}; ranking by words alone");
            return Ok(None);
        }
    }
    match Embedder::load(&model.dir()) {
        Ok(embedder) => {
            let embedded = embedder.embed(&[text]).map_err(SearchError::from)?;
            Ok(embedded.vectors.into_iter().next())
        }
        Err(e) if !strict => {
            eprintln!("warning: {e}; ranking by words alone");
            Ok(None)
        }
        Err(e) => Err(SearchError::from(e).into()),
    }
}

async fn reindex(all: bool, model: &ModelArgs, json: bool) -> Result<u8, Error> {
    let config = Config::from_env()?;
    let embedder = Arc::new(Embedder::load(&model.dir()).map_err(SearchError::from)?);
    let mongo = connect::mongodb_database(&config.mongodb).await?;
    let bars: Arc<dyn Progress> = if json {
        Arc::new(NoProgress)
    } else {
        Arc::new(progress::Bars::new())
    };
    let report = index::reindex(&mongo, embedder, all, bars).await?;
    if json {
        print_json(&report);
    } else {
        println!(
            "{} of {} items embedded in {:.1} s ({:.0} texts/s, {:.0} tokens/s), stored in {:.2} s; {} vectors of gone items removed",
            report.embedded,
            report.items,
            report.embed_seconds,
            report.texts_per_second(),
            report.tokens_per_second(),
            report.store_seconds,
            report.orphans_removed
        );
    }
    Ok(EXIT_OK)
}
