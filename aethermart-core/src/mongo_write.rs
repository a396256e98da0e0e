//! Write commands against MongoDB, shared by the migration and the sync sink: `insert`,
//! `update` and `delete` commands (MongoDB 6+, no 8.0 `bulkWrite`), always with a majority
//! write concern that is checked, and the per-document `writeErrors` decoded.

use crate::retry;
use mongodb::bson::{Document, RawArrayBuf, RawBson, RawDocumentBuf, doc};

/// MongoDB's duplicate-key error code.
pub(crate) const DUPLICATE_KEY: i32 = 11000;
/// MongoDB's document-validation error code.
pub(crate) const VALIDATION_FAILED: i32 = 121;

/// A write command failed as a whole: nothing can be assumed about which of its statements
/// were applied ([`CommandError::is_retryable`] tells whether to try again).
///
/// The messages name MongoDB's error code and its meaning, never the server's own text: a
/// server's message about a refused document may quote the document's fields (customer data),
/// and these errors reach logs, dead letters and lineage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The driver failed (network, selection, server error).
    #[error("{}", driver_summary(.0))]
    Driver(#[source] mongodb::error::Error),
    /// The write was applied but the majority write concern was not met.
    #[error("write concern not met (code {code})")]
    WriteConcern {
        /// MongoDB's error code.
        code: i32,
    },
    /// A statement was refused for a reason that is no fault of its document (an election, a
    /// shutdown, an unexpected code): the whole command failed.
    #[error(transparent)]
    Statement(WriteError),
}

impl CommandError {
    /// Retry, the write is idempotent: the command failed for a passing reason (see
    /// [`retry::mongodb_idempotent`]; a write concern not met, or a statement refused by an
    /// election or a shutdown, always is).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Driver(d) => retry::mongodb_idempotent(d),
            Self::WriteConcern { .. } => true,
            Self::Statement(s) => retry::mongodb_code_passing(s.code),
        }
    }

    /// MongoDB's error code, when the server answered with one.
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Driver(d) => match &*d.kind {
                mongodb::error::ErrorKind::Command(c) => Some(c.code),
                _ => None,
            },
            Self::WriteConcern { code } => Some(*code),
            Self::Statement(s) => Some(s.code),
        }
    }

    /// True when MongoDB refused the whole command because of the documents in it (see
    /// [`retry::mongodb_code_in_documents`]).
    pub fn lies_in_documents(&self) -> bool {
        match self {
            Self::Driver(d) => match &*d.kind {
                mongodb::error::ErrorKind::Command(c) => retry::mongodb_code_in_documents(c.code),
                _ => false,
            },
            Self::WriteConcern { .. } | Self::Statement(_) => false,
        }
    }
}

impl From<mongodb::error::Error> for CommandError {
    fn from(e: mongodb::error::Error) -> Self {
        Self::Driver(e)
    }
}

/// A driver error without the server's message: the kind of failure, and for a server's
/// refusal its code and code name.
fn driver_summary(e: &mongodb::error::Error) -> String {
    use mongodb::error::ErrorKind;
    match &*e.kind {
        ErrorKind::Command(c) => format!(
            "MongoDB refused the command: {} (code {})",
            c.code_name, c.code
        ),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            format!("MongoDB refused the write: {}", describe(w.code))
        }
        ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(w)) => {
            format!("write concern not met (code {})", w.code)
        }
        ErrorKind::Io(_) => "network error talking to MongoDB".to_owned(),
        ErrorKind::ServerSelection { .. } => "no MongoDB server could be selected".to_owned(),
        ErrorKind::Authentication { .. } => "MongoDB authentication failed".to_owned(),
        _ => "MongoDB driver error".to_owned(),
    }
}

/// What MongoDB error `code` means for a document, with the code: never the server's message.
pub fn describe(code: i32) -> String {
    let what = match code {
        121 => "document validation failed",
        11000 => "duplicate key in a unique index",
        10334 | 17419 => "document too large",
        2 => "bad value",
        9 => "failed to parse",
        14 => "type mismatch",
        52 | 55 | 56 | 57 => "invalid field name",
        _ => "refused",
    };
    format!("{what} (code {code})")
}

/// One entry of a write command's `writeErrors`: the index of the statement and the code (the
/// server's message is dropped: it may quote the document).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("statement {index} refused: {}", describe(*.code))]
pub struct WriteError {
    /// Position of the refused statement in the command.
    pub index: usize,
    /// MongoDB's error code.
    pub code: i32,
}

/// How long a write waits for its write concern when the configuration names no `wtimeoutMS`.
pub const DEFAULT_WTIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The write concern of every write: the database's own (from the connection string's `w`,
/// `wtimeoutMS` and `journal`), a majority by default, and always a timeout
/// ([`DEFAULT_WTIMEOUT`] unless configured), so a write never waits without end for replicas
/// that do not answer. Transactions commit with it too.
pub(crate) fn durable_write_concern(
    configured: Option<&mongodb::options::WriteConcern>,
) -> mongodb::options::WriteConcern {
    use mongodb::options::{Acknowledgment, WriteConcern};
    let w = match configured.and_then(|c| c.w.clone()) {
        Some(a @ (Acknowledgment::Nodes(_) | Acknowledgment::Custom(_))) => a,
        // Majority, none configured, or a kind this driver version adds later.
        _ => Acknowledgment::Majority,
    };
    WriteConcern::builder()
        .w(w)
        .w_timeout(
            configured
                .and_then(|c| c.w_timeout)
                .unwrap_or(DEFAULT_WTIMEOUT),
        )
        .journal(configured.and_then(|c| c.journal))
        .build()
}

/// The `writeConcern` of a write command: [`durable_write_concern`] as a command field.
fn write_concern(configured: Option<&mongodb::options::WriteConcern>) -> Document {
    use mongodb::options::Acknowledgment;
    let durable = durable_write_concern(configured);
    let mut concern = match &durable.w {
        Some(Acknowledgment::Nodes(n)) => doc! { "w": i64::from(*n) },
        Some(Acknowledgment::Custom(tag)) => doc! { "w": tag.as_str() },
        _ => doc! { "w": "majority" },
    };
    let timeout = durable.w_timeout.unwrap_or(DEFAULT_WTIMEOUT);
    concern.insert("wtimeout", timeout.as_millis() as i64);
    if let Some(journal) = durable.journal {
        concern.insert("j", journal);
    }
    concern
}

/// `doc` encoded into BSON bytes for a write command, once (the command is sent as those bytes,
/// never cloned on the way); `None` when it cannot be encoded (a key with a NUL byte).
pub(crate) fn encode(doc: &Document) -> Option<RawDocumentBuf> {
    RawDocumentBuf::from_document(doc).ok()
}

/// The `update` statement `{ q: { _id: key }, u: …, upsert: true }` writing the encoded
/// `document` whole, or merging its fields with `$set` when `merge`.
pub(crate) fn upsert_statement(
    key: impl Into<RawBson>,
    document: RawDocumentBuf,
    merge: bool,
) -> RawDocumentBuf {
    let mut statement = RawDocumentBuf::new();
    statement.append("q", by_id(key));
    if merge {
        let mut set = RawDocumentBuf::new();
        set.append("$set", document);
        statement.append("u", set);
    } else {
        statement.append("u", document);
    }
    statement.append("upsert", true);
    statement
}

/// The `delete` statement `{ q: { _id: key }, limit: 1 }`.
pub(crate) fn delete_statement(key: impl Into<RawBson>) -> RawDocumentBuf {
    let mut statement = RawDocumentBuf::new();
    statement.append("q", by_id(key));
    statement.append("limit", 1_i32);
    statement
}

fn by_id(key: impl Into<RawBson>) -> RawDocumentBuf {
    let mut q = RawDocumentBuf::new();
    q.append("_id", key);
    q
}

/// Most bytes of documents put in one write command: well under MongoDB's 16 MiB limit on a
/// command, which also holds the statements' own fields and the command's.
pub(crate) const COMMAND_BYTES: usize = 8 * 1024 * 1024;

/// `items` cut into runs whose documents (`bytes` each) total at most [`COMMAND_BYTES`], in
/// order; a larger document is a run of its own (MongoDB then refuses it alone).
pub(crate) fn by_size<T>(items: &[T], bytes: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let (mut start, mut total) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let size = bytes(item);
        if i > start && total + size > COMMAND_BYTES {
            runs.push(&items[start..i]);
            (start, total) = (i, 0);
        }
        total += size;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

/// The unordered write command `{ <name>: collection, <list>: [statements…], ordered: false }`
/// (`insert`/`documents`, `update`/`updates`, `delete`/`deletes`).
pub(crate) fn command(
    name: &str,
    collection: &str,
    list: &str,
    statements: impl IntoIterator<Item = RawDocumentBuf>,
) -> RawDocumentBuf {
    let mut array = RawArrayBuf::new();
    for statement in statements {
        array.push(statement);
    }
    let mut command = RawDocumentBuf::new();
    command.append(name, collection);
    command.append(list, array);
    command.append("ordered", false);
    command
}

/// Runs a write command with the database's write concern ([`write_concern`]: a majority and
/// a timeout unless configured otherwise) and checks that it was met, so the caller may record
/// progress only for durable writes. (`run_command` does not apply the client's write concern,
/// so it is set here.) A statement refused for a passing reason fails the whole command
/// ([`CommandError::Statement`]); the other refused statements are returned.
pub(crate) async fn run(
    db: &mongodb::Database,
    mut command: RawDocumentBuf,
) -> Result<Vec<WriteError>, CommandError> {
    let concern = RawDocumentBuf::from_document(&write_concern(db.write_concern()))
        .expect("a write concern (fixed keys, numbers and strings) always encodes");
    command.append("writeConcern", concern);
    let reply = db.run_raw_command(command).await?;
    if let Ok(wce) = reply.get_document("writeConcernError") {
        return Err(CommandError::WriteConcern {
            code: wce.get_i32("code").unwrap_or(0),
        });
    }
    let errors = write_errors(&reply);
    if let Some(passing) = errors.iter().find(|e| retry::mongodb_code_passing(e.code)) {
        return Err(CommandError::Statement(passing.clone()));
    }
    Ok(errors)
}

/// The entries of a write command's `writeErrors`.
fn write_errors(reply: &Document) -> Vec<WriteError> {
    reply
        .get_array("writeErrors")
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.as_document())
                .filter_map(|e| {
                    Some(WriteError {
                        index: usize::try_from(e.get_i32("index").ok()?).ok()?,
                        code: e.get_i32("code").unwrap_or(0),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::options::{Acknowledgment, WriteConcern};
    use std::time::Duration;

    #[test]
    fn commands_are_cut_by_the_bytes_of_their_documents() {
        let mb = 1024 * 1024;
        let sizes = [3 * mb, 3 * mb, 3 * mb, 20 * mb, mb, 8 * mb];
        let runs = by_size(&sizes, |s| *s);
        assert_eq!(
            runs,
            vec![
                &sizes[0..2],
                &sizes[2..3],
                &sizes[3..4],
                &sizes[4..5],
                &sizes[5..6]
            ]
        );
        assert!(by_size(&[] as &[usize], |s| *s).is_empty());
        let small = [10, 20, 30];
        assert_eq!(by_size(&small, |s| *s), vec![&small[..]]);
    }

    #[test]
    fn the_configured_write_concern_is_used_and_a_timeout_is_always_set() {
        assert_eq!(
            write_concern(None),
            doc! { "w": "majority", "wtimeout": 10_000_i64 }
        );
        let from_uri = WriteConcern::builder()
            .w(Acknowledgment::Nodes(1))
            .w_timeout(Duration::from_millis(500))
            .journal(true)
            .build();
        assert_eq!(
            write_concern(Some(&from_uri)),
            doc! { "w": 1_i64, "wtimeout": 500_i64, "j": true }
        );
        let only_w = WriteConcern::builder().w(Acknowledgment::Majority).build();
        assert_eq!(
            write_concern(Some(&only_w)),
            doc! { "w": "majority", "wtimeout": 10_000_i64 }
        );
    }
}
