//! Operations on pair RDDs, each checked against a sequential reference on `Vec`s and maps.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::common::{TestResult, ctx, distinct_sorted, group, grouped_output, pairs, sorted};

fn left() -> Vec<(u64, i64)> {
    pairs(10, 600, 40)
}

/// Keys overlap `left()` only in part (40..60 are right-only, some of 0..40 are left-only).
fn right() -> Vec<(u64, String)> {
    pairs(11, 300, 60)
        .into_iter()
        .filter(|(k, _)| k % 3 != 0)
        .map(|(k, v)| (k, format!("r{v}")))
        .collect()
}

fn sums(data: &[(u64, i64)]) -> BTreeMap<u64, i64> {
    let mut out = BTreeMap::new();
    for (k, v) in data {
        *out.entry(*k).or_insert(0) += v;
    }
    out
}

fn as_map<K: Ord + std::fmt::Debug + Clone, V>(out: Vec<(K, V)>) -> BTreeMap<K, V> {
    let n = out.len();
    let map: BTreeMap<K, V> = out.into_iter().collect();
    assert_eq!(map.len(), n, "a key appears twice in the output");
    map
}

#[test]
fn map_values_flat_map_values_keys_and_values_keep_order() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(left(), 4);
    let doubled = rdd.map_values(|v: i64| v * 2).collect()?;
    assert_eq!(doubled, left().into_iter().map(|(k, v)| (k, v * 2)).collect::<Vec<_>>());
    let expanded = rdd
        .flat_map_values(|v: i64| (0..v % 3).collect::<Vec<i64>>())
        .collect()?;
    let expected: Vec<(u64, i64)> = left()
        .into_iter()
        .flat_map(|(k, v)| (0..v % 3).map(move |i| (k, i)))
        .collect();
    assert_eq!(expanded, expected);
    assert_eq!(
        rdd.keys().collect()?,
        left().into_iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    assert_eq!(
        rdd.values().collect()?,
        left().into_iter().map(|(_, v)| v).collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn reduce_by_key_equals_a_fold_into_a_map() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(left(), 5);
    assert_eq!(
        as_map(rdd.reduce_by_key(|a: i64, b: i64| a + b).collect()?),
        sums(&left())
    );
    let into = rdd.reduce_by_key_into(|a: i64, b: i64| a + b, 3);
    assert_eq!(into.num_partitions(), 3);
    assert_eq!(as_map(into.collect()?), sums(&left()));
    let max = rdd.reduce_by_key(|a: i64, b: i64| a.max(b)).collect()?;
    let mut expected = BTreeMap::new();
    for (k, v) in left() {
        let e = expected.entry(k).or_insert(v);
        *e = (*e).max(v);
    }
    assert_eq!(as_map(max), expected);
    Ok(())
}

#[test]
fn fold_by_key_starts_each_key_from_zero() -> TestResult {
    let ctx = ctx();
    let out = ctx
        .parallelize(left(), 4)
        .fold_by_key(0, |a: i64, b: i64| a + b)
        .collect()?;
    assert_eq!(as_map(out), sums(&left()));
    // The zero is applied once per key per input partition (as Spark): with one partition
    // a non-neutral zero is added exactly once.
    let out = ctx
        .parallelize(left(), 1)
        .fold_by_key(1000, |a: i64, b: i64| a + b)
        .collect()?;
    let expected: BTreeMap<u64, i64> = sums(&left()).into_iter().map(|(k, s)| (k, s + 1000)).collect();
    assert_eq!(as_map(out), expected);
    Ok(())
}

#[test]
fn aggregate_by_key_builds_per_key_summaries() -> TestResult {
    let ctx = ctx();
    let out = ctx
        .parallelize(left(), 4)
        .aggregate_by_key(
            (0u64, 0i64),
            |acc: (u64, i64), v: i64| (acc.0 + 1, acc.1 + v),
            |a: (u64, i64), b: (u64, i64)| (a.0 + b.0, a.1 + b.1),
        )
        .collect()?;
    let mut expected: BTreeMap<u64, (u64, i64)> = BTreeMap::new();
    for (k, v) in left() {
        let e = expected.entry(k).or_insert((0, 0));
        e.0 += 1;
        e.1 += v;
    }
    assert_eq!(as_map(out), expected);
    Ok(())
}

#[test]
fn combine_by_key_collects_every_value_of_each_key() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(left(), 4).combine_by_key(
        |v: i64| vec![v],
        |mut c: Vec<i64>, v: i64| {
            c.push(v);
            c
        },
        |mut a: Vec<i64>, b: Vec<i64>| {
            a.extend(b);
            a
        },
        3,
    );
    assert_eq!(rdd.num_partitions(), 3);
    assert_eq!(grouped_output(rdd.collect()?), group(&left()));
    Ok(())
}

#[test]
fn group_by_key_groups_all_values() -> TestResult {
    let ctx = ctx();
    let rdd = ctx.parallelize(left(), 4);
    assert_eq!(grouped_output(rdd.group_by_key().collect()?), group(&left()));
    let into = rdd.group_by_key_into(7);
    assert_eq!(into.num_partitions(), 7);
    assert_eq!(grouped_output(into.collect()?), group(&left()));
    Ok(())
}

#[test]
fn count_by_key_counts_values_per_key() -> TestResult {
    let ctx = ctx();
    let counts = ctx.parallelize(left(), 4).count_by_key()?;
    let mut expected: HashMap<u64, u64> = HashMap::new();
    for (k, _) in left() {
        *expected.entry(k).or_insert(0) += 1;
    }
    assert_eq!(counts, expected);
    Ok(())
}

#[test]
fn join_equals_a_nested_loop_join() -> TestResult {
    let ctx = ctx();
    let out = ctx
        .parallelize(left(), 4)
        .join(&ctx.parallelize(right(), 3))
        .collect()?;
    let mut expected = Vec::new();
    for (k, v) in left() {
        for (k2, w) in right() {
            if k == k2 {
                expected.push((k, (v, w)));
            }
        }
    }
    assert!(!expected.is_empty());
    assert_eq!(sorted(out), sorted(expected));
    Ok(())
}

#[test]
fn left_outer_join_keeps_every_left_pair() -> TestResult {
    let ctx = ctx();
    let out = ctx
        .parallelize(left(), 4)
        .left_outer_join(&ctx.parallelize(right(), 3))
        .collect()?;
    let mut expected = Vec::new();
    for (k, v) in left() {
        let matches: Vec<String> = right().into_iter().filter(|(k2, _)| *k2 == k).map(|(_, w)| w).collect();
        if matches.is_empty() {
            expected.push((k, (v, None)));
        }
        expected.extend(matches.into_iter().map(|w| (k, (v, Some(w)))));
    }
    assert!(
        expected.iter().any(|(_, (_, w))| w.is_none()),
        "some left keys have no match"
    );
    assert_eq!(sorted(out), sorted(expected));
    Ok(())
}

#[test]
fn right_outer_join_keeps_every_right_pair() -> TestResult {
    let ctx = ctx();
    let out = ctx
        .parallelize(left(), 4)
        .right_outer_join(&ctx.parallelize(right(), 3))
        .collect()?;
    let mut expected = Vec::new();
    for (k, w) in right() {
        let matches: Vec<i64> = left().into_iter().filter(|(k2, _)| *k2 == k).map(|(_, v)| v).collect();
        if matches.is_empty() {
            expected.push((k, (None, w.clone())));
        }
        expected.extend(matches.into_iter().map(|v| (k, (Some(v), w.clone()))));
    }
    assert!(
        expected.iter().any(|(_, (v, _))| v.is_none()),
        "some right keys have no match"
    );
    assert_eq!(sorted(out), sorted(expected));
    Ok(())
}

#[test]
fn full_outer_join_keeps_every_pair_of_both_sides() -> TestResult {
    let ctx = ctx();
    let out = ctx
        .parallelize(left(), 4)
        .full_outer_join(&ctx.parallelize(right(), 3))
        .collect()?;
    let (l, r) = (left(), right());
    let mut expected = Vec::new();
    for (k, v) in &l {
        let matches: Vec<&String> = r.iter().filter(|(k2, _)| k2 == k).map(|(_, w)| w).collect();
        if matches.is_empty() {
            expected.push((*k, (Some(*v), None)));
        }
        expected.extend(matches.into_iter().map(|w| (*k, (Some(*v), Some(w.clone())))));
    }
    for (k, w) in &r {
        if !l.iter().any(|(k2, _)| k2 == k) {
            expected.push((*k, (None, Some(w.clone()))));
        }
    }
    assert_eq!(sorted(out), sorted(expected));
    Ok(())
}

#[test]
fn cogroup_groups_both_sides_by_key() -> TestResult {
    let ctx = ctx();
    let out = ctx
        .parallelize(left(), 4)
        .cogroup(&ctx.parallelize(right(), 3))
        .collect()?;
    let (gl, gr) = (group(&left()), group(&right()));
    let keys: BTreeSet<u64> = gl.keys().chain(gr.keys()).copied().collect();
    let expected: BTreeMap<u64, (Vec<i64>, Vec<String>)> = keys
        .into_iter()
        .map(|k| {
            (
                k,
                (
                    gl.get(&k).cloned().unwrap_or_default(),
                    gr.get(&k).cloned().unwrap_or_default(),
                ),
            )
        })
        .collect();
    let got: Vec<_> = out
        .into_iter()
        .map(|(k, (vs, ws))| (k, (sorted(vs), sorted(ws))))
        .collect();
    assert_eq!(as_map(got), expected);
    Ok(())
}

#[test]
fn subtract_by_key_drops_keys_of_the_other_side() -> TestResult {
    let ctx = ctx();
    let out = ctx
        .parallelize(left(), 4)
        .subtract_by_key(&ctx.parallelize(right(), 3))
        .collect()?;
    let right_keys: BTreeSet<u64> = right().into_iter().map(|(k, _)| k).collect();
    let expected: Vec<(u64, i64)> = left().into_iter().filter(|(k, _)| !right_keys.contains(k)).collect();
    assert!(!expected.is_empty());
    assert_eq!(sorted(out), sorted(expected));
    Ok(())
}

/// Checks that the partitions of a sorted RDD are each sorted and follow one another in order.
fn assert_globally_sorted(parts: &[Vec<(u64, i64)>], ascending: bool) {
    let in_order = |a: &u64, b: &u64| if ascending { a <= b } else { a >= b };
    let flat: Vec<&(u64, i64)> = parts.iter().flatten().collect();
    for w in flat.windows(2) {
        assert!(in_order(&w[0].0, &w[1].0), "{:?} before {:?}", w[0], w[1]);
    }
    let non_empty = parts.iter().filter(|p| !p.is_empty()).count();
    assert!(
        non_empty > 1,
        "range partitioning spreads the keys: {non_empty} non-empty partitions"
    );
}

#[test]
fn sort_by_key_ascending_is_globally_sorted() -> TestResult {
    let ctx = ctx();
    let data = pairs(12, 2000, 100_000);
    let rdd = ctx.parallelize(data.clone(), 5).sort_by_key(true, 4);
    assert_eq!(rdd.num_partitions(), 4);
    let parts = rdd.glom().collect()?;
    assert_globally_sorted(&parts, true);
    assert_eq!(sorted(parts.concat()), sorted(data.clone()));
    let keys: Vec<u64> = rdd.keys().collect()?;
    assert_eq!(keys, sorted(data.iter().map(|(k, _)| *k).collect()));
    Ok(())
}

#[test]
fn sort_by_key_descending_is_globally_sorted() -> TestResult {
    let ctx = ctx();
    let data = pairs(13, 2000, 100_000);
    let rdd = ctx.parallelize(data.clone(), 3).sort_by_key(false, 6);
    assert_eq!(rdd.num_partitions(), 6);
    let parts = rdd.glom().collect()?;
    assert_globally_sorted(&parts, false);
    assert_eq!(sorted(parts.concat()), sorted(data.clone()));
    let mut keys: Vec<u64> = data.iter().map(|(k, _)| *k).collect();
    keys.sort_by(|a, b| b.cmp(a));
    assert_eq!(rdd.keys().collect()?, keys);
    Ok(())
}

#[test]
fn sort_by_key_with_many_equal_keys_keeps_every_pair() -> TestResult {
    let ctx = ctx();
    let data = pairs(14, 1000, 3);
    let out = ctx.parallelize(data.clone(), 4).sort_by_key(true, 4).collect()?;
    assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(sorted(out), sorted(data));
    Ok(())
}

#[test]
fn pair_operations_on_strings() -> TestResult {
    let ctx = ctx();
    let text = "the quick brown fox jumps over the lazy dog the end";
    let words: Vec<String> = text.split(' ').map(String::from).collect();
    let counts = ctx
        .parallelize(words.clone(), 3)
        .map(|w: String| (w, 1u32))
        .reduce_by_key(|a: u32, b: u32| a + b)
        .collect()?;
    let mut expected: BTreeMap<String, u32> = BTreeMap::new();
    for w in words {
        *expected.entry(w).or_insert(0) += 1;
    }
    assert_eq!(as_map(counts), expected);
    let firsts = ctx
        .parallelize(text.split(' ').map(String::from).collect::<Vec<_>>(), 2)
        .key_by(|w: &String| w.chars().next().unwrap_or(' '))
        .group_by_key()
        .map_values(|ws: Vec<String>| ws.len())
        .collect()?;
    assert_eq!(
        distinct_sorted(firsts.iter().map(|(c, _)| *c).collect()).len(),
        firsts.len()
    );
    assert_eq!(firsts.iter().map(|(_, n)| n).sum::<usize>(), 11);
    Ok(())
}
