//! `wordcount INPUT [--output DIR] [--top N] [--master M] [--json]`
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use flint_examples::{cli, wordcount};

/// Counts words (maximal runs of non-whitespace) in text files.
#[derive(Parser, Debug)]
struct Args {
    /// A text file, a directory of them, or a glob.
    input: String,
    /// Write every `word<TAB>count` to this (new) directory.
    #[arg(long)]
    output: Option<PathBuf>,
    /// How many of the most frequent words to report.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Count words per partition first (in-mapper combining), then shuffle the counts.
    #[arg(long)]
    local_combine: bool,
    #[command(flatten)]
    common: cli::Common,
}

fn main() {
    // First: in an executor process (distributed mode) this runs the executor and exits.
    cli::init();
    let args = Args::parse();
    cli::run(|| {
        let ctx = args.common.context("wordcount")?;
        let start = Instant::now();
        let report = wordcount::run(&ctx, &args.input, args.top, args.output.as_deref(), args.local_combine)?;
        let seconds = start.elapsed().as_secs_f64();
        if args.common.json {
            let json = serde_json::json!({
                "total_words": report.total_words,
                "distinct_words": report.distinct_words,
                "top": report.top,
                "seconds": seconds,
            });
            println!("{json}");
        } else {
            println!(
                "{} words, {} distinct, in {seconds:.3} s",
                report.total_words, report.distinct_words
            );
            for (word, count) in &report.top {
                println!("{count:>12}  {word}");
            }
        }
        Ok(())
    });
}
