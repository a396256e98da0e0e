//! Lexical ranking: Okapi BM25 over the items' words, in process (the document store needs
//! no text index).

use std::collections::HashMap;

/// Term-frequency saturation.
const K1: f64 = 1.2;
/// Length normalisation.
const B: f64 = 0.75;

/// Words too common to tell items apart.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "for", "from", "has", "have",
    "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "so", "that", "the", "them",
    "they", "this", "to", "up", "we", "when", "while", "with", "without", "you", "your",
];

/// The words of `text` as BM25 compares them: lower case, letters and digits only, stop words
/// dropped, a plural `s` removed ("games" and "game" are one word).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| singular(&w))
        .collect()
}

fn singular(word: &str) -> String {
    let plural = word.len() >= 3
        && word.ends_with('s')
        && !word.ends_with("ss")
        && !word.ends_with("us")
        && !word.ends_with("is");
    if plural {
        word[..word.len() - 1].to_owned()
    } else {
        word.to_owned()
    }
}

/// A BM25 index over documents numbered from 0.
#[derive(Debug, Default)]
pub struct Bm25 {
    /// Word → (document, occurrences).
    postings: HashMap<String, Vec<(u32, u32)>>,
    lengths: Vec<u32>,
    average_length: f64,
}

impl Bm25 {
    /// Indexes `texts` (document `i` is `texts[i]`).
    pub fn new<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut lengths = Vec::new();
        for (doc, text) in texts.into_iter().enumerate() {
            let words = words(text);
            lengths.push(words.len() as u32);
            let mut counts: HashMap<String, u32> = HashMap::new();
            for w in words {
                *counts.entry(w).or_default() += 1;
            }
            for (w, n) in counts {
                postings.entry(w).or_default().push((doc as u32, n));
            }
        }
        let average_length =
            lengths.iter().map(|&l| f64::from(l)).sum::<f64>() / lengths.len().max(1) as f64;
        Self {
            postings,
            lengths,
            average_length,
        }
    }

    /// The BM25 score of every document for `query` (0 where no word matches).
    pub fn scores(&self, query: &str) -> Vec<f64> {
        let mut scores = vec![0.0; self.lengths.len()];
        let n = self.lengths.len() as f64;
        let mut seen = Vec::new();
        for word in words(query) {
            if seen.contains(&word) {
                continue; // a repeated query word counts once
            }
            let Some(postings) = self.postings.get(&word) else {
                seen.push(word);
                continue;
            };
            let df = postings.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(doc, tf) in postings {
                let tf = f64::from(tf);
                let length = f64::from(self.lengths[doc as usize]);
                let norm = K1 * (1.0 - B + B * length / self.average_length.max(1e-9));
                scores[doc as usize] += idf * tf * (K1 + 1.0) / (tf + norm);
            }
            seen.push(word);
        }
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lower_case_singular_and_without_stop_words() {
        assert_eq!(
            words("The Quiet PCs for my Living-Room, 4K games!"),
            vec!["quiet", "pc", "living", "room", "4k", "game"]
        );
        assert_eq!(
            words("glass bus analysis"),
            vec!["glass", "bus", "analysis"]
        );
    }

    #[test]
    fn rarer_words_and_shorter_documents_rank_higher() {
        let index = Bm25::new([
            "quiet small pc for the living room",
            "loud gaming pc with many fans and lights and more lights",
            "smart thermostat that learns your schedule",
        ]);
        let s = index.scores("quiet pc");
        assert!(s[0] > s[1] && s[1] > 0.0, "{s:?}");
        assert_eq!(s[2], 0.0);
        let s = index.scores("thermostat schedule schedule");
        assert!(s[2] > 0.0 && s[0] == 0.0 && s[1] == 0.0);
        assert_eq!(index.scores("nothing matches")[0], 0.0);
    }
}
