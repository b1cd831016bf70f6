//! `microbench latency|tasks|sort|group|aggregate|membw|ml-pass [--n N] [--master M] [--memory-limit SIZE]`
//!
//! Prints one JSON object per run on stdout. See BENCHMARKS.md.
use std::time::Instant;

use clap::{Parser, ValueEnum};
use flint::Context;
use flint_examples::{bench, cli};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Case {
    /// 1-task jobs, median latency (n = jobs, default 500).
    Latency,
    /// One job of n empty tasks (default 100000).
    Tasks,
    /// sort_by_key(8) of n (int, int) pairs (default 10M).
    Sort,
    /// group_by_key(8) of n pairs on 10^6 keys (default 10M).
    Group,
    /// reduce_by_key over n records with n/2 distinct keys (default 20M).
    Aggregate,
    /// Memory bandwidth: summing n bytes of f64 (default 2 GiB) on 1 and 2 threads, best of 5,
    /// in ordinary memory and on transparent huge pages; the best 2-thread figure
    /// (`gb_per_s_bound`) is the bound the ML benchmarks are compared to.
    Membw,
    /// An ML iteration's job apart from its arithmetic: the passes of a logistic regression
    /// on n x 50 cached rows (default 1000), median and mean milliseconds.
    MlPass,
}

/// Engine micro-benchmarks.
#[derive(Parser, Debug)]
struct Args {
    case: Case,
    /// Size (jobs, tasks or records; see the case).
    #[arg(long)]
    n: Option<u64>,
    /// Shuffle/aggregation memory limit, e.g. 64m.
    #[arg(long)]
    memory_limit: Option<String>,
    /// Repetitions.
    #[arg(long, default_value_t = 1)]
    reps: usize,
    #[arg(long, default_value = "local[2]")]
    master: String,
}

fn main() {
    // First: in an executor process (distributed mode) this runs the executor and exits.
    cli::init();
    let args = Args::parse();
    cli::run(|| {
        let mut builder = Context::builder()
            .master(args.master.as_str())
            .app_name("microbench")
            .show_progress(false);
        if let Some(limit) = &args.memory_limit {
            builder = builder.set("memory_limit_bytes", limit)?;
        }
        let ctx = builder.build()?;
        for rep in 0..args.reps {
            let json = match args.case {
                Case::Latency => {
                    let jobs = args.n.unwrap_or(500) as usize;
                    let mut lat = bench::tiny_job_latencies(&ctx, jobs)?;
                    lat.sort_by(f64::total_cmp);
                    let ms = |q: usize| lat[q.min(lat.len() - 1)] * 1e3;
                    serde_json::json!({"case": "tiny_job_latency", "rep": rep, "jobs": jobs,
                        "median_ms": ms(lat.len() / 2), "p10_ms": ms(lat.len() / 10), "p90_ms": ms(lat.len() * 9 / 10)})
                }
                Case::Tasks => {
                    let tasks = args.n.unwrap_or(100_000) as usize;
                    let s = bench::empty_tasks(&ctx, tasks)?;
                    serde_json::json!({"case": "empty_tasks", "rep": rep, "tasks": tasks, "seconds": s, "tasks_per_s": tasks as f64 / s})
                }
                Case::Membw => {
                    let bytes = args.n.unwrap_or(2 << 30);
                    let bw = bench::memory_bandwidth(bytes as usize);
                    let huge = bw.huge_pages;
                    serde_json::json!({"case": "membw_sum", "rep": rep, "bytes": bytes,
                        "gb_per_s_1_thread": bw.one_thread, "gb_per_s_2_threads": bw.two_threads,
                        "gb_per_s_1_thread_huge_pages": huge.map(|h| h.0),
                        "gb_per_s_2_threads_huge_pages": huge.map(|h| h.1),
                        "huge_page_bytes": huge.map_or(0, |h| h.2),
                        "gb_per_s_bound": bw.best_two_threads()})
                }
                Case::MlPass => {
                    let rows = args.n.unwrap_or(1000) as usize;
                    let mut passes = match bench::ml_pass_overhead(&ctx, rows) {
                        Ok(passes) => passes,
                        Err(e) => {
                            eprintln!("error: {e}");
                            std::process::exit(1);
                        }
                    };
                    let mean = passes.iter().sum::<f64>() / passes.len() as f64;
                    passes.sort_by(f64::total_cmp);
                    serde_json::json!({"case": "ml_pass_overhead", "rep": rep, "rows": rows, "cols": 50,
                        "passes": passes.len(), "median_ms": passes[passes.len() / 2] * 1e3, "mean_ms": mean * 1e3})
                }
                Case::Sort | Case::Group | Case::Aggregate => {
                    let n = args.n.unwrap_or(if matches!(args.case, Case::Aggregate) {
                        20_000_000
                    } else {
                        10_000_000
                    });
                    let start = Instant::now();
                    let (name, result) = match args.case {
                        Case::Sort => ("shuffle_sort", bench::sort_pairs(&ctx, n)?),
                        Case::Group => ("shuffle_groupby", bench::group_pairs(&ctx, n)?),
                        _ => ("aggregate_distinct", bench::aggregate_distinct(&ctx, n, n / 2)?),
                    };
                    let s = start.elapsed().as_secs_f64();
                    serde_json::json!({"case": name, "rep": rep, "records": n, "result": result, "seconds": s,
                        "m_records_per_s": n as f64 / s / 1e6, "memory_limit_bytes": ctx.config().memory_limit_bytes})
                }
            };
            println!("{json}");
        }
        Ok(())
    });
}
