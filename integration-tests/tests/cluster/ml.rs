//! The ML library on executors: an iterative fit survives losing an executor (its cached
//! training blocks are recomputed from lineage) and gives exactly the model of a run without
//! failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use flint::SchedulerEvent;
use flint::ml::LabeledPoint;
use flint::ml::clustering::KMeans;
use flint::prelude::*;
use libtest_mimic::Trial;

use crate::common::{Events, TestResult, check, cluster, sigkill, trial};

pub fn tests() -> Vec<Trial> {
    vec![trial(
        "ml::kmeans_survives_losing_an_executor_mid_training",
        kmeans_survives_losing_an_executor_mid_training,
    )]
}

fn blobs(ctx: &Context) -> Rdd<LabeledPoint> {
    ctx.range(0, 6000, 6).map(|i: i64| {
        let c = (i % 3) as f64 * 10.0;
        let jitter = ((i * 7919) % 1000) as f64 / 1000.0;
        LabeledPoint::new(0.0, vec![c + jitter, -c + jitter * 0.5, jitter])
    })
}

fn fit(ctx: &Context) -> Result<Vec<Vec<f64>>, Box<dyn std::error::Error>> {
    let model = KMeans::new()
        .initial_centers(vec![vec![0.0, 0.0, 0.0], vec![5.0, -5.0, 0.5], vec![25.0, -25.0, 1.0]])
        .max_iter(12)
        .tol(0.0)
        .fit(&blobs(ctx))?;
    Ok(model.cluster_centers().to_vec())
}

fn kmeans_survives_losing_an_executor_mid_training() -> TestResult {
    let reference = fit(&cluster(3, 1)).map_err(|e| e.to_string())?;
    let ctx = cluster(3, 1);
    let events = Events::record(&ctx);
    let jobs = Arc::new(AtomicUsize::new(0));
    let fired = Arc::new(AtomicBool::new(false));
    {
        let ctx2 = ctx.clone();
        let (jobs, fired) = (jobs.clone(), fired.clone());
        ctx.add_listener(move |e| {
            // A few Lloyd iterations in, the blocks are cached on every executor: kill one.
            if matches!(e, SchedulerEvent::JobStarted { .. })
                && jobs.fetch_add(1, Ordering::SeqCst) == 2
                && !fired.swap(true, Ordering::SeqCst)
            {
                sigkill(ctx2.executors()[0].pid);
            }
        });
    }
    let got = fit(&ctx).map_err(|e| e.to_string())?;
    check(fired.load(Ordering::SeqCst), "no executor was killed")?;
    check(!events.lost().is_empty(), "the loss was not reported")?;
    check(
        got == reference,
        format!("centers differ after a failure: {got:?} vs {reference:?}"),
    )
}
