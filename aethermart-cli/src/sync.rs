//! `aethermart sync probe | status | dead-letters | resync` (the worker itself is
//! `aethermart-worker`).

use crate::opt::{DeadLetterCommand, DeadLetterSelection, ResyncArgs, SyncCommand};
use crate::output::print_json;
use crate::{EXIT_OK, EXIT_PROBLEM, mariadb_pool};
use aethermart_core::config::Config;
use aethermart_core::connect::{self, PoolSize};
use aethermart_core::{Error, cluster, sync};
use std::time::Duration;

pub async fn run(command: SyncCommand) -> Result<u8, Error> {
    match command {
        SyncCommand::Probe {
            customer,
            timeout,
            json,
        } => {
            let config = Config::from_env()?;
            let pool = cluster::writable_pool(&config.mariadb, PoolSize { max: 2 }).await?;
            let mongo = connect::mongodb_database(&config.mongodb).await?;
            let timeout = Duration::from_secs(timeout);
            match sync::measure_latency(&pool, &mongo, customer, timeout).await {
                Ok(latency) => {
                    let ms = latency.as_secs_f64() * 1e3;
                    if json {
                        print_json(&serde_json::json!({ "customer": customer, "latency_ms": ms }));
                    } else {
                        println!(
                            "customer {customer}: committed in MariaDB, visible in MongoDB {ms:.1} ms later"
                        );
                    }
                    Ok(EXIT_OK)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(EXIT_PROBLEM)
                }
            }
        }
        SyncCommand::Status {
            json,
            watch,
            interval,
        } => {
            let pool = mariadb_pool().await?;
            if watch {
                return watch_status(&pool, Duration::from_secs(interval)).await;
            }
            let queues = sync::queue_status(&pool).await?;
            let streams = sync::stream_status(&pool).await?;
            let config = aethermart_core::config::Config::from_env()?;
            let mongo = aethermart_core::connect::mongodb_database(&config.mongodb).await?;
            let binlog = sync::binlog_status(&pool, &mongo, config.mariadb.database()).await?;
            if json {
                print_json(&serde_json::json!({
                    "capture": binlog.capture,
                    "queues": queues,
                    "streams": streams,
                    "binlog": binlog,
                }));
            } else {
                println!("capture: {}", binlog.capture);
                print_queues(&queues);
                print_streams(&streams);
                print_binlog(&binlog);
            }
            let dead = queues.iter().any(|q| q.dead_letters > 0);
            Ok(if dead { EXIT_PROBLEM } else { EXIT_OK })
        }
        SyncCommand::DeadLetters(command) => dead_letters(command).await,
        SyncCommand::Resync(args) => resync(args).await,
    }
}

fn print_queues(queues: &[sync::QueueStatus]) {
    println!(
        "{:<22} {:<18} {:>9} {:>9} {:>7} {:>11} {:>13}",
        "queue", "collection", "pending", "retrying", "parked", "oldest s", "dead letters"
    );
    for q in queues {
        println!(
            "{:<22} {:<18} {:>9} {:>9} {:>7} {:>11.3} {:>13}",
            q.queue,
            q.collection,
            q.pending,
            q.retrying,
            q.parked,
            q.oldest_seconds,
            q.dead_letters
        );
    }
}

fn print_binlog(b: &sync::BinlogStatus) {
    if b.capture != sync::Capture::Binlog && b.stored.is_none() {
        return;
    }
    println!(
        "binlog position {} (stored {}), server at {} ({} transactions behind, every database of the server counted)",
        b.stored.as_deref().unwrap_or("none"),
        b.stored_seconds_ago
            .map_or("never".to_owned(), |s| format!("{s:.1} s ago")),
        b.server.as_deref().unwrap_or("no binlog"),
        b.behind_transactions
            .map_or("?".to_owned(), |n| n.to_string()),
    );
    match &b.leader {
        Some(l) if !l.released => println!(
            "binlog leader: {} pid {} (lease term {}, since {}, renewed {:.1} s ago{}, reading {}){}",
            l.host,
            l.pid,
            l.term,
            l.since,
            l.renewed_seconds_ago,
            format_args!(", TTL {:.1} s", l.ttl_seconds),
            l.reading.as_deref().unwrap_or("nothing yet"),
            if l.renewed_seconds_ago > l.ttl_seconds {
                ": not renewed within its TTL, a standby takes over"
            } else {
                ""
            },
        ),
        Some(l) => println!(
            "binlog leader: none (the last, {} pid {}, gave the lease up at a clean stop)",
            l.host, l.pid
        ),
        None => println!("binlog leader: none yet"),
    }
    if b.standbys.is_empty() {
        println!("binlog standbys: none");
    }
    for w in &b.standbys {
        println!(
            "binlog standby: {} pid {} (seen {:.1} s ago)",
            w.host, w.pid, w.seen_seconds_ago
        );
    }
}

fn print_streams(streams: &[sync::StreamStatus]) {
    for s in streams {
        println!(
            "change stream {}: {} events applied, newest {:.1} s ago, position stored {:.1} s ago",
            s.stream, s.events, s.last_event_seconds_ago, s.stored_seconds_ago
        );
    }
}

/// `sync status --watch`: the table again every `every`, with how the waiting changes moved,
/// until Ctrl-C. The screen is cleared between redraws only on a terminal.
async fn watch_status(pool: &sqlx::MySqlPool, every: Duration) -> Result<u8, Error> {
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    let mut previous: Option<u64> = None;
    loop {
        let queues = sync::queue_status(pool).await?;
        let pending: u64 = queues.iter().map(|q| q.pending).sum();
        if terminal {
            print!("\x1b[2J\x1b[H");
        }
        println!(
            "{}  (every {} s, Ctrl-C to stop)",
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
            every.as_secs()
        );
        print_queues(&queues);
        print_streams(&sync::stream_status(pool).await?);
        if let Some(before) = previous {
            let change = pending as f64 - before as f64;
            println!(
                "waiting: {pending} ({:+.1}/s)",
                change / every.as_secs_f64()
            );
        }
        previous = Some(pending);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(EXIT_OK),
        }
    }
}

async fn dead_letters(command: DeadLetterCommand) -> Result<u8, Error> {
    let pool = mariadb_pool().await?;
    let (selection, resolution) = match command {
        DeadLetterCommand::List { queue, json } => {
            let letters = sync::dead_letters(&pool, queue.map(|q| q.entity())).await?;
            if json {
                print_json(&letters);
            } else {
                println!(
                    "{:>6} {:<20} {:>10} {:<7} {:>8} {:<19}  error",
                    "id", "queue", "key", "op", "attempts", "dead at"
                );
                for d in &letters {
                    println!(
                        "{:>6} {:<20} {:>10} {:<7} {:>8} {:<19}  {}",
                        d.dead_letter_id,
                        d.queue,
                        d.entity_key,
                        d.operation,
                        d.attempts,
                        d.dead_at.format("%Y-%m-%d %H:%M:%S"),
                        d.error
                    );
                }
                println!("{} dead letters", letters.len());
            }
            return Ok(EXIT_OK);
        }
        DeadLetterCommand::Requeue(s) => (s, sync::Resolution::Requeue),
        DeadLetterCommand::Discard(s) => (s, sync::Resolution::Discard),
    };
    let which = selected(&selection);
    let count = sync::resolve_dead_letters(&pool, which, resolution).await?;
    let done = match resolution {
        sync::Resolution::Requeue => "requeued",
        sync::Resolution::Discard => "discarded",
    };
    println!("{count} dead letters {done}");
    Ok(EXIT_OK)
}

fn selected(s: &DeadLetterSelection) -> sync::DeadLetters {
    match (s.id, s.queue) {
        (Some(id), _) => sync::DeadLetters::Id(id),
        (None, Some(q)) => sync::DeadLetters::Queue(q.entity()),
        // clap requires exactly one of --id, --queue, --all.
        (None, None) => sync::DeadLetters::All,
    }
}

async fn resync(args: ResyncArgs) -> Result<u8, Error> {
    let pool = mariadb_pool().await?;
    let keys = match (args.keys.keys, args.keys.predicate) {
        (Some(keys), _) => sync::ResyncKeys::Keys(keys),
        (None, Some(predicate)) => sync::ResyncKeys::Where(predicate),
        // clap requires exactly one of --keys, --where, --all.
        (None, None) => sync::ResyncKeys::All,
    };
    let entity = args.entity.entity();
    let bars = crate::progress::Bars::new();
    let count = sync::request_resync(&pool, entity, keys, &bars).await?;
    if args.json {
        print_json(&serde_json::json!({ "entity": entity.name(), "keys": count }));
    } else {
        println!(
            "{count} {} queued for the sync again{}",
            entity.name(),
            if count == 0 {
                " (none given or matched)"
            } else {
                ""
            }
        );
    }
    Ok(EXIT_OK)
}
