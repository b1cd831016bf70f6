//! The same programs give exactly the local-mode answers in `local-cluster[3,1]`.

use flint::prelude::*;
use flint_examples::{pagerank, wordcount};
use libtest_mimic::Trial;

use crate::common::{TestResult, builder, check, cluster, local, sorted, trial, write_text};

pub fn tests() -> Vec<Trial> {
    vec![
        trial(
            "correctness::wordcount_matches_local_mode",
            wordcount_matches_local_mode,
        ),
        trial("correctness::sort_matches_local_mode", sort_matches_local_mode),
        trial("correctness::join_matches_local_mode", join_matches_local_mode),
        trial("correctness::pagerank_matches_local_mode", pagerank_matches_local_mode),
        trial("correctness::broadcasts_and_accumulators", broadcasts_and_accumulators),
        trial("correctness::large_results_are_fetched", large_results_are_fetched),
        trial(
            "correctness::max_result_size_is_a_clear_error",
            max_result_size_is_a_clear_error,
        ),
        trial(
            "correctness::user_panics_fail_the_job_clearly",
            user_panics_fail_the_job_clearly,
        ),
    ]
}

fn wordcount_matches_local_mode() -> TestResult {
    let dir = tempfile::tempdir()?;
    let input = write_text(dir.path(), 3000, 12);
    let input = input.to_str().ok_or("utf-8 path")?;
    let expected = sorted(wordcount::word_counts(&local(), input).collect()?);
    let ctx = cluster(3, 1);
    let got = sorted(wordcount::word_counts(&ctx, input).collect()?);
    check(got == expected, "plain wordcount differs from local mode")?;
    let got = sorted(wordcount::word_counts_local_combine(&ctx, input).collect()?);
    check(got == expected, "wordcount with local combine differs from local mode")
}

fn sort_matches_local_mode() -> TestResult {
    let run = |ctx: &Context| -> flint::Result<Vec<([u8; 10], Vec<u8>)>> {
        flint_examples::sort::records(ctx, 20_000, 6, 42)
            .sort_by_key(true, 5)
            .collect()
    };
    let expected = run(&local())?;
    let got = run(&cluster(3, 1))?;
    check(got.len() == 20_000, format!("{} records", got.len()))?;
    check(got.windows(2).all(|w| w[0].0 <= w[1].0), "output is not sorted")?;
    check(got == expected, "sorted output differs from local mode")
}

fn join_matches_local_mode() -> TestResult {
    let run = |ctx: &Context| -> flint::Result<Vec<(u64, (i64, Option<String>))>> {
        let left = ctx.range(0, 5000, 5).map(|x: i64| ((x * 7 % 1000) as u64, x));
        let right = ctx
            .range(0, 800, 3)
            .map(|x: i64| ((x * 3 % 1200) as u64, format!("r{x}")));
        Ok(sorted(left.left_outer_join(&right).collect()?))
    };
    let expected = run(&local())?;
    let got = run(&cluster(3, 1))?;
    check(!got.is_empty() && got == expected, "join differs from local mode")
}

fn pagerank_matches_local_mode() -> TestResult {
    let dir = tempfile::tempdir()?;
    let edges = dir.path().join("edges.txt");
    let mut text = String::new();
    for i in 0..300u64 {
        for k in [1u64, 7, 31] {
            text.push_str(&format!("p{i} p{}\n", (i * k + 3) % 300));
        }
    }
    std::fs::write(&edges, text)?;
    let edges = edges.to_str().ok_or("utf-8 path")?;
    let expected = pagerank::run(&local(), edges, 5, 0)?;
    let checkpoints = tempfile::tempdir()?;
    let ctx = builder(3, 1).checkpoint_dir(checkpoints.path()).build()?;
    let got = pagerank::run(&ctx, edges, 5, 2)?;
    check(got.len() == expected.len(), "different page counts")?;
    for ((a, ra), (b, rb)) in got.iter().zip(&expected) {
        check(a == b && (ra - rb).abs() < 1e-9, format!("{a}={ra} vs {b}={rb}"))?;
    }
    Ok(())
}

fn broadcasts_and_accumulators() -> TestResult {
    let ctx = cluster(3, 1);
    let table = ctx.broadcast((0..1000u64).map(|i| i * i).collect::<Vec<u64>>());
    let seen = ctx.accumulator(0u64);
    let sum = ctx
        .range(0, 1000, 7)
        .map(with(
            (table.clone(), seen.clone()),
            |s: &(Broadcast<Vec<u64>>, Accumulator<u64>), x: i64| {
                s.1.add(1);
                s.0[x as usize]
            },
        ))
        .reduce(|a, b| a + b)?;
    check(
        sum == (0..1000u64).map(|i| i * i).sum::<u64>(),
        format!("wrong sum {sum}"),
    )?;
    check(seen.value() == 1000, format!("accumulator counted {}", seen.value()))
}

fn large_results_are_fetched() -> TestResult {
    let ctx = cluster(2, 1);
    // ~16 MB per partition: above the inline limit, fetched in chunks.
    let v = ctx.range(0, 4_000_000, 2).collect()?;
    check(
        v.len() == 4_000_000 && v.iter().enumerate().all(|(i, x)| *x == i as i64),
        "wrong large result",
    )
}

fn max_result_size_is_a_clear_error() -> TestResult {
    let ctx = builder(2, 1).set("max_result_size", "1m")?.build()?;
    let err = match ctx.range(0, 1_000_000, 4).collect() {
        Ok(_) => return Err("a result over max_result_size was accepted".into()),
        Err(e) => flint::report(&e),
    };
    check(err.contains("max_result_size"), format!("unclear error: {err}"))?;
    // The context still works.
    check(ctx.range(0, 10, 2).count()? == 10, "the context broke")
}

fn user_panics_fail_the_job_clearly() -> TestResult {
    let ctx = builder(2, 1).max_task_failures(2).build()?;
    let err = match ctx
        .range(0, 100, 4)
        .map(|x: i64| if x == 57 { panic!("bad record {x}") } else { x })
        .count()
    {
        Ok(_) => return Err("a panicking job succeeded".into()),
        Err(e) => flint::report(&e),
    };
    check(
        err.contains("bad record 57") && err.contains("partition 2"),
        format!("unclear error: {err}"),
    )?;
    check(ctx.executors().len() == 2, "a panic in user code cost an executor")?;
    check(ctx.range(0, 10, 2).count()? == 10, "the context broke")
}
