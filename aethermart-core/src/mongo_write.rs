//! Write commands against MongoDB, shared by the migration and the sync sink: `insert`,
//! `update` and `delete` commands (MongoDB 6+, no 8.0 `bulkWrite`), always with a majority
//! write concern that is checked, and the per-document `writeErrors` decoded.

use crate::retry;
use mongodb::bson::{Document, doc};

/// MongoDB's duplicate-key error code.
pub(crate) const DUPLICATE_KEY: i32 = 11000;
/// MongoDB's document-validation error code.
pub(crate) const VALIDATION_FAILED: i32 = 121;

/// A write command failed as a whole: nothing can be assumed about which of its statements
/// were applied ([`CommandError::is_retryable`] tells whether to try again).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
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

/// One entry of a write command's `writeErrors`: the index of the statement, code, message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("statement {index} refused (code {code}): {reason}")]
pub struct WriteError {
    /// Position of the refused statement in the command.
    pub index: usize,
    /// MongoDB's error code.
    pub code: i32,
    /// MongoDB's message.
    pub reason: String,
}

/// Runs a write command with a majority write concern and checks that it was met, so the
/// caller may record progress only for durable writes. (`run_command` does not apply the
/// client's write concern, so it is set here.) A statement refused for a passing reason
/// fails the whole command ([`CommandError::Statement`]); the other refused statements are
/// returned.
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
                        reason: e.get_str("errmsg").unwrap_or("refused").to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}
