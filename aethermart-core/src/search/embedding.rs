//! [`Embedder`]: the sentence-embedding model, all-MiniLM-L6-v2, run in process on the CPU
//! (candle's BERT, the model's own `tokenizer.json`), from files on disk: nothing is fetched.
//! Texts are cut at 256 tokens and padded to the longest of their batch (the shipped tokenizer
//! pads every text to 128); each vector is the mean of its tokens' last hidden states,
//! normalised to length 1, as sentence-transformers computes it. Behind the `embeddings` feature.

use super::model::{DIMENSIONS, MODEL};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig, DTYPE};
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Longest text, in tokens; the rest is cut (sentence-transformers' limit for this model).
const MAX_TOKENS: usize = 256;
/// Texts per forward pass in [`Embedder::embed_all`].
const BATCH: usize = 32;

/// Why the model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file of the model is not there.
    #[error(
        "embedding model file {path} is missing: fetch the model with `scripts/model.sh fetch`, \
         or point AETHERMART_EMBEDDING_MODEL_DIR at a directory holding {MODEL}"
    )]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// A file is there but cannot be read as what it should be.
    #[error("embedding model file {path} cannot be used: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Running the model failed.
    #[error("embedding failed: {0}")]
    Compute(String),
}

/// Vectors and the tokens they were computed from.
#[derive(Debug, Clone, Default)]
pub struct Embedded {
    /// One unit-length vector of [`DIMENSIONS`] per text, in the order of the texts.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read (padding excluded).
    pub tokens: usize,
}

/// The loaded model. Cheap to share (`Arc`); embedding is CPU work, so async callers run it
/// on a blocking thread.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dir: PathBuf,
    /// Runs [`Embedder::embed_all`]'s batches.
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &MODEL)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads the model from `dir` (`config.json`, `tokenizer.json`, `model.safetensors`). A
    /// missing or unreadable file is named in the error.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let config_path = present(dir, "config.json")?;
        let tokenizer_path = present(dir, "tokenizer.json")?;
        let weights_path = present(dir, "model.safetensors")?;

        let config: BertConfig =
            serde_json::from_slice(&read(&config_path)?).map_err(|e| invalid(&config_path, e))?;
        if config.hidden_size != DIMENSIONS {
            return Err(invalid(
                &config_path,
                format!(
                    "hidden_size is {}, {MODEL} has {DIMENSIONS}",
                    config.hidden_size
                ),
            ));
        }
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| invalid(&tokenizer_path, e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| invalid(&tokenizer_path, e))?;
        let device = Device::Cpu;
        let weights = VarBuilder::from_buffered_safetensors(read(&weights_path)?, DTYPE, &device)
            .map_err(|e| invalid(&weights_path, e))?;
        let model = BertModel::load(weights, &config).map_err(|e| invalid(&weights_path, e))?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(std::thread::available_parallelism().map_or(1, usize::from))
            .thread_name(|i| format!("embedding-{i}"))
            .build()
            .map_err(|e| ModelError::Compute(format!("cannot start the embedding threads: {e}")))?;
        Ok(Self {
            model,
            tokenizer,
            device,
            dir: dir.to_owned(),
            pool,
        })
    }

    /// Embeds `texts` in one forward pass (padded to the longest of them).
    pub fn embed(&self, texts: &[&str]) -> Result<Embedded, ModelError> {
        if texts.is_empty() {
            return Ok(Embedded::default());
        }
        self.forward(texts)
            .map_err(|e| ModelError::Compute(e.to_string()))
    }

    /// Embeds any number of texts in batches of similar length (little padding), one batch
    /// per core at a time, calling `done` with the number of texts after each batch.
    ///
    /// The batches run as tasks of the embedder's own thread pool (one thread per core): a
    /// batch's matrix products, which candle splits over rayon, then stay on the same threads
    /// instead of oversubscribing the cores (measured on 2 cores, the scale-1 catalogue, with
    /// candle's default threads: 80 s one batch at a time, 68 s on two threads of our own,
    /// 58–60 s in the pool; see [`exec_with_operations_on_one_thread`] for the rest).
    pub fn embed_all(
        &self,
        texts: &[&str],
        done: &(dyn Fn(usize) + Sync),
    ) -> Result<Embedded, ModelError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let batches: Vec<&[usize]> = order.chunks(BATCH).collect();
        let results = std::sync::Mutex::new(Vec::with_capacity(batches.len()));
        self.pool.scope(|scope| {
            for (n, batch) in batches.iter().enumerate() {
                let results = &results;
                scope.spawn(move |_| {
                    let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
                    let embedded = self.embed(&batch_texts);
                    done(batch.len());
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((n, embedded));
                });
            }
        });
        let mut vectors = vec![Vec::new(); texts.len()];
        let mut tokens = 0;
        let results = results
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (n, embedded) in results {
            let embedded = embedded?;
            tokens += embedded.tokens;
            for (&i, v) in batches[n].iter().zip(embedded.vectors) {
                vectors[i] = v;
            }
        }
        Ok(Embedded { vectors, tokens })
    }

    fn forward(
        &self,
        texts: &[&str],
    ) -> Result<Embedded, Box<dyn std::error::Error + Send + Sync>> {
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true)?;
        let width = encodings.first().map_or(0, |e| e.len());
        let ids: Vec<u32> = encodings
            .iter()
            .flat_map(|e| e.get_ids().to_vec())
            .collect();
        let mask: Vec<u32> = encodings
            .iter()
            .flat_map(|e| e.get_attention_mask().to_vec())
            .collect();
        let tokens = mask.iter().filter(|&&m| m == 1).count();
        let shape = (texts.len(), width);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let hidden = self.model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        // Mean over the real tokens (padding masked out), then unit length.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let mean = hidden
            .broadcast_mul(&mask)?
            .sum(1)?
            .broadcast_div(&mask.sum(1)?)?;
        let unit = mean.broadcast_div(&mean.sqr()?.sum_keepdim(1)?.sqrt()?)?;
        Ok(Embedded {
            vectors: unit.to_vec2()?,
            tokens,
        })
    }
}

fn present(dir: &Path, name: &str) -> Result<PathBuf, ModelError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ModelError::Missing { path })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|e| invalid(path, e))
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::Invalid {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The environment variables through which candle sizes its own threads: the pool that splits
/// each element-wise operation, and the rayon threads of each matrix product.
pub const THREAD_VARIABLES: [&str; 2] = ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"];

/// For a binary's `main`, first thing: when none of [`THREAD_VARIABLES`] is set, runs the
/// program again in place (`exec`: same process id, arguments and environment) with both at 1,
/// so that candle computes each operation on its calling thread and [`Embedder::embed_all`]
/// spreads whole batches over the cores instead (measured on 2 cores, scale-1 catalogue: 58–60
/// s → 44–53 s to embed it, search p99 26–33 → 21–22 ms). The variables pass on to child
/// processes, and every command re-runs, also those that never embed (a few milliseconds). Candle reads them only from the environment,
/// which a running multi-threaded process cannot safely change. Returns only when it did not
/// re-execute: the variables were set (by the user, or by this re-execution), or `exec`
/// failed (the error; the program then runs with candle's default threads).
pub fn exec_with_operations_on_one_thread() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    if THREAD_VARIABLES
        .iter()
        .any(|v| std::env::var_os(v).is_some())
    {
        return None;
    }
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(e) => return Some(e),
    };
    let mut command = std::process::Command::new(program);
    command.args(std::env::args_os().skip(1));
    if let Some(name) = std::env::args_os().next() {
        command.arg0(name);
    }
    for variable in THREAD_VARIABLES {
        command.env(variable, "1");
    }
    Some(command.exec())
}
