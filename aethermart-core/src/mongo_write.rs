//! Write commands against MongoDB, shared by the migration and the sync sink: `insert`,
//! `update` and `delete` commands (MongoDB 6+, no 8.0 `bulkWrite`), always with a majority
//! write concern that is checked, and the per-document `writeErrors` decoded.

use mongodb::bson::{Document, doc};

/// MongoDB's duplicate-key error code.
pub(crate) const DUPLICATE_KEY: i32 = 11000;
/// MongoDB's document-validation error code.
pub(crate) const VALIDATION_FAILED: i32 = 121;

/// A write command failed as a whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    /// The driver failed (network, selection, server error).
    #[error(transparent)]
    Driver(#[from] mongodb::error::Error),
    /// The write was applied but the majority write concern was not met.
    #[error("write concern not met (code {code}): {reason}")]
    WriteConcern {
        /// MongoDB's error code.
        code: i32,
        /// MongoDB's message.
        reason: String,
    },
}

/// One entry of a write command's `writeErrors`: the index of the statement, code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriteError {
    /// Position of the refused statement in the command.
    pub(crate) index: usize,
    /// MongoDB's error code.
    pub(crate) code: i32,
    /// MongoDB's message.
    pub(crate) reason: String,
}

/// Runs a write command with a majority write concern and checks that it was met, so the
/// caller may record progress only for durable writes. (`run_command` does not apply the
/// client's write concern, so it is set here.)
pub(crate) async fn run(
    db: &mongodb::Database,
    mut command: Document,
) -> Result<Vec<WriteError>, CommandError> {
    command.insert("writeConcern", doc! { "w": "majority" });
    let reply = db.run_command(command).await?;
    if let Ok(wce) = reply.get_document("writeConcernError") {
        return Err(CommandError::WriteConcern {
            code: wce.get_i32("code").unwrap_or(0),
            reason: wce
                .get_str("errmsg")
                .unwrap_or("write concern not met")
                .to_owned(),
        });
    }
    Ok(write_errors(&reply))
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
                        reason: e.get_str("errmsg").unwrap_or("refused").to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}
