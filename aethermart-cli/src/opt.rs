//! Every clap type of `aethermart`: the commands, their arguments and their help.

use aethermart_core::Error;
use aethermart_core::generate::{GenerateConfig, LoadOptions};
use aethermart_core::model::{NewOrderLine, ProductId, ServiceId};
pub use aethermart_core::search::model::ModelArgs;
use aethermart_core::sync::SyncArgs;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand};

/// AetherMart data platform: MariaDB (operational, 3NF) and MongoDB (documents), kept in sync.
///
/// Configuration comes from the environment: AETHERMART_MARIADB_URL, AETHERMART_MONGODB_URI and
/// optionally MARIA_DB_PASS / MONGO_ADMIN_PASS for the passwords. `scripts/services.sh env`
/// prints them for the local servers.
///
/// Exit codes: 0 success, 1 a check failed, 2 the command could not run.
#[derive(Debug, Parser)]
#[command(name = "aethermart", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect to both stores and check the settings the platform relies on.
    ///
    /// Prints each server's version and checks (character set, binlog format, read_only, Galera
    /// state, MongoDB version and primary). Exits 1 when a server is down or a check fails.
    ///
    /// Example: aethermart doctor --json
    Doctor {
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The whole platform in one command: schema, data, roles, initial migration, verification.
    ///
    /// Steps: teardown (only with --fresh --yes) -> schema apply -> generate (into an empty
    /// database; existing data is kept) -> security apply (when AETHERMART_ALEX_PASSWORD,
    /// AETHERMART_SARAH_PASSWORD, AETHERMART_MARIA_PASSWORD and AETHERMART_WORKER_PASSWORD are set)
    /// -> capture (switched with --capture, else kept) -> migrate -> verify.
    /// Each step is timed; a failure stops at the step and names it. Safe to run again. Then
    /// start `aethermart-worker` to keep MongoDB in step.
    ///
    /// Example: aethermart up --fresh --yes --scale 0.05
    Up(UpArgs),
    /// Apply, inspect or tear down the MariaDB schema (versioned scripts embedded in the binary).
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Generate realistic data and load it into both stores (empty, schema applied).
    ///
    /// Deterministic: the same --seed, --scale and --as-of always give byte-identical data.
    /// Scale 1 is about 10,000 customers, 2,000 products, 200 services, 100,000 orders
    /// (300,000 lines) and 30,000 reviews; scales are linear and may be fractional.
    ///
    /// Example: aethermart generate --scale 0.1 --seed 42
    Generate(GenerateArgs),
    /// Copy MariaDB into MongoDB documents (customer_profiles, products, services, orders).
    ///
    /// Sets up the collections (validators, indexes), then streams each entity in pages and
    /// writes idempotent bulk upserts, checkpointing after every batch. --resume continues after
    /// the checkpoints of an interrupted run; --verify compares both stores afterwards (or only
    /// verifies, with --verify-only). Exits 1 when a document was refused or stores differ.
    ///
    /// Example: aethermart migrate --verify
    Migrate(MigrateArgs),
    /// Place or cancel orders through sp_PlaceOrder / sp_CancelOrder.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Read the reporting views (from a replica with --from-replica).
    Report(ReportArgs),
    /// Show the lineage of data movements (generate, migrate, sync) from data_lineage_tracker.
    ///
    /// Without --run: the newest --limit rows. --openlineage prints OpenLineage RunEvents
    /// (START, then COMPLETE or FAIL, with input and output datasets), one JSON object per line.
    ///
    /// Example: aethermart lineage --run 6f76d2d3-1769-e4a1-35be-543854677d39 --openlineage
    Lineage(LineageArgs),
    /// Search the catalogue (products and consultations) in a shopper's own words.
    ///
    /// Ranks the items in MongoDB by their words (BM25 over name, description and category
    /// path) and by meaning (cosine similarity of sentence embeddings from the local model
    /// all-MiniLM-L6-v2, the item's and its category's), fused (z-scores added, the words'
    /// weighted 0.2), with filters. Without the model or stored vectors it ranks by words
    /// alone and says so. Exits 0 with or without hits, 2 on
    /// bad arguments or `--ranking vector` without a model.
    ///
    /// `aethermart search reindex` recomputes the stored vectors.
    ///
    /// Examples:
    ///   aethermart search "wifi does not reach the upstairs bedrooms" --k 5
    ///   aethermart search "quiet pc for my living room" --kind product --max-price 1500 --json
    ///   aethermart search reindex
    #[command(verbatim_doc_comment)]
    Search(SearchArgs),
    /// Data quality and cross-store reconciliation checks, logged to data_quality_logs.
    #[command(subcommand)]
    Quality(QualityCommand),
    /// Roles and users: administration (alex), analytics (sarah), data engineering (maria).
    #[command(subcommand)]
    Security(SecurityCommand),
    /// Inspect the real-time sync (the worker itself is `aethermart-worker`).
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Show or switch how changes are captured: triggers (queues in MariaDB) or binlog.
    ///
    /// The capture is a property of the database, recorded in sync_settings; workers follow it
    /// (and stop when it is switched under them). Switching loses no change while writes go on.
    /// Binlog capture needs a server with log_bin, binlog_format=ROW, binlog_row_image=FULL,
    /// binlog_row_metadata=FULL, and a recorded position (`aethermart migrate` records one).
    ///
    /// Example: aethermart capture set binlog
    #[command(subcommand)]
    Capture(CaptureCommand),
    /// A MariaDB cluster (Galera nodes, or a primary and replicas): node states, network rules.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Measure the platform's speed and print the figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print a shell completion script.
    ///
    /// Examples:
    ///   aethermart completions bash > /etc/bash_completion.d/aethermart
    ///   aethermart completions zsh > ~/.zfunc/_aethermart
    ///   aethermart completions fish > ~/.config/fish/completions/aethermart.fish
    #[command(verbatim_doc_comment)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Drop both databases first (needs --yes).
    #[arg(long, requires = "yes")]
    pub fresh: bool,
    /// Confirm --fresh.
    #[arg(long)]
    pub yes: bool,
    /// Size of the data set generated into an empty database (1.0 = 100,000 orders).
    #[arg(long, default_value_t = 0.05)]
    pub scale: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The day the data ends, YYYY-MM-DD; today by default.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Switch the capture before the migration: binlog (the workers follow the binary log;
    /// writers pay nothing for the sync) or triggers (queues in MariaDB). Default: keep it.
    #[arg(long, value_parser = ["binlog", "triggers"])]
    pub capture: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Continue each entity after its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Compare counts and per-document hashes afterwards.
    #[arg(long)]
    pub verify: bool,
    /// Only compare, do not migrate.
    #[arg(long, conflicts_with_all = ["resume", "verify"])]
    pub verify_only: bool,
    /// Rows per page and per bulk write (profiles: at most 1,000, one transaction per page).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=5_000))]
    pub batch_size: u32,
    /// Entities migrated at the same time (1 to 4).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=4))]
    pub parallel: u16,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum CaptureCommand {
    /// Print the database's capture.
    Show {
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Switch the capture (as the administrator). To binlog: records the current GTID position
    /// as where binlog capture starts and turns what the triggers queued into requests; to
    /// triggers: queues what changed since the binlog position stored. Workers of the other
    /// capture stop at their next batch (exit 1; restart them).
    Set {
        /// The capture to switch to.
        #[arg(value_parser = ["binlog", "triggers"])]
        capture: String,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct LineageArgs {
    /// Only the rows of this run.
    #[arg(long)]
    pub run: Option<String>,
    /// How many of the newest rows (without --run).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Print the rows as JSON.
    #[arg(long, conflicts_with = "openlineage")]
    pub json: bool,
    /// Print OpenLineage RunEvents (JSON lines).
    #[arg(long)]
    pub openlineage: bool,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SearchArgs {
    #[command(subcommand)]
    pub command: Option<SearchCommand>,
    /// What the shopper typed.
    #[arg(required = true)]
    pub query: Option<String>,
    /// How hits are ranked: hybrid (words and meaning, fused), lexical (words) or vector
    /// (meaning).
    #[arg(long, default_value = "hybrid", value_parser = ["hybrid", "lexical", "vector"])]
    pub ranking: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Only products or only services.
    #[arg(long, value_parser = ["product", "service"])]
    pub kind: Option<String>,
    /// How many hits.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub k: u32,
    /// Only items under a category of this name (any level, case-insensitive).
    #[arg(long)]
    pub category: Option<String>,
    /// Only items at this price or above.
    #[arg(long)]
    pub min_price: Option<rust_decimal::Decimal>,
    /// Only items at this price or below.
    #[arg(long)]
    pub max_price: Option<rust_decimal::Decimal>,
    /// Only items in stock (and active).
    #[arg(long)]
    pub in_stock: bool,
    /// Print the hits as JSON (kind, id, name, category_path, price, score).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Recompute the search vector of every product and service and store it (progress bar);
    /// remove those of items that are gone.
    ///
    /// Needed after a model change, after the sync ran without the model, or to repair what
    /// `aethermart quality check` reports as stale search vectors. Exits 0 when done, 2 when the
    /// model is missing.
    ///
    /// Example: aethermart search reindex --stale-only
    Reindex {
        /// Only the items whose vector is missing or not for their current text.
        #[arg(long)]
        stale_only: bool,
        #[command(flatten)]
        model: ModelArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub report: ReportCommand,
    /// Read from the freshest replica among the nodes of AETHERMART_MARIADB_URL; refused
    /// (exit 2) when every replica lags more than --max-lag behind its primary.
    #[arg(long, global = true)]
    pub from_replica: bool,
    /// Seconds a replica may lag for --from-replica.
    #[arg(long, global = true, default_value_t = 5, requires = "from_replica")]
    pub max_lag: u64,
    /// Print the rows as JSON.
    #[arg(long, global = true, conflicts_with = "csv")]
    pub json: bool,
    /// Print the rows as CSV (a header line, then one line per row).
    #[arg(long, global = true)]
    pub csv: bool,
}

#[derive(Debug, Subcommand)]
pub enum QualityCommand {
    /// Run every check: invalid e-mails, negative stock, order totals, orphan rows and reviews,
    /// stale search vectors, stale sync, dead letters, and the reconciliation of both stores (counts and per-document
    /// hashes). Each result goes to data_quality_logs. Exits 1 when an error check fails.
    ///
    /// Example: aethermart quality check --stale-after 60
    Check {
        /// Seconds after which a queued change counts as stale.
        #[arg(long, default_value_t = 300)]
        stale_after: u64,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecurityCommand {
    /// Create or update the roles, their grants on the database, and the users.
    ///
    /// Passwords come from AETHERMART_ALEX_PASSWORD, AETHERMART_SARAH_PASSWORD and
    /// AETHERMART_MARIA_PASSWORD and AETHERMART_WORKER_PASSWORD (the sync worker's service account); all
    /// four are checked before anything changes. Safe to run
    /// again (it also completes a run that stopped halfway).
    ///
    /// Example: aethermart security apply
    Apply,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Touch a customer in MariaDB and time until MongoDB shows it (a worker must run).
    ///
    /// Only the customer's updated_at changes. Exits 1 when the change does not arrive.
    ///
    /// Example: aethermart sync probe --customer 1
    Probe {
        /// The customer to touch.
        #[arg(long, default_value_t = 1)]
        customer: u64,
        /// Seconds to wait.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Each queue's waiting changes, retries, oldest age and dead letters.
    ///
    /// Exits 1 when a change sits in sync_dead_letters (it needs a look). With --watch, redraws
    /// every --interval seconds until Ctrl-C (the worker's own page at http://ADDR/ shows the
    /// same with charts).
    ///
    /// Examples:
    ///   aethermart sync status --json
    ///   aethermart sync status --watch --interval 2
    #[command(verbatim_doc_comment)]
    Status {
        /// Print the status as JSON.
        #[arg(long, conflicts_with = "watch")]
        json: bool,
        /// Redraw until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Seconds between redraws with --watch.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
    },
    /// Changes that failed too often: list them, put them back on their queue, or discard them.
    ///
    /// Works from an engineer's account (`maria`): through the view v_sync_dead_letters and the
    /// procedure sp_ResolveDeadLetter, which records the caller in sync_operator_log.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Ask for documents to be synced again: a running worker rewrites them from the current rows
    /// (after a manual fix in MongoDB, a restore, or to check a suspicion).
    ///
    /// The keys go through sp_RequestResync (10,000 per call, each recorded in
    /// sync_operator_log). --where selects rows of the entity's own table with a small predicate
    /// language, evaluated with your own SELECT rights: comparisons (= != <> < <= > >=), IN,
    /// BETWEEN, IS NULL, IS NOT NULL, AND, OR, NOT and parentheses over the table's columns; literals are
    /// numbers, 'text' ('' for a quote), TRUE and FALSE, and every one is a bound parameter.
    ///
    /// Examples:
    ///   aethermart sync resync --entity customers --keys 1,2,3
    ///   aethermart sync resync --entity orders --where "status = 'paid' AND placed_at >= '2026-11-01'"
    ///   aethermart sync resync --entity products --all
    #[command(verbatim_doc_comment)]
    Resync(ResyncArgs),
}

/// An entity's name on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EntityName {
    /// customer_profiles (customer_sync_queue)
    Customers,
    /// products (product_sync_queue)
    Products,
    /// services (service_sync_queue)
    Services,
    /// orders (order_sync_queue)
    Orders,
}

impl EntityName {
    pub fn entity(self) -> aethermart_core::projection::Entity {
        use aethermart_core::projection::Entity;
        match self {
            Self::Customers => Entity::Customers,
            Self::Products => Entity::Products,
            Self::Services => Entity::Services,
            Self::Orders => Entity::Orders,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// The dead letters, oldest first: id, queue, key, attempts, when, and why (field, key and
    /// rule, never a value).
    ///
    /// Example: aethermart sync dead-letters list --queue customers --json
    List {
        /// Only this entity's queue.
        #[arg(long, value_enum)]
        queue: Option<EntityName>,
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back on their queue (fix the data first), all in one transaction.
    ///
    /// Example: aethermart sync dead-letters requeue --id 7
    Requeue(DeadLetterSelection),
    /// Drop dead letters (the document is right as it is), all in one transaction.
    ///
    /// Example: aethermart sync dead-letters discard --queue orders
    Discard(DeadLetterSelection),
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct DeadLetterSelection {
    /// One dead letter, by its id.
    #[arg(long)]
    pub id: Option<u64>,
    /// Every dead letter of this entity's queue.
    #[arg(long, value_enum)]
    pub queue: Option<EntityName>,
    /// Every dead letter.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
pub struct ResyncArgs {
    /// Whose documents.
    #[arg(long, value_enum)]
    pub entity: EntityName,
    #[command(flatten)]
    pub keys: ResyncSelection,
    /// Print the count as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ResyncSelection {
    /// These keys, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub keys: Option<Vec<u64>>,
    /// The rows of the entity's table matching this predicate.
    #[arg(long = "where", value_name = "PREDICATE")]
    pub predicate: Option<String>,
    /// Every row of the entity's table.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Size of the data set (1.0 = 100,000 orders); between 0.0001 and 200.
    #[arg(long, default_value_t = 0.1)]
    pub scale: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The day the data ends (orders cover the 8 quarters up to it), YYYY-MM-DD; today by default.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// MariaDB connections writing in parallel.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub connections: u16,
    /// Drop the MongoDB collections generate fills (reviews, customer_profiles) first.
    #[arg(long)]
    pub replace_documents: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

impl GenerateArgs {
    pub fn settings(&self) -> Result<(GenerateConfig, LoadOptions), Error> {
        let as_of = self.as_of.unwrap_or_else(|| Utc::now().date_naive());
        let settings = GenerateConfig::new(self.seed, self.scale, as_of)?;
        Ok((
            settings,
            LoadOptions {
                connections: usize::from(self.connections),
                replace_documents: self.replace_documents,
            },
        ))
    }
}

#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Place an order atomically. Exits 1 when the database refuses it (stock, unknown ids, …).
    ///
    /// Example: aethermart order place --customer 17 --product 3:2 --product 9 --service 4@2026-12-01T10:00:00Z
    Place {
        /// The customer's id.
        #[arg(long)]
        customer: u64,
        /// A product line, `ID` or `ID:QUANTITY` (repeatable).
        #[arg(long, value_parser = parse_product_line)]
        product: Vec<NewOrderLine>,
        /// A consultation line, `ID@START` with START in RFC 3339 (repeatable).
        #[arg(long, value_parser = parse_service_line)]
        service: Vec<NewOrderLine>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a pending or paid order: stock goes back, consultation slots are freed.
    ///
    /// Example: aethermart order cancel 42
    Cancel {
        /// The order's id.
        order: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Revenue, orders and units per quarter and category (v_QuarterlySales).
    ///
    /// Example: aethermart report sales --since 2026-01-01
    Sales {
        /// Only orders placed on or after this day (YYYY-MM-DD); whole history without it.
        #[arg(long)]
        since: Option<NaiveDate>,
    },
    /// Active products with 10 units or fewer (v_LowStock).
    ///
    /// Example: aethermart report low-stock --limit 20
    LowStock {
        /// At most this many products.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One customer's order summary and latest orders.
    ///
    /// Example: aethermart report customer 17
    Customer {
        /// The customer's id.
        customer: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Documents/s of the whole migration beside MongoDB's raw insert_many rate, same run.
    ///
    /// Each run generates --scale into DATABASE_bench on both stores, migrates it, then inserts
    /// the same number of order documents with insert_many into a scratch collection. Prints
    /// per run each entity's stage times and the CPU of this process and of both servers, then
    /// the medians over the runs.
    ///
    /// Example: aethermart bench migrate --scale 1 --runs 3
    Migrate {
        /// What to generate.
        #[command(flatten)]
        args: GenerateArgs,
        /// Runs (each generates afresh, migrates, then inserts raw); the medians are printed
        /// after them.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        runs: u32,
        /// Entities migrated at the same time (1 to 4), as `migrate --parallel`.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=4))]
        parallel: u16,
        /// Rows per page and per bulk write, as `migrate --batch-size`.
        #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=5_000))]
        batch_size: u32,
    },
    /// Search quality (nDCG@10, recall@10 over the labelled queries) of the lexical, vector
    /// and hybrid rankings, query latency, and the embedding model's throughput.
    ///
    /// Generates --scale into DATABASE_bench on both stores, migrates it, computes every search
    /// vector with the model (texts/s, tokens/s), reads the catalogue from MongoDB and runs
    /// every labelled query (aethermart-core/data/search_queries.json). Without the model, only
    /// the lexical ranking (and it says why).
    ///
    /// Example: aethermart bench search --scale 1
    Search {
        #[command(flatten)]
        data: GenerateArgs,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Rows/s into MariaDB and documents/s into MongoDB of `generate`, and peak memory.
    ///
    /// Runs in its own databases (DATABASE_bench on both stores), recreated each time.
    ///
    /// Example: aethermart bench generate --scale 1 --capture binlog
    Generate {
        /// What to generate.
        #[command(flatten)]
        args: GenerateArgs,
        /// The capture of the bench database while loading: triggers (the capture triggers
        /// fire for every row) or binlog (they are dropped).
        #[arg(long, default_value = "triggers", value_parser = ["binlog", "triggers"])]
        capture: String,
    },
    /// Orders/s and p50/p99 latency of sp_PlaceOrder at several client counts.
    ///
    /// Runs in its own database (DATABASE_bench), recreated each time.
    ///
    /// Example: aethermart bench place-order --clients 1,4,16 --seconds 10
    PlaceOrder {
        /// Concurrent clients, one run per value.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
        clients: Vec<usize>,
        /// Seconds per run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// The capture of the bench database: triggers (the capture triggers fire on every
        /// order) or binlog (they are dropped).
        #[arg(long, default_value = "triggers", value_parser = ["binlog", "triggers"])]
        capture: String,
        /// Run a sync worker meanwhile (on its own thread, every entity, after an initial
        /// migration of the catalogue), as in production.
        #[arg(long)]
        worker: bool,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sync worker: commit-to-MongoDB latency at fixed change rates, worker CPU per change,
    /// and the drain rate of one and two workers beside MongoDB's raw bulk-upsert rate.
    ///
    /// Runs in its own databases (DATABASE_bench on both stores), recreated each time. Each
    /// change updates one customer; each worker runs on a thread of its own.
    ///
    /// Example: aethermart bench sync --rates 500,2000 --seconds 10
    Sync {
        /// Changes per second of the latency runs, one run per value.
        #[arg(long, value_delimiter = ',', default_values_t = [500, 2000])]
        rates: Vec<u32>,
        /// Seconds per latency run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Customers in the bench database (also the backlog of the drain runs).
        #[arg(long, default_value_t = 20_000)]
        customers: u32,
        /// The captures to measure, one after the other on the same servers (each in fresh
        /// bench databases); with both, the ratios binlog / triggers are printed too.
        #[arg(long, value_delimiter = ',', default_values_t = ["binlog".to_owned(), "triggers".to_owned()],
              value_parser = ["binlog", "triggers"])]
        capture: Vec<String>,
        /// The worker's options.
        #[command(flatten)]
        sync: SyncArgs,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn parse_product_line(text: &str) -> Result<NewOrderLine, String> {
    let (id, quantity) = text.split_once(':').unwrap_or((text, "1"));
    let product_id = id
        .parse()
        .map_err(|_| format!("product id {id:?} is not a number"))?;
    let quantity = quantity
        .parse()
        .map_err(|_| format!("quantity {quantity:?} is not a whole number"))?;
    Ok(NewOrderLine::Product {
        product_id: ProductId(product_id),
        quantity,
    })
}

pub fn parse_service_line(text: &str) -> Result<NewOrderLine, String> {
    let (id, start) = text
        .split_once('@')
        .ok_or_else(|| format!("{text:?} is not ID@START (e.g. 4@2026-12-01T10:00:00Z)"))?;
    let service_id = id
        .parse()
        .map_err(|_| format!("service id {id:?} is not a number"))?;
    let starts_at = DateTime::parse_from_rfc3339(start)
        .map_err(|e| format!("start {start:?} is not RFC 3339: {e}"))?
        .with_timezone(&Utc);
    Ok(NewOrderLine::Service {
        service_id: ServiceId(service_id),
        starts_at,
    })
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Apply every pending schema version, in order, under a lock. Safe to run again.
    ///
    /// Creates the database named in AETHERMART_MARIADB_URL if it does not exist. Refuses to
    /// continue when an applied script was edited since (drift) or failed half-way (dirty).
    ///
    /// Example: aethermart schema apply
    Apply,
    /// Show each schema version: applied, pending, drift, dirty. Exits 1 unless all are applied.
    ///
    /// Example: aethermart schema status --json
    Status {
        /// Print the versions as JSON (version, description, state).
        #[arg(long)]
        json: bool,
    },
    /// Drop the database and recreate it empty. Destroys all data: requires --yes.
    ///
    /// Example: aethermart schema teardown --yes
    Teardown {
        /// Confirm that the whole database may be dropped.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Every node of AETHERMART_MARIADB_URL (a host list names a cluster's nodes): role, state,
    /// cluster size, whether it takes writes, replication threads, lag and GTID position.
    ///
    /// A node that cannot be reached is shown as down next to the others. Exits 1 when a node
    /// is down, a Galera node is not Synced in the primary component, a replica's replication
    /// is stopped, or no node takes writes.
    ///
    /// Example: aethermart cluster status --json
    Status {
        /// Print the nodes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print nftables rules that let only the cluster's nodes reach MariaDB (3306), Galera
    /// replication (4567 tcp/udp), IST (4568) and SST (4444); everything else is left alone.
    ///
    /// Load the output on every node with `nft -f FILE` (loading again replaces it).
    ///
    /// Example: aethermart cluster firewall --node 10.0.0.1 --node 10.0.0.2 --node 10.0.0.3
    Firewall {
        /// A node's address (IPv4 or IPv6); at least two.
        #[arg(long = "node", value_name = "IP", required = true)]
        nodes: Vec<String>,
        /// An application host or network (10.0.1.0/24) that may reach MariaDB's port as well.
        #[arg(long = "client", value_name = "IP[/PREFIX]")]
        clients: Vec<String>,
        /// MariaDB's port (clients, replicas).
        #[arg(long, default_value_t = 3306, value_parser = clap::value_parser!(u16).range(1..))]
        mariadb_port: u16,
        /// Galera's state snapshot transfer port.
        #[arg(long, default_value_t = 4444, value_parser = clap::value_parser!(u16).range(1..))]
        sst_port: u16,
        /// Galera's replication port (TCP and UDP).
        #[arg(long, default_value_t = 4567, value_parser = clap::value_parser!(u16).range(1..))]
        replication_port: u16,
        /// Galera's incremental state transfer port.
        #[arg(long, default_value_t = 4568, value_parser = clap::value_parser!(u16).range(1..))]
        ist_port: u16,
    },
}
