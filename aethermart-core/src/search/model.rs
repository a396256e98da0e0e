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
