//! `aethermart bench …`: the platform's figures.

use crate::opt::BenchCommand;
use crate::output::{print_json, print_load_summary, print_migration, print_migration_stages};
use crate::{EXIT_OK, progress};
use aethermart_core::Error;
use aethermart_core::bench::{
    self, MigrateFigures, MigrateMedians, PhaseCpu, PlaceOrderBench, SyncBench, SyncFigures,
};
use aethermart_core::config::Config;
use aethermart_core::generate::GenerateConfig;
use aethermart_core::migrate::MigrateOptions;
use aethermart_core::sync::Capture;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(command: BenchCommand) -> Result<u8, Error> {
    match command {
        BenchCommand::Migrate {
            args,
            runs,
            parallel,
            batch_size,
        } => {
            let (settings, options) = args.settings()?;
            let migrate = MigrateOptions {
                parallel_entities: usize::from(parallel),
                batch_size,
                ..MigrateOptions::default()
            };
            let config = Config::from_env()?;
            let mut all = Vec::new();
            for run in 1..=runs {
                let figures = bench::migrate_throughput(
                    &config,
                    settings,
                    options,
                    migrate,
                    Arc::new(progress::Bars::new()),
                )
                .await?;
                if !args.json {
                    println!("run {run} of {runs}");
                    print_migrate_figures(&figures);
                }
                all.push(figures);
            }
            let medians = MigrateMedians::of(&all);
            if args.json {
                print_json(&serde_json::json!({ "runs": all, "medians": medians }));
            } else {
                if parallel > 1 {
                    println!(
                        "(entities ran at the same time, sharing the servers: --parallel 1 runs \
                         them one after another, each path alone, to compare them per document)"
                    );
                }
                println!(
                    "median of {runs} runs: migration {:.0} documents/s; raw insert_many {:.0} documents/s; \
                     ratio {:.0}%; profiles {} of the orders' documents/s",
                    medians.migration_per_second,
                    medians.raw_insert_per_second,
                    100.0 * medians.ratio,
                    percent(medians.profiles_to_orders),
                );
            }
            Ok(EXIT_OK)
        }
        BenchCommand::Search { data, model } => {
            let (settings, options) = data.settings()?;
            let figures = bench::search_quality(
                &Config::from_env()?,
                settings,
                options,
                &model.dir(),
                Arc::new(progress::Bars::new()),
            )
            .await?;
            if data.json {
                print_json(&figures);
            } else {
                print_search(&figures, &settings);
            }
            Ok(EXIT_OK)
        }
        BenchCommand::Generate { args, capture } => {
            let (settings, options) = args.settings()?;
            // The parser allows only the two names.
            let capture: Capture = capture.parse().unwrap_or(Capture::Triggers);
            let figures = bench::generate_throughput(
                &Config::from_env()?,
                settings,
                options,
                capture,
                Arc::new(progress::Bars::new()),
            )
            .await?;
            if args.json {
                print_json(&figures);
            } else {
                println!(
                    "generate benchmark, scale {} seed {}, {capture} capture",
                    settings.scale, settings.seed
                );
                print_load_summary(&figures.summary);
                match figures.peak_rss_mib {
                    Some(mib) => println!("peak RSS: {mib:.0} MiB"),
                    None => println!("peak RSS: not reported by this OS"),
                }
            }
            Ok(EXIT_OK)
        }
        BenchCommand::PlaceOrder {
            clients,
            seconds,
            capture,
            worker,
            json,
        } => {
            let settings = PlaceOrderBench {
                clients,
                duration: Duration::from_secs(seconds),
                // The parser allows only the two names.
                capture: capture.parse().unwrap_or(Capture::Triggers),
                worker,
                ..PlaceOrderBench::default()
            };
            let config = Config::from_env()?;
            eprintln!(
                "place-order benchmark: {} s per run, database {}_bench, {capture} capture, {}",
                seconds,
                config.mariadb.database(),
                if worker {
                    "a sync worker following"
                } else {
                    "no worker"
                }
            );
            let runs = bench::place_order_throughput(&config, &settings).await?;
            if json {
                print_json(&runs);
                return Ok(EXIT_OK);
            }
            println!(
                "{:>8} {:>10} {:>12} {:>10} {:>10}",
                "clients", "orders", "orders/s", "p50 ms", "p99 ms"
            );
            for r in runs {
                println!(
                    "{:>8} {:>10} {:>12.1} {:>10.2} {:>10.2}",
                    r.clients, r.orders, r.orders_per_second, r.p50_ms, r.p99_ms
                );
            }
            Ok(EXIT_OK)
        }
        BenchCommand::Sync {
            rates,
            seconds,
            customers,
            capture,
            sync,
            json,
        } => {
            let config = Config::from_env()?;
            let mut all = Vec::new();
            for name in &capture {
                // The parser allows only the two names.
                let capture: Capture = name.parse().unwrap_or(Capture::Triggers);
                let settings = SyncBench {
                    customers,
                    rates: rates.clone(),
                    duration: Duration::from_secs(seconds),
                    backlog: customers,
                    options: sync.options(),
                    capture,
                };
                eprintln!(
                    "sync benchmark, {capture} capture: {customers} customers, {seconds} s per rate, databases {}_bench",
                    config.mariadb.database()
                );
                let spinner = progress::Spinner::new("measuring (about a minute)");
                let figures = bench::sync_throughput(&config, &settings).await?;
                drop(spinner);
                all.push(figures);
            }
            if json {
                print_json(&all);
                return Ok(EXIT_OK);
            }
            for figures in &all {
                print_sync_figures(figures);
            }
            if let [a, b] = all.as_slice()
                && a.capture != b.capture
            {
                let (binlog, triggers) = if a.capture == Capture::Binlog {
                    (a, b)
                } else {
                    (b, a)
                };
                print_sync_ratios(binlog, triggers);
            }
            Ok(EXIT_OK)
        }
    }
}

fn print_sync_figures(figures: &SyncFigures) {
    let ms = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.4}"));
    println!("{} capture", figures.capture);
    println!(
        "{:>10} {:>12} {:>9} {:>9} {:>9} {:>18} {:>19} {:>19}",
        "changes/s",
        "achieved/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "worker CPU ms/chg",
        "MariaDB CPU ms/chg",
        "MongoDB CPU ms/chg"
    );
    for r in &figures.latency {
        println!(
            "{:>10} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>18.4} {:>19} {:>19}",
            r.rate,
            r.achieved_rate,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.worker_cpu_ms_per_change,
            ms(r.mariadb_cpu_ms_per_change),
            ms(r.mongodb_cpu_ms_per_change)
        );
    }
    println!(
        "MariaDB CPU per change while one worker drains the backlog: {} ms",
        ms(figures.one_worker_mariadb_cpu_ms_per_change)
    );
    let two = figures
        .two_workers_per_second
        .map_or("n/a (one binlog reader per database)".to_owned(), |v| {
            format!("{v:.0} changes/s")
        });
    println!(
        "drain of {} changes: one worker {:.0} changes/s, two workers {two}; \
         raw bulk upsert {:.0} documents/s; one worker = {:.0}% of raw",
        figures.backlog,
        figures.one_worker_per_second,
        figures.raw_upsert_per_second,
        100.0 * figures.one_worker_ratio()
    );
    println!();
}

/// Binlog capture against trigger capture, measured in one run on the same servers.
fn print_sync_ratios(binlog: &SyncFigures, triggers: &SyncFigures) {
    println!("binlog / triggers (lower is better for latency and CPU):");
    for (b, t) in binlog.latency.iter().zip(&triggers.latency) {
        let cpu = match (b.system_cpu_ms_per_change(), t.system_cpu_ms_per_change()) {
            (Some(b), Some(t)) => format!(
                "worker + MariaDB + MongoDB CPU per change {b:.4} / {t:.4} ms = {:.2}x",
                b / t.max(1e-9)
            ),
            _ => "whole-system CPU: n/a (a server is not on this machine)".to_owned(),
        };
        println!(
            "  at {} changes/s: p99 {:.2} ms / {:.2} ms = {:.2}x; {cpu}",
            b.rate,
            b.p99_ms,
            t.p99_ms,
            b.p99_ms / t.p99_ms.max(1e-9),
        );
    }
    println!(
        "  drain: {:.0}% of raw (binlog) against {:.0}% (triggers)",
        100.0 * binlog.one_worker_ratio(),
        100.0 * triggers.one_worker_ratio()
    );
}

/// One run of `bench migrate`: the entities, their stages, the CPU of each phase, the ratios.
fn print_migrate_figures(figures: &MigrateFigures) {
    print_migration(&figures.migration);
    print_migration_stages(&figures.migration);
    let cpu = |name: &str, p: &PhaseCpu| {
        let part =
            |what: &str, s: Option<f64>| s.map(|s| format!(", {what} {s:.2}")).unwrap_or_default(); // not measured: left out
        println!(
            "  CPU seconds, {name} ({:.2} s){}{}{}",
            p.seconds,
            part("this process", p.this_process),
            part("MariaDB", p.mariadb),
            part("MongoDB", p.mongodb),
        );
    };
    cpu("migration", &figures.migration_cpu);
    cpu("raw insert_many", &figures.raw_cpu);
    println!(
        "migration {:.0} documents/s; raw insert_many {:.0} documents/s ({} documents); ratio {:.0}%; \
         profiles {} of the orders' documents/s",
        figures.migration.documents_per_second(),
        figures.raw_insert_per_second,
        figures.raw_documents,
        100.0 * figures.ratio(),
        percent(figures.profiles_to_orders()),
    );
}

/// A fraction as a whole percentage, or "n/a".
fn percent(fraction: Option<f64>) -> String {
    fraction.map_or_else(|| "n/a".to_owned(), |f| format!("{:.0}%", 100.0 * f))
}

fn print_search(figures: &bench::SearchFigures, settings: &GenerateConfig) {
    println!(
        "search benchmark, scale {} seed {}: {} items, catalogue read and indexed in {:.2} s",
        settings.scale, settings.seed, figures.items, figures.index_seconds
    );
    if let Some(e) = &figures.embedding {
        println!(
            "embedding: model loaded in {:.2} s; {} texts ({} tokens) in {:.1} s: {:.0} texts/s, {:.0} tokens/s; stored in {:.2} s",
            e.model_load_seconds,
            e.texts,
            e.tokens,
            e.seconds,
            e.texts_per_second,
            e.tokens_per_second,
            e.store_seconds
        );
    }
    if let Some(why) = &figures.vectors_skipped {
        println!("vector and hybrid rankings not measured: {why}");
    }
    println!(
        "{:<8} {:>8} {:>10} {:>9} {:>9}   (latency: one search in a warm process, query embedding included)",
        "ranking", "nDCG@10", "recall@10", "p50 ms", "p99 ms"
    );
    for r in &figures.rankings {
        println!(
            "{:<8} {:>8.3} {:>10.3} {:>9.2} {:>9.2}",
            r.ranking.name(),
            r.quality.ndcg_at_10,
            r.quality.recall_at_10,
            r.p50_ms,
            r.p99_ms
        );
    }
    let mut renamed = figures.rename_to_findable_ms.clone();
    renamed.sort_by(f64::total_cmp);
    if let (Some(median), Some(max)) = (renamed.get(renamed.len() / 2), renamed.last()) {
        println!(
            "renamed product findable (first hit for its new name, new vector) through the sync: median {median:.0} ms, max {max:.0} ms of {} renames",
            renamed.len()
        );
    }
    if let Some(first) = figures.rankings.first() {
        println!(
            "({} labelled queries, {} timed searches per ranking)",
            first.quality.queries, first.searches
        );
    }
}
