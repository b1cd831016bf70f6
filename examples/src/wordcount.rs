//! Word count: words are maximal runs of non-whitespace characters (Unicode whitespace), case
//! kept.

use std::collections::HashMap;
use std::path::Path;

use flint::Result;
use flint::prelude::*;
use serde::Serialize;

/// What `wordcount` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordCountReport {
    /// Words in the input.
    pub total_words: u64,
    /// Distinct words.
    pub distinct_words: u64,
    /// The most frequent words, by count descending, then word ascending.
    pub top: Vec<(String, u64)>,
}

/// `(word, count)` for every distinct word of the lines of `input`.
pub fn word_counts(ctx: &Context, input: &str) -> Rdd<(String, u64)> {
    ctx.text_file(input, ctx.default_parallelism())
        .flat_map(|line: String| line.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .map(|word: String| (word, 1u64))
        .reduce_by_key(|a, b| a + b)
}

/// The same counts with in-mapper combining: each partition counts its words in a local map,
/// looking words up by `&str` so that only a partition's *distinct* words become `String`s,
/// and the shuffle then merges one count per distinct word per partition. What an experienced
/// Spark user writes with `mapPartitions`; here it saves the allocation of one `String` per word.
pub fn word_counts_local_combine(ctx: &Context, input: &str) -> Rdd<(String, u64)> {
    ctx.text_file(input, ctx.default_parallelism())
        .map_partitions(|lines: BoxIter<String>| {
            let mut counts: HashMap<String, u64, foldhash::fast::RandomState> = HashMap::default();
            for line in lines {
                for word in line.split_whitespace() {
                    match counts.get_mut(word) {
                        Some(c) => *c += 1,
                        None => {
                            counts.insert(word.to_string(), 1);
                        }
                    }
                }
            }
            counts
        })
        .reduce_by_key(|a, b| a + b)
}

/// Counts the words of `input`, keeps the `top` most frequent, and writes all counts as
/// `word<TAB>count` lines to `output` when given. `local_combine` picks
/// [`word_counts_local_combine`] over the plain pipeline of [`word_counts`].
pub fn run(
    ctx: &Context,
    input: &str,
    top: usize,
    output: Option<&Path>,
    local_combine: bool,
) -> Result<WordCountReport> {
    let counts = if local_combine {
        word_counts_local_combine(ctx, input)
    } else {
        word_counts(ctx, input)
    };
    let counts = counts.cache();
    let total_words = counts.values().fold(0, |a, b| a + b)?;
    let distinct_words = counts.count()?;
    // Smallest (count descending, word ascending) = largest counts first.
    let top = counts
        .map(|(w, c): (String, u64)| (u64::MAX - c, w))
        .take_ordered(top)?
        .into_iter()
        .map(|(inv, w)| (w, u64::MAX - inv))
        .collect();
    if let Some(dir) = output {
        counts
            .map(|(w, c): (String, u64)| format!("{w}\t{c}"))
            .save_as_text_file(dir)?;
    }
    Ok(WordCountReport {
        total_words,
        distinct_words,
        top,
    })
}
