//! Transformations of any RDD, each checked against the same computation on a `Vec`.

use std::collections::{BTreeMap, HashSet};

use flint::prelude::*;
use flint::{EngineError, Partitioner};

use crate::common::{TestResult, ctx, distinct_sorted, grouped_output, numbers, slices, sorted};

fn data() -> Vec<i64> {
    numbers(1, 1000, 500).into_iter().map(|x| x as i64 - 250).collect()
}

#[test]
fn map_applies_the_function_to_every_element_in_order() -> TestResult {
    let ctx = ctx();
    let out = ctx.parallelize(data(), 5).map(|x: i64| x * 3 + 1).collect()?;
    assert_eq!(out, data().into_iter().map(|x| x * 3 + 1).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn map_with_state_uses_the_state() -> TestResult {
    let ctx = ctx();
    let out = ctx
        .parallelize(data(), 3)
        .map(with(7i64, |k: &i64, x: i64| x * k))
        .collect()?;
    assert_eq!(out, data().into_iter().map(|x| x * 7).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn filter_keeps_matching_elements_in_order() -> TestResult {
    let ctx = ctx();
    let out = ctx.parallelize(data(), 4).filter(|x: &i64| x % 3 == 0).collect()?;
    assert_eq!(out, data().into_iter().filter(|x| x % 3 == 0).collect::<Vec<_>>());
    let above = ctx
        .parallelize(data(), 4)
        .filter(with(100i64, |min: &i64, x: &i64| x > min))
        .collect()?;
    assert_eq!(above, data().into_iter().filter(|x| *x > 100).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn flat_map_flattens_in_order() -> TestResult {
    let ctx = ctx();
    let f = |x: i64| (0..x.rem_euclid(4)).map(move |i| x * 10 + i).collect::<Vec<i64>>();
    let out = ctx.parallelize(data(), 3).flat_map(f).collect()?;
    assert_eq!(out, data().into_iter().flat_map(f).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn glom_returns_the_partitions_of_parallelize() -> TestResult {
    let ctx = ctx();
    for n in [1, 3, 7] {
        assert_eq!(
            ctx.parallelize(data(), n).glom().collect()?,
            slices(&data(), n),
            "{n} slices"
        );
    }
    // More slices than elements: some partitions are empty.
    assert_eq!(
        ctx.parallelize(vec![1, 2, 3], 5).glom().collect()?,
        slices(&[1, 2, 3], 5)
    );
    Ok(())
}

#[test]
fn map_partitions_sees_each_partition_once() -> TestResult {
    let ctx = ctx();
    let sums = ctx
        .parallelize(data(), 6)
        .map_partitions(|it: BoxIter<i64>| std::iter::once(it.sum::<i64>()))
        .collect()?;
    let expected: Vec<i64> = slices(&data(), 6).iter().map(|s| s.iter().sum()).collect();
    assert_eq!(sums, expected);
    Ok(())
}

#[test]
fn map_partitions_with_index_passes_the_partition_index() -> TestResult {
    let ctx = ctx();
    let out = ctx
        .parallelize(data(), 4)
        .map_partitions_with_index(|i: usize, it: BoxIter<i64>| it.map(move |x| (i, x)))
        .collect()?;
    let expected: Vec<(usize, i64)> = slices(&data(), 4)
        .into_iter()
        .enumerate()
        .flat_map(|(i, s)| s.into_iter().map(move |x| (i, x)))
        .collect();
    assert_eq!(out, expected);
    Ok(())
}

#[test]
fn union_concatenates_elements_and_partitions() -> TestResult {
    let ctx = ctx();
    let (a, b, c) = (vec![1, 2, 3], vec![4, 5], vec![6, 7, 8, 9]);
    let ra = ctx.parallelize(a.clone(), 2);
    let rb = ctx.parallelize(b.clone(), 1);
    let rc = ctx.parallelize(c.clone(), 3);
    let ab = ra.union(&rb);
    assert_eq!(ab.num_partitions(), 3);
    assert_eq!(ab.collect()?, [a.clone(), b.clone()].concat());
    let abc = ctx.union(&[ra, rb, rc.clone()]);
    assert_eq!(abc.num_partitions(), 6);
    assert_eq!(abc.collect()?, [a, b, c.clone()].concat());
    // Duplicates are kept.
    assert_eq!(rc.union(&rc).collect()?, [c.clone(), c].concat());
    Ok(())
}

#[test]
fn zip_pairs_elements_position_by_position() -> TestResult {
    let ctx = ctx();
    let words: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
    let a = ctx.parallelize(data()[..100].to_vec(), 4);
    let b = ctx.parallelize(words.clone(), 4);
    let out = a.zip(&b).collect()?;
    assert_eq!(out, data()[..100].iter().copied().zip(words).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn zip_of_rdds_with_different_partition_counts_is_an_error() -> TestResult {
    let ctx = ctx();
    let a = ctx.parallelize(vec![1, 2, 3, 4], 2);
    let b = ctx.parallelize(vec![1, 2, 3, 4], 3);
    match a.zip(&b).collect() {
        Err(EngineError::InvalidArgument { expected, .. }) => assert!(expected.contains("same number of partitions")),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    Ok(())
}

#[test]
fn zip_partitions_combines_matching_partitions() -> TestResult {
    let ctx = ctx();
    let left: Vec<i64> = (0..10).collect();
    let right: Vec<String> = (0..7).map(|i| i.to_string()).collect();
    let a = ctx.parallelize(left.clone(), 3);
    let b = ctx.parallelize(right.clone(), 3);
    let counts = a
        .zip_partitions(&b, |x: BoxIter<i64>, y: BoxIter<String>| {
            std::iter::once((x.count(), y.count()))
        })
        .collect()?;
    let expected: Vec<(usize, usize)> = slices(&left, 3)
        .iter()
        .zip(slices(&right, 3))
        .map(|(l, r)| (l.len(), r.len()))
        .collect();
    assert_eq!(counts, expected);
    let joined = a
        .zip_partitions(&b, |x: BoxIter<i64>, y: BoxIter<String>| {
            x.zip(y).map(|(n, s)| format!("{n}:{s}"))
        })
        .collect()?;
    let expected: Vec<String> = slices(&left, 3)
        .into_iter()
        .zip(slices(&right, 3))
        .flat_map(|(l, r)| l.into_iter().zip(r).map(|(n, s)| format!("{n}:{s}")))
        .collect();
    assert_eq!(joined, expected);
    Ok(())
}

#[test]
fn zip_with_index_numbers_elements_across_partitions() -> TestResult {
    let ctx = ctx();
    let out = ctx.parallelize(data(), 7).zip_with_index().collect()?;
    assert_eq!(out, data().into_iter().zip(0u64..).collect::<Vec<_>>());
    // Empty partitions in the middle do not disturb the numbering.
    let sparse = ctx.parallelize(vec!['a', 'b', 'c'], 6).zip_with_index().collect()?;
    assert_eq!(sparse, vec![('a', 0), ('b', 1), ('c', 2)]);
    Ok(())
}

#[test]
fn sample_without_replacement_is_a_seeded_subsequence_of_about_the_right_size() -> TestResult {
    let ctx = ctx();
    let n = 10_000i64;
    let rdd = ctx.range(0, n, 4);
    let a = rdd.sample(false, 0.3, 42).collect()?;
    let b = rdd.sample(false, 0.3, 42).collect()?;
    let c = rdd.sample(false, 0.3, 43).collect()?;
    assert_eq!(a, b, "same seed, same sample");
    assert_ne!(a, c, "another seed, another sample");
    // Without replacement: strictly increasing (a subsequence of 0..n, no repeats).
    assert!(a.windows(2).all(|w| w[0] < w[1]));
    assert!(a.iter().all(|x| (0..n).contains(x)));
    // Binomial(10000, 0.3): mean 3000, sd 46; allow 5 sd.
    assert!((2770..=3230).contains(&a.len()), "{} elements", a.len());
    assert!(rdd.sample(false, 0.0, 1).collect()?.is_empty());
    assert_eq!(rdd.sample(false, 1.0, 1).count()?, n as u64);
    Ok(())
}

#[test]
fn sample_with_replacement_is_seeded_and_repeats_elements() -> TestResult {
    let ctx = ctx();
    let n = 10_000i64;
    let rdd = ctx.range(0, n, 4);
    let a = rdd.sample(true, 0.5, 7).collect()?;
    assert_eq!(a, rdd.sample(true, 0.5, 7).collect()?, "same seed, same sample");
    assert!(a.iter().all(|x| (0..n).contains(x)));
    // Poisson(0.5) copies of each element: total mean 5000, sd 71; allow 5 sd.
    assert!((4645..=5355).contains(&a.len()), "{} elements", a.len());
    let distinct: HashSet<i64> = a.iter().copied().collect();
    assert!(
        distinct.len() < a.len(),
        "with replacement some elements appear more than once"
    );
    // A fraction above 1 is an expected number of copies.
    let twice = rdd.sample(true, 2.0, 3).count()?;
    assert!((19_300..=20_700).contains(&twice), "{twice} elements");
    Ok(())
}

#[test]
fn coalesce_merges_neighbouring_partitions_keeping_order() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(data(), 10);
    let fewer = rdd.coalesce(3);
    assert_eq!(fewer.num_partitions(), 3);
    assert_eq!(fewer.collect()?, data());
    let sizes: Vec<usize> = fewer.glom().collect()?.iter().map(Vec::len).collect();
    assert_eq!(sizes.iter().sum::<usize>(), data().len());
    // Asking for more partitions changes nothing.
    let same = rdd.coalesce(20);
    assert_eq!(same.num_partitions(), 10);
    assert_eq!(same.collect()?, data());
    Ok(())
}

#[test]
fn key_by_pairs_each_element_with_its_key() -> TestResult {
    let ctx = ctx();
    let out = ctx.parallelize(data(), 3).key_by(|x: &i64| x.rem_euclid(7)).collect()?;
    assert_eq!(
        out,
        data().into_iter().map(|x| (x.rem_euclid(7), x)).collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn pipe_runs_each_partition_through_a_command() -> TestResult {
    let ctx = ctx();
    let words: Vec<String> = (0..200).map(|i| format!("word{i}-abc")).collect();
    let out = ctx.parallelize(words.clone(), 4).pipe("tr a-z A-Z").collect()?;
    assert_eq!(out, words.iter().map(|w| w.to_uppercase()).collect::<Vec<_>>());
    // A command that reads everything and answers with one line per partition.
    let counts = ctx
        .parallelize(words, 4)
        .pipe("wc -l")
        .map(|s: String| s.trim().parse::<u64>().unwrap_or(0))
        .collect()?;
    assert_eq!(counts, vec![50, 50, 50, 50]);
    Ok(())
}

#[test]
fn pipe_with_a_failing_command_names_the_command() -> TestResult {
    let ctx = ctx();
    let command = "cat > /dev/null; exit 42";
    let err = ctx
        .parallelize(vec![1, 2, 3], 2)
        .pipe(command)
        .collect()
        .expect_err("the command fails");
    assert!(matches!(err, EngineError::TaskFailed { .. }), "{err:?}");
    let text = flint::report(&err);
    assert!(text.contains(command), "{text}");
    assert!(text.contains("42"), "{text}");
    // The context still runs jobs.
    assert_eq!(ctx.range(0, 10, 2).count()?, 10);
    Ok(())
}

#[test]
fn distinct_equals_a_set() -> TestResult {
    let ctx = ctx();
    let out = ctx.parallelize(data(), 5).distinct().collect()?;
    let expected: Vec<i64> = sorted(data().into_iter().collect::<HashSet<_>>().into_iter().collect());
    assert_eq!(distinct_sorted(out), expected);
    Ok(())
}

#[test]
fn subtract_removes_every_occurrence_of_elements_of_the_other_rdd() -> TestResult {
    let ctx = ctx();
    let a = vec![1, 1, 2, 3, 3, 3, 4, 5, 6, 6];
    let b = vec![3, 6, 7, 7];
    let out = ctx
        .parallelize(a.clone(), 3)
        .subtract(&ctx.parallelize(b.clone(), 2))
        .collect()?;
    let expected: Vec<i32> = a.into_iter().filter(|x| !b.contains(x)).collect();
    assert_eq!(sorted(out), expected);
    Ok(())
}

#[test]
fn intersection_is_the_distinct_common_elements() -> TestResult {
    let ctx = ctx();
    let a: Vec<i64> = data();
    let b: Vec<i64> = numbers(2, 500, 800).into_iter().map(|x| x as i64 - 400).collect();
    let out = ctx
        .parallelize(a.clone(), 4)
        .intersection(&ctx.parallelize(b.clone(), 3))
        .collect()?;
    let sa: HashSet<i64> = a.into_iter().collect();
    let sb: HashSet<i64> = b.into_iter().collect();
    assert_eq!(distinct_sorted(out), sorted(sa.intersection(&sb).copied().collect()));
    Ok(())
}

#[test]
fn cartesian_is_every_pair() -> TestResult {
    let ctx = ctx();
    let a = vec![1, 2, 3, 4, 5];
    let b = vec!['x', 'y', 'z'];
    let rdd = ctx.parallelize(a.clone(), 2).cartesian(&ctx.parallelize(b.clone(), 3));
    assert_eq!(rdd.num_partitions(), 6);
    let expected: Vec<(i32, char)> = a.iter().flat_map(|x| b.iter().map(move |y| (*x, *y))).collect();
    assert_eq!(sorted(rdd.collect()?), sorted(expected));
    Ok(())
}

#[test]
fn repartition_keeps_every_element_and_balances_partitions() -> TestResult {
    let ctx = ctx();
    let input = ctx.parallelize(data(), 3);
    for n in [1, 4, 9] {
        let rdd = input.repartition(n);
        assert_eq!(rdd.num_partitions(), n);
        let parts = rdd.glom().collect()?;
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        // Each input partition deals its elements round-robin: sizes differ by at most the
        // number of input partitions.
        let (min, max) = (
            sizes.iter().min().copied().unwrap_or(0),
            sizes.iter().max().copied().unwrap_or(0),
        );
        assert!(max - min <= 3, "{sizes:?}");
        assert_eq!(sorted(parts.concat()), sorted(data()));
    }
    // Growing the partition count works too.
    assert_eq!(ctx.parallelize(vec![1, 2, 3], 1).repartition(3).num_partitions(), 3);
    Ok(())
}

#[test]
fn sort_by_sorts_by_the_computed_key() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(data(), 4);
    let by_abs = rdd.sort_by(|x: &i64| (x.abs(), *x), true, 3).collect()?;
    let mut expected = data();
    expected.sort_by_key(|x| (x.abs(), *x));
    assert_eq!(by_abs, expected);
    let desc = rdd.sort_by(|x: &i64| *x, false, 5).collect()?;
    let mut expected = data();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(desc, expected);
    Ok(())
}

#[test]
fn group_by_groups_elements_by_the_computed_key() -> TestResult {
    let ctx = ctx();
    let out = ctx
        .parallelize(data(), 4)
        .group_by(|x: &i64| x.rem_euclid(5))
        .collect()?;
    let mut expected: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for x in data() {
        expected.entry(x.rem_euclid(5)).or_default().push(x);
    }
    expected.values_mut().for_each(|v| v.sort());
    assert_eq!(grouped_output(out), expected);
    Ok(())
}

#[test]
fn random_split_puts_every_element_in_exactly_one_split() -> TestResult {
    let ctx = ctx();
    let n = 5000i64;
    let rdd = ctx.range(0, n, 4);
    let splits = rdd.random_split(&[0.6, 0.3, 0.1], 99)?;
    assert_eq!(splits.len(), 3);
    let parts: Vec<Vec<i64>> = splits.iter().map(|s| s.collect()).collect::<flint::Result<_>>()?;
    let all: Vec<i64> = parts.concat();
    assert_eq!(distinct_sorted(all), (0..n).collect::<Vec<_>>());
    // Sizes near the weights (binomial, 5 sd).
    for (part, (w, sd)) in parts.iter().zip([(0.6, 35.0), (0.3, 33.0), (0.1, 22.0)]) {
        let expected = w * n as f64;
        assert!(
            (part.len() as f64 - expected).abs() <= 5.0 * sd,
            "{} vs {expected}",
            part.len()
        );
    }
    // Deterministic: the same seed gives the same splits; weights need not sum to 1.
    let again = rdd.random_split(&[6.0, 3.0, 1.0], 99)?;
    for (a, b) in parts.iter().zip(&again) {
        assert_eq!(a, &b.collect()?);
    }
    assert!(matches!(
        rdd.random_split(&[1.0, -1.0], 1),
        Err(EngineError::InvalidArgument { .. })
    ));
    assert!(matches!(
        rdd.random_split(&[], 1),
        Err(EngineError::InvalidArgument { .. })
    ));
    Ok(())
}

#[test]
fn partition_by_sends_each_key_to_its_hash_partition() -> TestResult {
    let ctx = ctx();
    let pairs: Vec<(u64, i64)> = data().into_iter().map(|x| (x.unsigned_abs() % 37, x)).collect();
    let part = HashPartitioner::new(4);
    let rdd = ctx.parallelize(pairs.clone(), 3).partition_by(part);
    assert_eq!(rdd.num_partitions(), 4);
    let parts = rdd.glom().collect()?;
    for (i, p) in parts.iter().enumerate() {
        for (k, _) in p {
            assert_eq!(Partitioner::<u64>::partition(&part, k), i, "key {k}");
        }
    }
    assert_eq!(sorted(parts.concat()), sorted(pairs));
    Ok(())
}

#[test]
fn range_and_empty_sources() -> TestResult {
    let ctx = ctx();
    assert_eq!(ctx.range(5, 17, 3).collect()?, (5..17).collect::<Vec<i64>>());
    assert_eq!(ctx.range(5, 17, 3).num_partitions(), 3);
    assert_eq!(ctx.range_step(10, 0, -3, 2).collect()?, vec![10, 7, 4, 1]);
    assert_eq!(ctx.range_step(0, 10, 4, 2).collect()?, vec![0, 4, 8]);
    assert!(ctx.range(3, 3, 2).collect()?.is_empty());
    assert!(
        ctx.range(0, 3, 8)
            .glom()
            .collect()?
            .iter()
            .filter(|p| p.is_empty())
            .count()
            == 5
    );
    let empty = ctx.empty::<i32>();
    assert_eq!(empty.num_partitions(), 0);
    assert!(empty.collect()?.is_empty());
    assert_eq!(empty.count()?, 0);
    assert_eq!(empty.map(|x: i32| x + 1).count()?, 0);
    assert!(empty.distinct().collect()?.is_empty());
    Ok(())
}

#[test]
fn shuffles_and_sorts_of_empty_inputs_are_empty() -> TestResult {
    let ctx = ctx();
    let none = ctx.parallelize(Vec::<(u32, u32)>::new(), 3);
    assert!(none.sort_by_key(true, 4).collect()?.is_empty());
    assert!(none.reduce_by_key(|a: u32, b: u32| a + b).collect()?.is_empty());
    assert!(none.group_by_key().collect()?.is_empty());
    assert!(none.join(&ctx.parallelize(vec![(1u32, 'a')], 2)).collect()?.is_empty());
    assert_eq!(
        none.full_outer_join(&ctx.parallelize(vec![(1u32, 'a')], 2)).collect()?,
        vec![(1, (None, Some('a')))]
    );
    assert!(none.keys().distinct().collect()?.is_empty());
    assert!(none.repartition(2).collect()?.is_empty());
    assert!(none.cartesian(&ctx.range(0, 5, 2)).collect()?.is_empty());
    assert!(ctx.empty::<(u8, u8)>().sort_by_key(false, 2).collect()?.is_empty());
    Ok(())
}

#[test]
fn sort_by_key_with_more_partitions_than_keys() -> TestResult {
    let ctx = ctx();
    let data = vec![(2, 'b'), (1, 'a'), (2, 'c'), (1, 'd'), (3, 'e')];
    let out = ctx.parallelize(data.clone(), 2).sort_by_key(true, 10).collect()?;
    assert_eq!(out.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![1, 1, 2, 2, 3]);
    assert_eq!(sorted(out), sorted(data));
    Ok(())
}

#[test]
fn zip_with_unequal_partition_sizes_is_an_error() -> TestResult {
    let ctx = ctx();
    let a = ctx.parallelize(vec![1, 2, 3, 4], 2);
    let b = ctx.parallelize(vec![1, 2, 3], 2);
    let err = a.zip(&b).collect().expect_err("unequal element counts");
    let text = flint::report(&err);
    assert!(text.contains("same number of elements"), "{text}");
    Ok(())
}

#[test]
fn a_diamond_of_shuffles_in_one_job() -> TestResult {
    let ctx = ctx();
    let sums = ctx
        .range(0, 300, 3)
        .map(|x: i64| (x % 10, x))
        .reduce_by_key(|a: i64, b: i64| a + b);
    // Both sides of the join read the same shuffle.
    let out = sorted(sums.join(&sums).collect()?);
    let expected: Vec<(i64, (i64, i64))> = (0..10)
        .map(|k| (0..300).filter(|x| x % 10 == k).sum::<i64>())
        .enumerate()
        .map(|(k, s)| (k as i64, (s, s)))
        .collect();
    assert_eq!(out, expected);
    Ok(())
}

#[test]
fn sample_without_replacement_clamps_the_fraction() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.range(0, 100, 3);
    assert_eq!(rdd.sample(false, 5.0, 1).collect()?, (0..100).collect::<Vec<_>>());
    assert!(rdd.sample(false, -1.0, 1).collect()?.is_empty());
    assert!(rdd.sample(true, f64::NAN, 1).collect()?.is_empty());
    Ok(())
}

#[test]
fn pipe_with_a_command_that_stops_reading_early() -> TestResult {
    let ctx = ctx();
    // Far more than a pipe buffer per partition; `head` exits after one line.
    let out = ctx.range(0, 400_000, 2).pipe("head -n 1").collect()?;
    assert_eq!(out, vec!["0", "200000"]);
    // A command that writes before it has read its input does not deadlock.
    let out = ctx.range(0, 100_000, 1).pipe("echo start; cat").collect()?;
    assert_eq!(out.len(), 100_001);
    assert_eq!(out[0], "start");
    assert_eq!(out[100_000], "99999");
    Ok(())
}

#[test]
fn broadcast_values_are_visible_to_every_task() -> TestResult {
    let ctx = ctx();
    let names: BTreeMap<i64, String> = (0..10).map(|i| (i, format!("n{i}"))).collect();
    let shared = ctx.broadcast(names.clone());
    let out = ctx
        .range(0, 100, 4)
        .map(with(shared.clone(), |b: &Broadcast<BTreeMap<i64, String>>, x: i64| {
            b.value()[&(x % 10)].clone()
        }))
        .collect()?;
    assert_eq!(out, (0..100).map(|x| names[&(x % 10)].clone()).collect::<Vec<_>>());
    Ok(())
}
