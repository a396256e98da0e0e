//! Reading MariaDB's binary log as a replica: committed transactions of one database, in
//! commit order, as row changes with column names.
//!
//! The connection asks for the stream from a GTID position (`@slave_connect_state`, with
//! `@mariadb_slave_capability = 4` so the server sends MariaDB's GTID events) and a heartbeat
//! every half second. `mysql_async` decodes the row events and table maps; MariaDB's own GTID
//! event (type 162) is decoded in [`super::gtid`]. A transaction ends at its `XID` (or a
//! `COMMIT` query for non-transactional tables); a standalone group (DDL) ends with its query.
//! The binlog holds committed transactions only.

use super::BinlogError;
use crate::binlog_position::{Gtid, GtidPosition};
use futures_util::StreamExt;
use mysql_async::binlog::events::EventData;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Value};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// MariaDB's `GTID_EVENT`.
const MARIADB_GTID_EVENT: u8 = 162;
/// Heartbeats asked for while the binlog is quiet.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// No event nor heartbeat for this long: the connection is taken as dead.
const SILENCE: Duration = Duration::from_secs(10);

/// A row's values by column name (the server sends names with `binlog_row_metadata=FULL`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Image(Vec<(&'static str, Value)>);

impl Image {
    /// From `(column, value)` pairs.
    pub fn new(columns: Vec<(&'static str, Value)>) -> Self {
        Self(columns)
    }

    /// The value of `column`, if the image has it.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.0.iter().find(|(c, _)| *c == column).map(|(_, v)| v)
    }

    /// `column` as a non-negative integer id (`None` for NULL, a missing column or another
    /// type).
    pub fn id(&self, column: &str) -> Option<u64> {
        match self.get(column)? {
            Value::Int(i) => u64::try_from(*i).ok(),
            Value::UInt(u) => Some(*u),
            _ => None,
        }
    }
}

/// One row written, changed or deleted.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RowChange {
    /// The table (in the followed database).
    pub table: &'static str,
    /// The row before (updates and deletes).
    pub before: Option<Image>,
    /// The row after (inserts and updates).
    pub after: Option<Image>,
}

/// A committed transaction.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Transaction {
    /// The position once it is applied.
    pub position: GtidPosition,
    /// Its changes to the followed database's rows.
    pub changes: Vec<RowChange>,
    /// The statement, when it is DDL on the followed database.
    pub ddl: Option<String>,
    /// When it was read.
    pub read_at: Instant,
    /// Its commit time, Unix seconds (the event timestamp).
    pub committed: u32,
    /// Its GTID.
    pub gtid: Gtid,
    /// Events read since the previous transaction (this one's included).
    pub events: u64,
    /// Bytes of those events.
    pub bytes: u64,
}

/// What the reader hands on.
#[derive(Debug)]
pub(super) enum Received {
    /// A transaction (possibly touching nothing followed: it still moves the position).
    Transaction(Transaction),
    /// The server is alive and has nothing newer.
    Heartbeat,
}

/// An event group being read.
struct Open {
    gtid: Gtid,
    committed: u32,
    standalone: bool,
    changes: Vec<RowChange>,
}

/// Follows the binlog of the server `opts` names for the tables of `database`.
pub(super) struct Reader {
    pub opts: mysql_async::Opts,
    pub endpoint: String,
    pub database: String,
    pub server_id: u32,
}

impl Reader {
    /// Streams from `start` into `out` until the connection fails (an error) or `out` closes
    /// (`Ok`).
    pub async fn follow(
        &self,
        start: GtidPosition,
        out: &mpsc::Sender<Received>,
    ) -> Result<(), BinlogError> {
        let endpoint = self.endpoint.clone();
        let connect_err = |source| BinlogError::from_server(&endpoint, &start, source);
        let mut conn = tokio::time::timeout(
            Duration::from_secs(10),
            mysql_async::Conn::new(self.opts.clone()),
        )
        .await
        .map_err(|_| BinlogError::Timeout {
            endpoint: endpoint.clone(),
        })?
        .map_err(connect_err)?;
        conn.query_drop(format!(
            "SET @mariadb_slave_capability = 4, @slave_connect_state = '{start}', \
             @slave_gtid_strict_mode = 1, @slave_gtid_ignore_duplicates = 0, \
             @master_heartbeat_period = {}",
            HEARTBEAT.as_nanos()
        ))
        .await
        .map_err(connect_err)?;
        let mut stream = conn
            .get_binlog_stream(
                BinlogStreamRequest::new(self.server_id)
                    .with_filename(b"")
                    .with_pos(4u64),
            )
            .await
            .map_err(connect_err)?;
        tracing::info!(%endpoint, position = %start, server_id = self.server_id, "reading the binlog");
        let mut position = start.clone();
        let mut open: Option<Open> = None;
        let (mut events, mut bytes) = (0u64, 0u64);
        loop {
            let event = match tokio::time::timeout(SILENCE, stream.next()).await {
                Err(_) => {
                    return Err(BinlogError::Silent {
                        endpoint,
                        seconds: SILENCE.as_secs(),
                    });
                }
                Ok(None) => return Err(BinlogError::Closed { endpoint }),
                Ok(Some(Err(e))) => return Err(BinlogError::from_server(&endpoint, &position, e)),
                Ok(Some(Ok(event))) => event,
            };
            let kind = event.header().event_type_raw();
            events += 1;
            bytes += u64::from(event.header().event_size());
            if kind == MARIADB_GTID_EVENT {
                let (gtid, standalone) = Gtid::from_event(event.header().server_id(), event.data())
                    .ok_or(BinlogError::Decode {
                        what: "a GTID event",
                    })?;
                open = Some(Open {
                    gtid,
                    committed: event.header().timestamp(),
                    standalone,
                    changes: Vec::new(),
                });
                continue;
            }
            let data = event
                .read_data()
                .map_err(|_| BinlogError::Decode { what: "an event" })?;
            let finished = match data {
                Some(EventData::HeartbeatEvent) => {
                    if out.send(Received::Heartbeat).await.is_err() {
                        return Ok(());
                    }
                    None
                }
                Some(EventData::RowsEvent(rows)) => {
                    let Some(group) = open.as_mut() else {
                        continue;
                    };
                    let tme = stream.get_tme(rows.table_id()).ok_or(BinlogError::Decode {
                        what: "a row event without its table map",
                    })?;
                    if tme.database_name() != self.database {
                        continue;
                    }
                    let Some(table) = super::fanout::table(&tme.table_name()) else {
                        continue;
                    };
                    super::rows::changes(&rows, tme, table, &mut group.changes).map_err(|_| {
                        BinlogError::Decode {
                            what: "a row event",
                        }
                    })?;
                    None
                }
                Some(EventData::XidEvent(_)) => open.take().map(|g| (g, None)),
                Some(EventData::QueryEvent(q)) => {
                    let text = q.query();
                    let text = text.trim();
                    if text.eq_ignore_ascii_case("BEGIN") {
                        None
                    } else if text.eq_ignore_ascii_case("COMMIT")
                        || text.eq_ignore_ascii_case("ROLLBACK")
                    {
                        open.take().map(|g| (g, None))
                    } else if open.as_ref().is_some_and(|g| g.standalone) {
                        let ours = q.schema() == self.database
                            || text.contains(&format!("`{}`", self.database));
                        let ddl = ours.then(|| text.to_owned());
                        open.take().map(|g| (g, ddl))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some((group, ddl)) = finished {
                position.advance(group.gtid);
                let tx = Transaction {
                    position: position.clone(),
                    changes: group.changes,
                    ddl,
                    read_at: Instant::now(),
                    committed: group.committed,
                    gtid: group.gtid,
                    events: std::mem::take(&mut events),
                    bytes: std::mem::take(&mut bytes),
                };
                if out.send(Received::Transaction(tx)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}
