//! Actions, each checked against the same computation on a `Vec`.

use std::collections::HashMap;

use flint::prelude::*;

use crate::common::{TestResult, ctx, numbers, pairs, sorted};

fn data() -> Vec<i64> {
    numbers(3, 777, 10_000).into_iter().map(|x| x as i64 - 5000).collect()
}

#[test]
fn collect_and_count() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(data(), 6);
    assert_eq!(rdd.collect()?, data());
    assert_eq!(rdd.count()?, data().len() as u64);
    assert_eq!(
        rdd.filter(|x: &i64| *x > 0).count()?,
        data().iter().filter(|x| **x > 0).count() as u64
    );
    Ok(())
}

#[test]
fn first_take_and_is_empty() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(data(), 6);
    assert_eq!(rdd.first()?, data()[0]);
    assert_eq!(rdd.take(0)?, Vec::<i64>::new());
    assert_eq!(rdd.take(5)?, data()[..5].to_vec());
    // Spans several partitions.
    assert_eq!(rdd.take(400)?, data()[..400].to_vec());
    // More than there is.
    assert_eq!(rdd.take(10_000)?, data());
    assert!(!rdd.is_empty()?);
    // The first elements sit in a late partition.
    let late = ctx.parallelize(vec![1, 2, 3], 10);
    assert_eq!(late.take(2)?, vec![1, 2]);
    assert_eq!(late.first()?, 1);
    let none = rdd.filter(|x: &i64| *x > 1_000_000);
    assert!(none.is_empty()?);
    assert!(matches!(none.first(), Err(EngineError::EmptyRdd { action: "first" })));
    assert!(ctx.empty::<u8>().is_empty()?);
    Ok(())
}

#[test]
fn take_ordered_and_top() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(data(), 5);
    let asc = sorted(data());
    assert_eq!(rdd.take_ordered(10)?, asc[..10].to_vec());
    let mut desc = asc.clone();
    desc.reverse();
    assert_eq!(rdd.top(10)?, desc[..10].to_vec());
    assert_eq!(rdd.take_ordered(5000)?, asc);
    assert_eq!(rdd.top(0)?, Vec::<i64>::new());
    assert!(ctx.empty::<i64>().take_ordered(3)?.is_empty());
    Ok(())
}

#[test]
fn reduce_fold_and_aggregate() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(data(), 7);
    let sum: i64 = data().iter().sum();
    assert_eq!(rdd.reduce(|a: i64, b: i64| a + b)?, sum);
    assert_eq!(rdd.fold(0, |a: i64, b: i64| a + b)?, sum);
    let (n, s) = rdd.aggregate(
        (0u64, 0i64),
        |acc: (u64, i64), x: i64| (acc.0 + 1, acc.1 + x),
        |a: (u64, i64), b: (u64, i64)| (a.0 + b.0, a.1 + b.1),
    )?;
    assert_eq!((n, s), (data().len() as u64, sum));
    // Empty RDDs: reduce is an error, fold and aggregate give the zero.
    let empty = ctx.empty::<i64>();
    assert!(matches!(
        empty.reduce(|a: i64, b: i64| a + b),
        Err(EngineError::EmptyRdd { .. })
    ));
    assert_eq!(empty.fold(0, |a: i64, b: i64| a + b)?, 0);
    assert_eq!(
        empty.aggregate(5u64, |a: u64, _x: i64| a + 1, |a: u64, b: u64| a + b)?,
        5
    );
    Ok(())
}

#[test]
fn tree_aggregate_and_tree_reduce_equal_their_flat_versions() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(data(), 20);
    let sum: i64 = data().iter().sum();
    let squares: i64 = data().iter().map(|x| x * x).sum();
    for depth in [1, 2, 3, 5] {
        let got = rdd.tree_aggregate(
            (0i64, 0i64),
            |acc: (i64, i64), x: i64| (acc.0 + x, acc.1 + x * x),
            |a: (i64, i64), b: (i64, i64)| (a.0 + b.0, a.1 + b.1),
            depth,
        )?;
        assert_eq!(got, (sum, squares), "depth {depth}");
        assert_eq!(rdd.tree_reduce(|a: i64, b: i64| a + b, depth)?, sum, "depth {depth}");
        assert_eq!(
            rdd.tree_reduce(|a: i64, b: i64| a.max(b), depth)?,
            *data().iter().max().unwrap_or(&0)
        );
    }
    // Partitions that are empty do not disturb tree_reduce; an empty RDD is an error.
    assert_eq!(
        ctx.parallelize(vec![4i64, 5], 12)
            .tree_reduce(|a: i64, b: i64| a * b, 2)?,
        20
    );
    assert!(matches!(
        ctx.empty::<i64>().tree_reduce(|a: i64, b: i64| a + b, 2),
        Err(EngineError::EmptyRdd { .. })
    ));
    Ok(())
}

#[test]
fn max_and_min() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(data(), 4);
    assert_eq!(rdd.max()?, *data().iter().max().unwrap_or(&0));
    assert_eq!(rdd.min()?, *data().iter().min().unwrap_or(&0));
    let words = ctx.parallelize(
        vec!["pear".to_string(), "apple".into(), "zucchini".into(), "fig".into()],
        3,
    );
    assert_eq!(words.max()?, "zucchini");
    assert_eq!(words.min()?, "apple");
    assert!(matches!(ctx.empty::<i32>().max(), Err(EngineError::EmptyRdd { .. })));
    Ok(())
}

#[test]
fn foreach_runs_on_every_element() -> TestResult {
    let ctx = ctx();
    let sum = ctx.accumulator(0i64);
    let seen = ctx.accumulator(0u64);
    ctx.parallelize(data(), 5).foreach(with(
        (sum.clone(), seen.clone()),
        |acc: &(Accumulator<i64>, Accumulator<u64>), x: i64| {
            acc.0.add(x);
            acc.1.add(1);
        },
    ))?;
    assert_eq!(sum.value(), data().iter().sum::<i64>());
    assert_eq!(seen.value(), data().len() as u64);
    Ok(())
}

#[test]
fn foreach_partition_runs_once_per_partition() -> TestResult {
    let ctx = ctx();
    let partitions = ctx.accumulator(0u64);
    let elements = ctx.accumulator(0u64);
    ctx.parallelize(data(), 9).foreach_partition(with(
        (partitions.clone(), elements.clone()),
        |acc: &(Accumulator<u64>, Accumulator<u64>), it: BoxIter<i64>| {
            acc.0.add(1);
            acc.1.add(it.count() as u64);
        },
    ))?;
    assert_eq!(partitions.value(), 9);
    assert_eq!(elements.value(), data().len() as u64);
    Ok(())
}

#[test]
fn count_by_value_counts_each_distinct_element() -> TestResult {
    let ctx = ctx();
    let small: Vec<i64> = data().into_iter().map(|x| x.rem_euclid(13)).collect();
    let counts = ctx.parallelize(small.clone(), 4).count_by_value()?;
    let mut expected: HashMap<i64, u64> = HashMap::new();
    for x in small {
        *expected.entry(x).or_insert(0) += 1;
    }
    assert_eq!(counts, expected);
    Ok(())
}

#[test]
fn lookup_returns_every_value_of_a_key() -> TestResult {
    let ctx = ctx();
    let data = pairs(4, 500, 20);
    let rdd = ctx.parallelize(data.clone(), 4);
    for key in [0u64, 7, 19] {
        let expected: Vec<i64> = data.iter().filter(|(k, _)| *k == key).map(|(_, v)| *v).collect();
        assert_eq!(rdd.lookup(&key)?, expected, "key {key}");
    }
    assert!(rdd.lookup(&1000)?.is_empty());
    Ok(())
}

#[test]
fn to_local_iterator_yields_every_element_in_order() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(data(), 6);
    let out: Vec<i64> = rdd.to_local_iterator().collect::<flint::Result<_>>()?;
    assert_eq!(out, data());
    // Stopping early is fine and yields a prefix.
    let prefix: Vec<i64> = rdd.to_local_iterator().take(3).collect::<flint::Result<_>>()?;
    assert_eq!(prefix, data()[..3].to_vec());
    assert_eq!(ctx.empty::<i64>().to_local_iterator().count(), 0);
    Ok(())
}

#[test]
fn actions_on_shuffled_rdds() -> TestResult {
    let ctx = ctx();
    let counts = ctx
        .parallelize(data(), 4)
        .map(|x: i64| (x.rem_euclid(10), 1u64))
        .reduce_by_key(|a: u64, b: u64| a + b);
    assert_eq!(counts.count()?, 10);
    assert_eq!(counts.values().reduce(|a: u64, b: u64| a + b)?, data().len() as u64);
    assert_eq!(counts.keys().take_ordered(3)?, vec![0, 1, 2]);
    assert_eq!(counts.keys().top(1)?, vec![9]);
    Ok(())
}

#[test]
fn numeric_statistics_match_a_sequential_computation() -> TestResult {
    let ctx = flint::Context::local(2)?;
    let xs: Vec<f64> = (0..5000).map(|i| ((i * 7919) % 1013) as f64 * 0.5 - 100.0).collect();
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let variance = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    for parts in [1, 3, 8] {
        let rdd = ctx.parallelize(xs.clone(), parts);
        let s = rdd.stats()?;
        assert_eq!(s.count, 5000);
        assert!((s.mean - mean).abs() < 1e-9, "{parts} partitions");
        assert!((s.variance() - variance).abs() < 1e-6);
        assert_eq!(s.min, xs.iter().cloned().fold(f64::INFINITY, f64::min));
        assert_eq!(s.max, xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        assert!((rdd.sum()? - xs.iter().sum::<f64>()).abs() < 1e-6);
        assert!((rdd.stdev()? - variance.sqrt()).abs() < 1e-9);
    }
    // Integers too, and an empty RDD.
    assert_eq!(ctx.range(0, 1001, 4).sum()?, 500_500.0);
    assert!(ctx.empty::<i64>().mean()?.is_nan());
    Ok(())
}

#[test]
fn take_sample_returns_distinct_elements_of_the_rdd_and_is_seeded() -> TestResult {
    let ctx = flint::Context::local(2)?;
    let rdd = ctx.range(0, 10_000, 7);
    for num in [1, 10, 500] {
        let picked = rdd.take_sample(false, num, 3)?;
        assert_eq!(picked.len(), num);
        let mut unique = picked.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), num, "without replacement, no element twice");
        assert!(picked.iter().all(|x| (0..10_000).contains(x)));
        assert_eq!(picked, rdd.take_sample(false, num, 3)?, "same seed, same sample");
    }
    assert_ne!(rdd.take_sample(false, 20, 3)?, rdd.take_sample(false, 20, 4)?);
    // Asking for more than there is: everything, shuffled.
    let small = ctx.range(0, 50, 3);
    let mut all = small.take_sample(false, 80, 1)?;
    all.sort();
    assert_eq!(all, (0..50).collect::<Vec<i64>>());
    // With replacement, the sample can be larger than the RDD.
    let with = small.take_sample(true, 200, 1)?;
    assert_eq!(with.len(), 200);
    assert!(with.iter().all(|x| (0..50).contains(x)));
    assert!(ctx.empty::<i64>().take_sample(true, 5, 1)?.is_empty());
    Ok(())
}
