//! Who reads the binlog: the leader's lease, a field `leader` of the database's document in
//! [`POSITIONS`] (next to the position it guards), and the workers' presence in
//! [`WORKERS`] (for `aethermart sync status`).
//!
//! The lease has a `term` (bumped by every takeover) and a `beats` counter the leader
//! increments every renewal. Nobody compares clocks: a standby takes over only after it saw
//! the same `(term, beats)` for a whole TTL on its own monotonic clock, and the leader counts
//! itself leader only until a fraction of the TTL after the start of its last renewal that
//! succeeded (`aethermart_core::sync::leadership`). Every write of the position names the term
//! ([`super::store::advance`]), so a leader that lost its lease cannot move it, backwards or
//! forwards.
//!
//! In MongoDB rather than MariaDB: a Galera node's death stalls every MariaDB write of the
//! cluster for about 6 s (which would have to be ridden out by the TTL), a replica the reader
//! follows is read-only, a lease row would itself be a binlog event, and no MariaDB account
//! (the application's included) can reach it. And the fencing check and the position are one
//! document: one conditional update does both.

use super::store::positions;
use mongodb::bson::{DateTime, Document, doc};

pub use super::store::POSITIONS;

/// The MongoDB collection where binlog workers show they are alive (`_id`: the worker).
pub const WORKERS: &str = "sync_binlog_workers";

/// A worker process that may hold the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Unique per process: `host:pid:random`.
    pub id: String,
    /// The machine's host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
}

impl Holder {
    /// This process.
    pub fn this_process() -> Self {
        let host = host_name();
        let pid = std::process::id();
        let id = format!("{host}:{pid}:{:08x}", rand::random::<u32>());
        Self { id, host, pid }
    }
}

/// The machine's host name (`/proc/sys/kernel/hostname`, else `HOSTNAME`, else `unknown`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// Bumped by every takeover.
    pub term: i64,
    /// [`Holder::id`] of the leader.
    pub holder: String,
    /// Its host.
    pub host: String,
    /// Its pid.
    pub pid: u32,
    /// Renewals in this term.
    pub beats: i64,
    /// When the term began (the leader's clock).
    pub since: DateTime,
    /// When it was last renewed (the leader's clock).
    pub renewed_at: DateTime,
    /// The lease's TTL, milliseconds.
    pub ttl_ms: i64,
    /// The leader gave it up (a clean stop): a standby may take over at once.
    pub released: bool,
    /// The MariaDB server (`host:port`) the leader reads the binlog from, once known.
    pub reading: Option<String>,
}

impl Leader {
    fn from_document(d: &Document) -> Option<Self> {
        Some(Self {
            term: d.get_i64("term").ok()?,
            holder: d.get_str("holder").ok()?.to_owned(),
            host: d.get_str("host").unwrap_or_default().to_owned(),
            pid: d.get_i64("pid").unwrap_or_default().max(0) as u32,
            beats: d.get_i64("beats").unwrap_or_default(),
            since: d.get_datetime("since").copied().unwrap_or(DateTime::MIN),
            renewed_at: d
                .get_datetime("renewed_at")
                .copied()
                .unwrap_or(DateTime::MIN),
            ttl_ms: d.get_i64("ttl_ms").unwrap_or_default(),
            released: d.get_bool("released").unwrap_or(false),
            reading: d.get_str("reading").ok().map(str::to_owned),
        })
    }
}

/// What a standby saw of the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// No position is recorded: there is nothing to lead.
    NoPosition,
    /// Nobody ever led.
    Vacant,
    /// The lease as stored.
    Held(Leader),
}

/// The lease of `database`.
pub async fn read(mongo: &mongodb::Database, database: &str) -> mongodb::error::Result<Seen> {
    let found = positions(mongo).find_one(doc! { "_id": database }).await?;
    Ok(match found {
        None => Seen::NoPosition,
        Some(d) => match d
            .get_document("leader")
            .ok()
            .and_then(Leader::from_document)
        {
            Some(leader) => Seen::Held(leader),
            None => Seen::Vacant,
        },
    })
}

/// Takes the lease of `database` for `me` if it is still as `seen` (vacant, or the same term
/// and beats): returns the new term, or `None` when another worker changed it first.
pub async fn take(
    mongo: &mongodb::Database,
    database: &str,
    seen: &Seen,
    me: &Holder,
    ttl_ms: i64,
) -> mongodb::error::Result<Option<i64>> {
    let (filter, term) = match seen {
        Seen::NoPosition => return Ok(None),
        Seen::Vacant => (doc! { "_id": database, "leader": { "$exists": false } }, 1),
        Seen::Held(l) => (
            doc! { "_id": database, "leader.term": l.term, "leader.beats": l.beats,
            "leader.holder": &l.holder },
            l.term + 1,
        ),
    };
    let now = DateTime::now();
    let leader = doc! {
        "term": term, "holder": &me.id, "host": &me.host, "pid": i64::from(me.pid),
        "beats": 0_i64, "since": now, "renewed_at": now, "ttl_ms": ttl_ms, "released": false,
    };
    let r = positions(mongo)
        .update_one(filter, doc! { "$set": { "leader": leader } })
        .await?;
    Ok((r.matched_count == 1).then_some(term))
}

/// Renews the lease of `database` held by `me` in `term` (and notes the server read from):
/// false when it is no longer theirs.
pub async fn renew(
    mongo: &mongodb::Database,
    database: &str,
    term: i64,
    me: &Holder,
    reading: Option<&str>,
) -> mongodb::error::Result<bool> {
    let mut set = doc! { "leader.renewed_at": DateTime::now() };
    if let Some(reading) = reading {
        set.insert("leader.reading", reading);
    }
    let r = positions(mongo)
        .update_one(
            doc! { "_id": database, "leader.term": term, "leader.holder": &me.id,
            "leader.released": false },
            doc! { "$inc": { "leader.beats": 1_i64 }, "$set": set },
        )
        .await?;
    Ok(r.matched_count == 1)
}

/// Gives the lease of `database` up (a clean stop): a standby takes over without waiting for
/// it to expire. Nothing happens when it is no longer `me`'s.
pub async fn release(
    mongo: &mongodb::Database,
    database: &str,
    term: i64,
    me: &Holder,
) -> mongodb::error::Result<()> {
    positions(mongo)
        .update_one(
            doc! { "_id": database, "leader.term": term, "leader.holder": &me.id },
            doc! { "$set": { "leader.released": true } },
        )
        .await?;
    Ok(())
}

/// A worker as it shows itself in [`WORKERS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// [`Holder::id`].
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its pid.
    pub pid: u32,
    /// `leader` or `standby`.
    pub role: String,
    /// When it last showed itself (its clock).
    pub seen_at: DateTime,
    /// Its lease TTL, milliseconds: it counts as gone after two without a sign.
    pub ttl_ms: i64,
}

fn workers(mongo: &mongodb::Database) -> mongodb::Collection<Document> {
    mongo.collection(WORKERS)
}

/// Shows `me` alive as a worker of `database` in `role`.
pub async fn show_presence(
    mongo: &mongodb::Database,
    database: &str,
    me: &Holder,
    role: &str,
    ttl_ms: i64,
) -> mongodb::error::Result<()> {
    workers(mongo)
        .update_one(
            doc! { "_id": &me.id },
            doc! { "$set": { "database": database, "host": &me.host, "pid": i64::from(me.pid),
            "role": role, "seen_at": DateTime::now(), "ttl_ms": ttl_ms } },
        )
        .with_options(
            mongodb::options::UpdateOptions::builder()
                .upsert(true)
                .build(),
        )
        .await?;
    Ok(())
}

/// Removes `me` from the workers (a clean stop).
pub async fn withdraw(mongo: &mongodb::Database, me: &Holder) -> mongodb::error::Result<()> {
    workers(mongo).delete_one(doc! { "_id": &me.id }).await?;
    Ok(())
}

/// Deletes the entries of workers of `database` silent for longer than ten of their TTLs (by
/// this machine's clock): processes that died without withdrawing.
pub async fn forget_silent(
    mongo: &mongodb::Database,
    database: &str,
) -> mongodb::error::Result<()> {
    for p in all_workers(mongo, database).await? {
        if DateTime::now().timestamp_millis() - p.seen_at.timestamp_millis() > 10 * p.ttl_ms {
            workers(mongo).delete_one(doc! { "_id": &p.id }).await?;
        }
    }
    Ok(())
}

/// The workers of `database` that showed themselves within two of their TTLs (by this
/// machine's clock).
pub async fn present(
    mongo: &mongodb::Database,
    database: &str,
) -> mongodb::error::Result<Vec<Presence>> {
    let now = DateTime::now().timestamp_millis();
    let mut alive: Vec<Presence> = all_workers(mongo, database)
        .await?
        .into_iter()
        .filter(|p| now - p.seen_at.timestamp_millis() <= 2 * p.ttl_ms)
        .collect();
    alive.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(alive)
}

/// Every worker entry of `database`.
async fn all_workers(
    mongo: &mongodb::Database,
    database: &str,
) -> mongodb::error::Result<Vec<Presence>> {
    use futures_util::TryStreamExt;
    let all: Vec<Document> = workers(mongo)
        .find(doc! { "database": database })
        .await?
        .try_collect()
        .await?;
    Ok(all
        .iter()
        .filter_map(|d| {
            Some(Presence {
                id: d.get_str("_id").ok()?.to_owned(),
                host: d.get_str("host").unwrap_or_default().to_owned(),
                pid: d.get_i64("pid").unwrap_or_default().max(0) as u32,
                role: d.get_str("role").unwrap_or_default().to_owned(),
                seen_at: *d.get_datetime("seen_at").ok()?,
                ttl_ms: d.get_i64("ttl_ms").unwrap_or(10_000).max(1),
            })
        })
        .collect())
}
