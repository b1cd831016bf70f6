//! Initial centers: random rows, or Spark's k-means|| (Bahmani et al., "Scalable K-Means++",
//! VLDB 2012) followed by a weighted k-means++ on the driver. Both are seeded.

use flint_engine::{BoxIter, Broadcast, Rdd, with};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

use super::distance::{Centers, NormedBlock, for_each_closest, sq_dist};
use crate::error::{MlError, Result};

/// Drops repeated centers (bit-identical), keeping the first of each.
fn distinct(centers: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let mut seen = std::collections::HashSet::new();
    centers
        .into_iter()
        .filter(|c| seen.insert(c.iter().map(|x| x.to_bits()).collect::<Vec<u64>>()))
        .collect()
}

/// Every row of the blocks as its own vector (a lazy RDD: for sampling).
fn rows(blocks: &Rdd<NormedBlock>) -> Rdd<Vec<f64>> {
    blocks.flat_map(|b: NormedBlock| b.rows_vec())
}

/// `k` rows drawn without replacement (Spark's `takeSample(false, k, seed)`), repeated rows
/// dropped: fewer than `k` centers when the data has fewer than `k` distinct rows.
///
/// The draw runs over the rows' coordinates (partition, block, row), which are the same rows in
/// the same order as [`rows`] without copying every row into its own vector; then one pass
/// over the cached blocks copies out the rows drawn.
pub(crate) fn random(blocks: &Rdd<NormedBlock>, k: usize, seed: u64) -> Result<Vec<Vec<f64>>> {
    let coords = blocks.map_partitions_with_index(|part: usize, it: BoxIter<NormedBlock>| {
        it.enumerate()
            .flat_map(move |(bi, b)| (0..b.block.rows).map(move |r| (part, bi, r)))
    });
    let picked: Vec<(usize, usize, usize)> = coords.take_sample(false, k, seed)?;
    let mut wanted = picked.clone();
    wanted.sort_unstable();
    let found: Vec<((usize, usize, usize), Vec<f64>)> = blocks
        .map_partitions_with_index(with(
            wanted,
            |wanted: &Vec<(usize, usize, usize)>, part: usize, it: BoxIter<NormedBlock>| {
                let mine: Vec<(usize, usize, usize)> = wanted.iter().copied().filter(|c| c.0 == part).collect();
                let mut out = Vec::new();
                if !mine.is_empty() {
                    for (bi, b) in it.enumerate() {
                        for &c in mine.iter().filter(|c| c.1 == bi) {
                            out.push((c, b.block.row(c.2).to_vec()));
                        }
                    }
                }
                out
            },
        ))
        .collect()?;
    let rows: std::collections::HashMap<(usize, usize, usize), Vec<f64>> = found.into_iter().collect();
    let sample = picked.iter().filter_map(|c| rows.get(c).cloned()).collect();
    Ok(distinct(sample))
}

/// Spark's k-means||: one random row, then `steps` rounds that each keep every row with
/// probability `2·k·w·d²/Σ w·d²` (`d²`: squared distance to the nearest candidate so far,
/// `w`: the row's weight), then, if there are more than `k` distinct candidates, weighted
/// k-means++ (weights: total weight of the rows closest to each candidate) on the driver.
pub(crate) fn kmeans_parallel(
    blocks: &Rdd<NormedBlock>,
    k: usize,
    steps: usize,
    seed: u64,
    dim: usize,
) -> Result<Vec<Vec<f64>>> {
    let ctx = blocks.context().clone();
    let mut rng = Pcg64::seed_from_u64(seed);
    let first = rows(blocks).take_sample(false, 1, rng.random())?;
    let Some(first) = first.into_iter().next() else {
        return Err(MlError::Data("the training data is empty (no rows)".into()));
    };
    let round_seed: u64 = rng.random();
    let mut candidates = vec![first.clone()];
    let mut new_centers = vec![first];
    // Each row's squared distance to the nearest candidate, cached next to its block.
    let mut costs: Rdd<(NormedBlock, Vec<f64>)> = blocks.map(|b: NormedBlock| {
        let n = b.block.rows;
        (b, vec![f64::INFINITY; n])
    });
    let mut cached: Option<Rdd<(NormedBlock, Vec<f64>)>> = None;
    for step in 0..steps {
        if new_centers.is_empty() {
            break;
        }
        let bc = ctx.broadcast(Centers::new(&new_centers, dim));
        let next = costs
            .map(with(
                bc,
                |bc: &Broadcast<Centers>, (b, mut c): (NormedBlock, Vec<f64>)| {
                    for_each_closest(&b, bc, |r, _, dist| c[r] = c[r].min(dist));
                    (b, c)
                },
            ))
            .cache();
        let sum = next.tree_aggregate(
            0.0,
            |acc: f64, (b, c): (NormedBlock, Vec<f64>)| {
                acc + b.block.weights.iter().zip(&c).map(|(w, d)| w * d).sum::<f64>()
            },
            |a: f64, b: f64| a + b,
            2,
        )?;
        if let Some(old) = cached.replace(next.clone()) {
            old.unpersist();
        }
        costs = next;
        if !(sum > 0.0 && sum.is_finite()) {
            break;
        }
        let chosen = costs
            .map_partitions_with_index(with(
                (round_seed, step as u64, 2.0 * k as f64 / sum),
                |&(seed, step, scale): &(u64, u64, f64), index: usize, it: BoxIter<(NormedBlock, Vec<f64>)>| {
                    let mut rng = Pcg64::seed_from_u64(seed ^ (step << 16) ^ index as u64);
                    let mut out = Vec::new();
                    for (b, c) in it {
                        for (r, (w, d)) in b.block.weights.iter().zip(&c).enumerate() {
                            if rng.random::<f64>() < scale * w * d {
                                out.push(b.block.row(r).to_vec());
                            }
                        }
                    }
                    out
                },
            ))
            .collect()?;
        tracing::debug!(step, sum, chosen = chosen.len(), "k-means|| round");
        candidates.extend(chosen.iter().cloned());
        new_centers = chosen;
    }
    if let Some(old) = cached {
        old.unpersist();
    }
    let candidates = distinct(candidates);
    if candidates.len() <= k {
        return Ok(candidates);
    }
    let bc = ctx.broadcast(Centers::new(&candidates, dim));
    let m = candidates.len();
    let weights = blocks.tree_aggregate(
        vec![0.0; m],
        with(bc, |bc: &Broadcast<Centers>, mut acc: Vec<f64>, b: NormedBlock| {
            for_each_closest(&b, bc, |r, j, _| acc[j] += b.block.weights[r]);
            acc
        }),
        |mut a: Vec<f64>, b: Vec<f64>| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
            a
        },
        2,
    )?;
    Ok(local_kmeans_pp(&candidates, &weights, k, rng.random(), 30))
}

/// Index drawn with probability proportional to `weights` (the first when they sum to 0).
fn pick_weighted(rng: &mut Pcg64, weights: &[f64]) -> usize {
    let r = rng.random::<f64>() * weights.iter().sum::<f64>();
    let mut acc = 0.0;
    let mut i = 0;
    while i < weights.len() && acc < r {
        acc += weights[i];
        i += 1;
    }
    i.saturating_sub(1)
}

/// Spark's `LocalKMeans.kMeansPlusPlus`: weighted k-means++ seeding of `k` centers among
/// `points`, then up to `max_iter` weighted Lloyd iterations (an empty cluster takes a random
/// point).
pub(crate) fn local_kmeans_pp(
    points: &[Vec<f64>],
    weights: &[f64],
    k: usize,
    seed: u64,
    max_iter: usize,
) -> Vec<Vec<f64>> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let dim = points[0].len();
    let mut centers = Vec::with_capacity(k);
    centers.push(points[pick_weighted(&mut rng, weights)].clone());
    let mut cost: Vec<f64> = points.iter().map(|p| sq_dist(p, &centers[0])).collect();
    for _ in 1..k {
        let scores: Vec<f64> = cost.iter().zip(weights).map(|(c, w)| c * w).collect();
        let chosen = points[pick_weighted(&mut rng, &scores)].clone();
        for (c, p) in cost.iter_mut().zip(points) {
            *c = c.min(sq_dist(p, &chosen));
        }
        centers.push(chosen);
    }
    let closest = |centers: &[Vec<f64>], p: &[f64]| {
        (0..centers.len())
            .map(|j| (j, sq_dist(p, &centers[j])))
            .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
            .0
    };
    let mut old = vec![usize::MAX; points.len()];
    let mut moved = true;
    let mut iter = 0;
    while moved && iter < max_iter {
        moved = false;
        let mut sums = vec![vec![0.0; dim]; k];
        let mut counts = vec![0.0; k];
        for (i, p) in points.iter().enumerate() {
            let j = closest(&centers, p);
            crate::linalg::kernels::axpy(weights[i], p, &mut sums[j]);
            counts[j] += weights[i];
            if j != old[i] {
                moved = true;
                old[i] = j;
            }
        }
        for j in 0..k {
            centers[j] = if counts[j] == 0.0 {
                points[rng.random_range(0..points.len())].clone()
            } else {
                sums[j].iter().map(|s| s / counts[j]).collect()
            };
        }
        iter += 1;
    }
    centers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_kmeans_pp_finds_separated_groups() {
        let mut points = Vec::new();
        for c in [0.0, 10.0, 20.0] {
            for i in 0..5 {
                points.push(vec![c + i as f64 * 0.1, -c]);
            }
        }
        let weights = vec![1.0; points.len()];
        let centers = local_kmeans_pp(&points, &weights, 3, 7, 30);
        let mut xs: Vec<f64> = centers.iter().map(|c| c[0]).collect();
        xs.sort_by(f64::total_cmp);
        for (x, want) in xs.iter().zip([0.2, 10.2, 20.2]) {
            assert!((x - want).abs() < 1e-9, "{xs:?}");
        }
        assert_eq!(centers, local_kmeans_pp(&points, &weights, 3, 7, 30), "seeded");
    }

    #[test]
    fn pick_weighted_never_picks_a_zero_weight() {
        let mut rng = Pcg64::seed_from_u64(1);
        for _ in 0..200 {
            let i = pick_weighted(&mut rng, &[0.0, 1.0, 0.0, 2.0]);
            assert!(i == 1 || i == 3, "{i}");
        }
    }
}
