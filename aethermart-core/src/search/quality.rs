//! How good a ranking is: the labelled query set (`data/search_queries.json`, written before
//! the catalogue's descriptions) and nDCG@k and recall@k against it.

use super::Kind;
use serde::Deserialize;

/// The labelled queries shipped with the crate.
const LABELLED: &str = include_str!("../../data/search_queries.json");

/// A shopper's query and the leaf categories whose items answer it.
#[derive(Debug, Clone, Deserialize)]
pub struct LabelledQuery {
    /// What the shopper typed.
    pub query: String,
    /// Products or services only, when the shopper clearly wants one kind.
    #[serde(default)]
    pub kind: Option<Kind>,
    /// Leaf categories whose items answer the query (grade 2).
    pub answers: Vec<String>,
    /// Leaf categories whose items partly do (grade 1).
    #[serde(default)]
    pub related: Vec<String>,
}

impl LabelledQuery {
    /// The grade of an item in leaf category `leaf`: 2 answers, 1 related, 0 neither.
    pub fn grade(&self, leaf: &str) -> u8 {
        if self.answers.iter().any(|a| a == leaf) {
            2
        } else if self.related.iter().any(|r| r == leaf) {
            1
        } else {
            0
        }
    }
}

#[derive(Deserialize)]
struct LabelledSet {
    queries: Vec<LabelledQuery>,
}

/// The labelled query set.
pub fn labelled_queries() -> Vec<LabelledQuery> {
    serde_json::from_str::<LabelledSet>(LABELLED)
        .expect("data/search_queries.json is valid (checked by a test)")
        .queries
}

/// nDCG@k of a ranking given as the grades of its hits, in order, against the best ranking the
/// catalogue allows (`ideal`: the grades of every item, any order). 0 when nothing is relevant.
pub fn ndcg_at(k: usize, ranked: &[u8], ideal: &[u8]) -> f64 {
    let dcg = |grades: &mut dyn Iterator<Item = u8>| -> f64 {
        grades
            .take(k)
            .enumerate()
            .map(|(i, g)| (f64::from(1u32 << g) - 1.0) / ((i + 2) as f64).log2())
            .sum()
    };
    let mut best = ideal.to_vec();
    best.sort_unstable_by(|a, b| b.cmp(a));
    let ideal_dcg = dcg(&mut best.into_iter());
    if ideal_dcg == 0.0 {
        return 0.0;
    }
    dcg(&mut ranked.iter().copied()) / ideal_dcg
}

/// Recall@k: relevant hits (grade ≥ 1) among the first `k`, over the most there could be
/// (`k`, or fewer when the catalogue has fewer relevant items).
pub fn recall_at(k: usize, ranked: &[u8], ideal: &[u8]) -> f64 {
    let possible = ideal.iter().filter(|&&g| g > 0).count().min(k);
    if possible == 0 {
        return 0.0;
    }
    ranked.iter().take(k).filter(|&&g| g > 0).count() as f64 / possible as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labelled_set_has_forty_queries_or_more_each_with_an_answer() {
        let queries = labelled_queries();
        assert!(queries.len() >= 40, "{}", queries.len());
        assert!(queries.iter().all(|q| !q.answers.is_empty()));
        let q = &queries[0];
        assert_eq!(q.grade(&q.answers[0]), 2);
        assert_eq!(q.grade("no such category"), 0);
    }

    #[test]
    fn ndcg_is_one_for_the_ideal_order_and_less_otherwise() {
        let ideal = [0, 2, 1, 0, 2];
        assert!((ndcg_at(10, &[2, 2, 1], &ideal) - 1.0).abs() < 1e-12);
        let worse = ndcg_at(10, &[1, 2, 2], &ideal);
        assert!(worse < 1.0 && worse > 0.5, "{worse}");
        assert_eq!(ndcg_at(10, &[0, 0], &ideal), 0.0);
        assert_eq!(ndcg_at(10, &[2], &[0, 0]), 0.0);
        // Only the first k hits count.
        assert_eq!(ndcg_at(1, &[0, 2], &ideal), 0.0);
    }

    #[test]
    fn recall_counts_relevant_hits_over_what_is_possible() {
        assert_eq!(recall_at(10, &[2, 0, 1], &[2, 1, 0, 0]), 1.0);
        assert_eq!(recall_at(2, &[2, 0, 1], &[2, 1, 1, 1]), 0.5);
        assert_eq!(recall_at(10, &[0], &[0]), 0.0);
    }
}
