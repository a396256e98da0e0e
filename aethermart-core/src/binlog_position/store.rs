//! Where binlog capture resumes: one document per MariaDB database in the MongoDB collection
//! [`POSITIONS`], next to the documents it describes.
//!
//! Not in MariaDB: a row there would itself be a binlog event, and a replica the reader
//! follows is read-only. The document holds the GTID position and an `epoch`. The worker
//! moves the position only while the epoch is the one it started with; a migration (which
//! rewrites the documents from its own snapshot) or a capture switch sets a new position and
//! a new epoch, and a running worker that finds its epoch gone starts over from there.

use super::gtid::GtidPosition;
use mongodb::bson::{Document, doc};
use mongodb::options::{UpdateOptions, WriteConcern};

/// The MongoDB collection of binlog positions (`_id`: the MariaDB database).
pub const POSITIONS: &str = "sync_binlog_positions";

/// A stored position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Where to resume.
    pub position: GtidPosition,
    /// Bumped by every migration and capture switch.
    pub epoch: i64,
    /// Who set it last: `worker`, `migration`, `capture switch`.
    pub by: String,
    /// How long ago it was written (none for a document that does not say).
    pub age: Option<std::time::Duration>,
}

/// Why a position could not be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// MongoDB failed.
    #[error("binlog position in MongoDB collection {POSITIONS}: {0}")]
    MongoDb(#[from] mongodb::error::Error),
    /// The stored text is not a GTID position.
    #[error("binlog position in MongoDB collection {POSITIONS}, document {database:?}: {source}")]
    Malformed {
        /// The document.
        database: String,
        /// Why.
        #[source]
        source: super::gtid::BadPosition,
    },
}

pub(super) fn positions(mongo: &mongodb::Database) -> mongodb::Collection<Document> {
    mongo.collection_with_options::<Document>(
        POSITIONS,
        mongodb::options::CollectionOptions::builder()
            .write_concern(WriteConcern::majority())
            .build(),
    )
}

/// The position stored for `database`, if any.
pub async fn load(
    mongo: &mongodb::Database,
    database: &str,
) -> Result<Option<Stored>, CheckpointError> {
    let Some(d) = positions(mongo).find_one(doc! { "_id": database }).await? else {
        return Ok(None);
    };
    let Ok(text) = d.get_str("gtid") else {
        return Ok(None);
    };
    let position = text.parse().map_err(|source| CheckpointError::Malformed {
        database: database.to_owned(),
        source,
    })?;
    Ok(Some(Stored {
        position,
        epoch: d.get_i64("epoch").unwrap_or(0),
        by: d.get_str("by").unwrap_or_default().to_owned(),
        age: d.get_datetime("updated_at").ok().map(|at| {
            let millis = mongodb::bson::DateTime::now().timestamp_millis() - at.timestamp_millis();
            std::time::Duration::from_millis(millis.max(0) as u64)
        }),
    }))
}

/// What [`advance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advanced {
    /// The position moved.
    Moved,
    /// A migration or a capture switch set a new position (and epoch): start over from it.
    NewEpoch,
    /// The lease is no longer the writer's (another worker took over): nothing was written.
    LeaseLost,
}

/// Moves the position of `database` to `position` if its epoch is still `epoch` and the
/// lease still `(term, holder)`'s ([`super::lease`]): a worker that lost its lease can move
/// it neither backwards nor forwards.
pub async fn advance(
    mongo: &mongodb::Database,
    database: &str,
    epoch: i64,
    (term, holder): (i64, &str),
    position: &GtidPosition,
) -> Result<Advanced, CheckpointError> {
    let r = positions(mongo)
        .update_one(
            doc! { "_id": database, "epoch": epoch, "leader.term": term,
            "leader.holder": holder },
            doc! { "$set": { "gtid": position.to_string(), "by": "worker",
            "updated_at": mongodb::bson::DateTime::now() } },
        )
        .await?;
    if r.matched_count == 1 {
        return Ok(Advanced::Moved);
    }
    let now = positions(mongo)
        .find_one(doc! { "_id": database })
        .await?
        .unwrap_or_default();
    Ok(if now.get_i64("epoch").unwrap_or(0) != epoch {
        Advanced::NewEpoch
    } else {
        Advanced::LeaseLost
    })
}

/// Sets a new position for `database` with a new epoch (a migration ended, the capture was
/// switched): workers running from an older epoch start over from here. Returns the epoch.
pub async fn reset(
    mongo: &mongodb::Database,
    database: &str,
    position: &GtidPosition,
    by: &str,
) -> Result<i64, CheckpointError> {
    let collection = positions(mongo);
    collection
        .update_one(
            doc! { "_id": database },
            doc! { "$set": { "gtid": position.to_string(), "by": by,
                      "updated_at": mongodb::bson::DateTime::now() },
            "$inc": { "epoch": 1_i64 } },
        )
        .with_options(UpdateOptions::builder().upsert(true).build())
        .await?;
    Ok(load(mongo, database).await?.map_or(0, |s| s.epoch))
}

/// A migration of `database` starts reading its rows after `position` (the binlog position of
/// a consistent snapshot taken before its first page): kept aside until it ends. A resumed
/// migration keeps the position its first run recorded (pages copied then are older).
pub async fn migration_started(
    mongo: &mongodb::Database,
    database: &str,
    position: &GtidPosition,
    resume: bool,
) -> Result<(), CheckpointError> {
    let collection = positions(mongo);
    if resume
        && let Some(d) = collection.find_one(doc! { "_id": database }).await?
        && d.contains_key("migration_gtid")
    {
        return Ok(());
    }
    collection
        .update_one(
            doc! { "_id": database },
            doc! { "$set": { "migration_gtid": position.to_string() } },
        )
        .with_options(UpdateOptions::builder().upsert(true).build())
        .await?;
    Ok(())
}

/// The migration of `database` ended: the binlog capture resumes from the position it
/// recorded at its start (replaying a little is harmless), with a new epoch.
pub async fn migration_finished(
    mongo: &mongodb::Database,
    database: &str,
) -> Result<(), CheckpointError> {
    let collection = positions(mongo);
    let Some(d) = collection.find_one(doc! { "_id": database }).await? else {
        return Ok(());
    };
    let Ok(text) = d.get_str("migration_gtid") else {
        return Ok(());
    };
    let position: GtidPosition = text.parse().map_err(|source| CheckpointError::Malformed {
        database: database.to_owned(),
        source,
    })?;
    reset(mongo, database, &position, "migration").await?;
    collection
        .update_one(
            doc! { "_id": database },
            doc! { "$unset": { "migration_gtid": "" } },
        )
        .await?;
    Ok(())
}

/// The binlog position of a consistent snapshot taken now: every transaction before it is
/// visible to reads that start after this returns, every one after it is in the binlog after
/// it. `None` when the server writes no binlog.
pub async fn snapshot_position(
    conn: &mut sqlx::MySqlConnection,
) -> Result<Option<GtidPosition>, sqlx::Error> {
    let log_bin: i64 = sqlx::query_scalar("SELECT CAST(@@log_bin AS SIGNED)")
        .fetch_one(&mut *conn)
        .await?;
    if log_bin != 1 {
        return Ok(None);
    }
    let results = sqlx::Executor::fetch_all(
        &mut *conn,
        "START TRANSACTION WITH CONSISTENT SNAPSHOT; \
         SHOW STATUS LIKE 'binlog_snapshot_file'; SHOW STATUS LIKE 'binlog_snapshot_position'; \
         COMMIT",
    )
    .await?;
    use sqlx::Row;
    let value = |i: usize| -> Result<String, sqlx::Error> {
        results
            .get(i)
            .ok_or_else(|| sqlx::Error::Protocol("no binlog snapshot status".into()))?
            .try_get::<String, _>(1)
    };
    let (file, offset) = (value(0)?, value(1)?);
    let text: Option<String> = sqlx::query_scalar("SELECT BINLOG_GTID_POS(?, ?)")
        .bind(&file)
        .bind(offset.parse::<u64>().unwrap_or(4))
        .fetch_one(&mut *conn)
        .await?;
    let text = text.ok_or_else(|| {
        sqlx::Error::Protocol(format!("BINLOG_GTID_POS({file}, {offset}) is NULL"))
    })?;
    text.parse()
        .map(Some)
        .map_err(|e: super::gtid::BadPosition| sqlx::Error::Protocol(e.to_string()))
}
