//! Which embedding model search uses and where its files are. The model itself
//! (`search::embedding`) is behind the `embeddings` feature; this part is not, so that search
//! without it still knows which stored vectors belong to the model.

use crate::config;
use std::path::PathBuf;

/// The sentence-embedding model (sentence-transformers' all-MiniLM-L6-v2, Apache-2.0).
pub const MODEL: &str = "all-MiniLM-L6-v2";
/// Its vectors' length.
pub const DIMENSIONS: usize = 384;

/// The model directory: [`config::EMBEDDING_MODEL_DIR`] through `lookup`, else
/// `$HOME/.local/share/aethermart/models/all-MiniLM-L6-v2` (where `scripts/model.sh fetch`
/// unpacks it).
pub fn model_dir(lookup: impl Fn(&str) -> Option<String>) -> PathBuf {
    lookup(config::EMBEDDING_MODEL_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(lookup("HOME").unwrap_or_else(|| "/".to_owned()))
                .join(".local/share/aethermart/models")
                .join(MODEL)
        })
}

/// Where the search's embedding model is, as a flag with its variable, for every binary that
/// loads it (`#[command(flatten)]`). Behind the `cli` feature.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Directory of the search's embedding model, all-MiniLM-L6-v2 (`scripts/model.sh fetch`
    /// puts it in the default place). [default: ~/.local/share/aethermart/models/all-MiniLM-L6-v2]
    #[arg(long, env = config::EMBEDDING_MODEL_DIR)]
    pub embedding_model_dir: Option<PathBuf>,
}

#[cfg(feature = "cli")]
impl ModelArgs {
    /// The directory: the flag (or its variable), else the default of [`model_dir`].
    pub fn dir(&self) -> PathBuf {
        self.embedding_model_dir
            .clone()
            .unwrap_or_else(|| model_dir(config::env_lookup))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_wins_over_the_home_default() {
        let with = |var: &'static str, value: &'static str| {
            move |v: &str| (v == var).then(|| value.to_owned())
        };
        assert_eq!(
            model_dir(with(config::EMBEDDING_MODEL_DIR, "/models/minilm")),
            PathBuf::from("/models/minilm")
        );
        assert_eq!(
            model_dir(with("HOME", "/home/ann")),
            PathBuf::from("/home/ann/.local/share/aethermart/models/all-MiniLM-L6-v2")
        );
    }
}
