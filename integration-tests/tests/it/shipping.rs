//! Shipping tasks: with `ship_tasks` on, every task is encoded to bytes, decoded as an executor
//! process would decode it, run, and its end decoded back. `scripts/test.sh` runs this whole
//! test binary a second time with `FLINT_SHIP_TASKS=1`, so every operator, action, persistence,
//! checkpoint, accumulator and broadcast test also runs shipped; the tests here check the mode
//! itself and what only shipping can get wrong.

use std::collections::BTreeMap;

use flint::Partitioner;
use flint::prelude::*;
use serde::{Deserialize, Serialize};

use crate::common::{TestResult, ctx, sorted};

fn shipping_ctx() -> Context {
    Context::builder()
        .master("local[2]")
        .show_progress(false)
        .ship_tasks(true)
        .build()
        .expect("context starts")
}

#[test]
fn the_suite_ships_when_flint_ship_tasks_is_set() {
    let wanted = std::env::var("FLINT_SHIP_TASKS").is_ok_and(|v| v == "1" || v == "true");
    assert_eq!(ctx().config().ship_tasks, wanted);
    assert!(shipping_ctx().config().ship_tasks);
}

/// A user partitioner: serialisable, so that it ships with the shuffle.
#[derive(Serialize, Deserialize)]
struct ByLastDigit {
    partitions: usize,
}

impl Partitioner<u64> for ByLastDigit {
    fn num_partitions(&self) -> usize {
        self.partitions
    }
    fn partition(&self, key: &u64) -> usize {
        (key % 10) as usize % self.partitions
    }
}

#[test]
fn a_user_partitioner_ships_with_its_state() -> TestResult {
    let ctx = shipping_ctx();
    let pairs: Vec<(u64, u64)> = (0..100).map(|x| (x, x * x)).collect();
    let parts = ctx
        .parallelize(pairs.clone(), 3)
        .partition_by(ByLastDigit { partitions: 5 })
        .glom()
        .collect()?;
    assert_eq!(parts.len(), 5);
    for (i, p) in parts.iter().enumerate() {
        assert!(p.iter().all(|(k, _)| (k % 10) as usize % 5 == i), "partition {i}");
    }
    assert_eq!(sorted(parts.concat()), pairs);
    Ok(())
}

#[test]
fn broadcasts_accumulators_and_captured_state_survive_shipping() -> TestResult {
    let ctx = shipping_ctx();
    let names: BTreeMap<u64, String> = (0..10).map(|i| (i, format!("n{i}"))).collect();
    let shared = ctx.broadcast(names.clone());
    let hits = ctx.accumulator(0u64);
    let out = ctx
        .parallelize((0..100u64).collect(), 4)
        .map(with(
            (shared.clone(), hits.clone(), 3u64),
            |(b, hits, k): &(Broadcast<BTreeMap<u64, String>>, Accumulator<u64>, u64), x: u64| {
                hits.add(1);
                format!("{}-{}", b.value()[&(x % 10)], x * k)
            },
        ))
        .collect()?;
    assert_eq!(out[13], "n3-39");
    assert_eq!(hits.value(), 100);
    Ok(())
}

#[test]
fn a_failing_shipped_task_reports_the_user_panic() {
    let ctx = shipping_ctx();
    let err = ctx
        .range(0, 10, 2)
        .map(|x: i64| if x == 7 { panic!("seven is not allowed") } else { x })
        .collect()
        .unwrap_err();
    let text = flint::report(&err);
    assert!(text.contains("seven is not allowed"), "{text}");
}
