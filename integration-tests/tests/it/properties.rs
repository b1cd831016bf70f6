//! Property tests: shuffle operations against simple sequential models, for random data,
//! random partition counts and a memory limit small enough to spill.

use std::collections::{BTreeMap, HashMap, HashSet};

use flint::prelude::*;
use proptest::prelude::*;

use crate::common::{group, grouped_output, numbers, observe_spills, sorted};

/// A context with a 64 KiB shuffle memory limit.
fn tiny_ctx() -> Context {
    Context::builder()
        .master("local[2]")
        .memory_limit_bytes(64 * 1024)
        .show_progress(false)
        .build()
        .expect("context starts")
}

fn small_pairs() -> impl Strategy<Value = Vec<(u16, i32)>> {
    prop::collection::vec((0u16..200, any::<i32>()), 0..300)
}

/// Larger inputs (up to 20 000 pairs, beyond what 64 KiB holds), generated from a seed so
/// that proptest need not build and shrink huge vectors.
fn large_pairs() -> impl Strategy<Value = Vec<(u64, i64)>> {
    (any::<u64>(), 0usize..20_000, 1u64..5_000).prop_map(|(seed, n, keys)| {
        numbers(seed, n, keys)
            .into_iter()
            .zip(numbers(seed ^ 1, n, 1 << 20))
            .map(|(k, v)| (k, v as i64))
            .collect()
    })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reduce_by_key_equals_a_hash_map_fold(data in small_pairs(), parts in 1usize..8, reducers in 1usize..8) {
        let ctx = tiny_ctx();
        let out = ctx.parallelize(data.clone(), parts).reduce_by_key_into(|a: i32, b: i32| a.wrapping_add(b), reducers).collect()?;
        let mut model: HashMap<u16, i32> = HashMap::new();
        for (k, v) in &data {
            let e = model.entry(*k).or_insert(0);
            *e = e.wrapping_add(*v);
        }
        prop_assert_eq!(out.len(), model.len());
        prop_assert_eq!(out.into_iter().collect::<HashMap<_, _>>(), model);
        prop_assert_eq!(ctx.live_spill_files(), 0);
    }

    #[test]
    fn reduce_by_key_on_large_inputs_equals_a_hash_map_fold(data in large_pairs(), parts in 1usize..8, reducers in 1usize..8) {
        let ctx = tiny_ctx();
        let out = ctx.parallelize(data.clone(), parts).reduce_by_key_into(|a: i64, b: i64| a + b, reducers).collect()?;
        let mut model: HashMap<u64, i64> = HashMap::new();
        for (k, v) in &data {
            *model.entry(*k).or_insert(0) += v;
        }
        prop_assert_eq!(out.len(), model.len());
        prop_assert_eq!(out.into_iter().collect::<HashMap<_, _>>(), model);
        prop_assert_eq!(ctx.live_spill_files(), 0);
        prop_assert_eq!(ctx.shuffle_memory_used_bytes(), 0);
    }

    #[test]
    fn group_by_key_equals_a_grouping(data in small_pairs(), parts in 1usize..8, reducers in 1usize..8) {
        let ctx = tiny_ctx();
        let out = ctx.parallelize(data.clone(), parts).group_by_key_into(reducers).collect()?;
        prop_assert_eq!(grouped_output(out), group(&data));
    }

    #[test]
    fn group_by_key_on_large_inputs_equals_a_grouping(data in large_pairs(), parts in 1usize..8, reducers in 1usize..8) {
        let ctx = tiny_ctx();
        let out = ctx.parallelize(data.clone(), parts).group_by_key_into(reducers).collect()?;
        prop_assert_eq!(grouped_output(out), group(&data));
        prop_assert_eq!(ctx.live_spill_files(), 0);
    }

    #[test]
    fn sort_by_key_output_is_a_sorted_permutation(data in large_pairs(), parts in 1usize..8, reducers in 1usize..8, ascending in any::<bool>()) {
        let ctx = tiny_ctx();
        let out = ctx.parallelize(data.clone(), parts).sort_by_key(ascending, reducers).collect()?;
        let in_order = out.windows(2).all(|w| if ascending { w[0].0 <= w[1].0 } else { w[0].0 >= w[1].0 });
        prop_assert!(in_order, "not sorted");
        prop_assert_eq!(sorted(out), sorted(data));
        prop_assert_eq!(ctx.live_spill_files(), 0);
    }

    #[test]
    fn join_equals_a_nested_loop_join(
        left in prop::collection::vec((0u8..30, any::<i16>()), 0..120),
        right in prop::collection::vec((0u8..30, any::<i16>()), 0..120),
        lp in 1usize..8,
        rp in 1usize..8,
    ) {
        let ctx = tiny_ctx();
        let out = ctx.parallelize(left.clone(), lp).join(&ctx.parallelize(right.clone(), rp)).collect()?;
        let mut model = Vec::new();
        for (k, v) in &left {
            for (k2, w) in &right {
                if k == k2 {
                    model.push((*k, (*v, *w)));
                }
            }
        }
        prop_assert_eq!(sorted(out), sorted(model));
    }

    #[test]
    fn distinct_equals_a_hash_set(data in prop::collection::vec(0u32..500, 0..600), parts in 1usize..8) {
        let ctx = tiny_ctx();
        let out = ctx.parallelize(data.clone(), parts).distinct().collect()?;
        let model: HashSet<u32> = data.into_iter().collect();
        prop_assert_eq!(out.len(), model.len());
        prop_assert_eq!(out.into_iter().collect::<HashSet<_>>(), model);
    }

    #[test]
    fn cogroup_equals_two_groupings(
        left in prop::collection::vec((0u8..20, any::<i8>()), 0..80),
        right in prop::collection::vec((0u8..20, any::<i8>()), 0..80),
        lp in 1usize..8,
        rp in 1usize..8,
    ) {
        let ctx = tiny_ctx();
        let out = ctx.parallelize(left.clone(), lp).cogroup(&ctx.parallelize(right.clone(), rp)).collect()?;
        let (gl, gr) = (group(&left), group(&right));
        let mut model: BTreeMap<u8, (Vec<i8>, Vec<i8>)> = BTreeMap::new();
        for k in gl.keys().chain(gr.keys()) {
            model.insert(*k, (gl.get(k).cloned().unwrap_or_default(), gr.get(k).cloned().unwrap_or_default()));
        }
        let got: BTreeMap<u8, (Vec<i8>, Vec<i8>)> = out.into_iter().map(|(k, (a, b))| (k, (sorted(a), sorted(b)))).collect();
        prop_assert_eq!(got, model);
    }
}

/// The inputs of the `large` properties are big enough for the 64 KiB limit to make the
/// shuffle spill (so those properties check spilled aggregation and sorting too).
#[test]
fn the_tiny_memory_limit_makes_large_inputs_spill() -> crate::common::TestResult {
    let ctx = tiny_ctx();
    let data: Vec<(u64, i64)> = numbers(5, 20_000, 5_000).into_iter().map(|k| (k, 1)).collect();
    let spills = ctx.accumulator(0u64);
    let spill_dir = ctx.shuffle_dir().join("spill");
    let reduced = ctx
        .parallelize(data.clone(), 4)
        .reduce_by_key_into(|a: i64, b: i64| a + b, 2);
    let keys: HashSet<u64> = data.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        observe_spills(&reduced, &spills, &spill_dir).count()?,
        keys.len() as u64
    );
    assert!(spills.value() > 0, "reduce_by_key spilled");
    let sorted_rdd = ctx.parallelize(data, 4).sort_by_key(true, 2);
    let sort_spills = ctx.accumulator(0u64);
    assert_eq!(observe_spills(&sorted_rdd, &sort_spills, &spill_dir).count()?, 20_000);
    assert!(sort_spills.value() > 0, "sort_by_key spilled");
    Ok(())
}
