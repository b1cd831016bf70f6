//! Initial centers: random rows, or Spark's k-means|| (Bahmani et al., "Scalable K-Means++",
//! VLDB 2012) followed by a weighted k-means++ on the driver. Both are seeded.

use flint_engine::{BoxIter, Broadcast, Rdd, with};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

use super::distance::{Centers, NormedBlock, for_each_closest, sq_dist};
use crate::error::{MlError, Result};

/// Drops repeated centers (bit-identical), keeping the first of each; with, for every center
/// given, the index of its first copy among those kept.
fn distinct_indexed(centers: &[Vec<f64>]) -> (Vec<Vec<f64>>, Vec<u32>) {
    let mut seen = std::collections::HashMap::new();
    let mut kept = Vec::new();
    let first_of = centers
        .iter()
        .map(|c| {
            let bits: Vec<u64> = c.iter().map(|x| x.to_bits()).collect();
            *seen.entry(bits).or_insert_with(|| {
                kept.push(c.clone());
                kept.len() as u32 - 1
            })
        })
        .collect();
    (kept, first_of)
}

/// For one block of partition `part`: each row's squared distance to its nearest k-means||
/// candidate so far (`dist`) and that candidate's index (`at`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct NearestCandidates {
    part: usize,
    dist: Vec<f64>,
    at: Vec<u32>,
}

impl NearestCandidates {
    /// No candidate seen yet for a block of `rows` rows.
    fn unseen(part: usize, rows: usize) -> Self {
        NearestCandidates {
            part,
            dist: vec![f64::INFINITY; rows],
            at: vec![0; rows],
        }
    }

    /// After the candidates `bc` (indices `offset..` among all candidates) for the rows of
    /// `b`: a row moves to one of them only when strictly closer, so that at equal distances
    /// the candidate of the lowest index stays, as [`for_each_closest`] over all of them would
    /// choose.
    fn closer(mut self, b: &NormedBlock, bc: &Centers, offset: u32) -> Self {
        for_each_closest(b, bc, |r, j, dist| {
            if dist < self.dist[r] {
                self.dist[r] = dist;
                self.at[r] = offset + j as u32;
            }
        });
        self
    }
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
    let sample: Vec<Vec<f64>> = picked.iter().filter_map(|c| rows.get(c).cloned()).collect();
    Ok(distinct_indexed(&sample).0)
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
    // The candidates whose distances the rows have not seen yet, and the index of the first
    // of them in `candidates`.
    let mut new_centers = vec![first];
    let mut offset = 0u32;
    // Per block (same partitions and order as `blocks`, which they are zipped with): each row's
    // squared distance to its nearest candidate so far and that candidate's index, cached
    // between rounds apart from the blocks (a cached copy of a block would count its rows
    // against the storage memory a second time).
    let mut costs: Rdd<NearestCandidates> =
        blocks.map_partitions_with_index(|part: usize, it: BoxIter<NormedBlock>| {
            it.map(move |b| NearestCandidates::unseen(part, b.block.rows))
        });
    let mut cached: Option<Rdd<NearestCandidates>> = None;
    for step in 0..steps {
        if new_centers.is_empty() {
            break;
        }
        let bc = ctx.broadcast(Centers::new(&new_centers, dim));
        let next = blocks
            .zip_partitions(
                &costs,
                with(
                    (bc, offset),
                    |(bc, offset): &(Broadcast<Centers>, u32),
                     bs: BoxIter<NormedBlock>,
                     ns: BoxIter<NearestCandidates>| {
                        bs.zip(ns).map(|(b, n)| n.closer(&b, bc, *offset)).collect::<Vec<_>>()
                    },
                ),
            )
            .cache();
        new_centers.clear();
        let sum = blocks
            .zip_partitions(&next, |bs: BoxIter<NormedBlock>, ns: BoxIter<NearestCandidates>| {
                [bs.zip(ns).fold(0.0, |acc, (b, n)| {
                    acc + b.block.weights.iter().zip(&n.dist).map(|(w, d)| w * d).sum::<f64>()
                })]
            })
            .tree_aggregate(0.0, |a: f64, x: f64| a + x, |a: f64, b: f64| a + b, 2)?;
        if let Some(old) = cached.replace(next.clone()) {
            old.unpersist();
        }
        costs = next;
        if !(sum > 0.0 && sum.is_finite()) {
            break;
        }
        let chosen = blocks
            .zip_partitions(
                &costs,
                with(
                    (round_seed, step as u64, 2.0 * k as f64 / sum),
                    |&(seed, step, scale): &(u64, u64, f64),
                     bs: BoxIter<NormedBlock>,
                     ns: BoxIter<NearestCandidates>| {
                        let mut out = Vec::new();
                        let mut rng = None;
                        for (b, n) in bs.zip(ns) {
                            let rng =
                                rng.get_or_insert_with(|| Pcg64::seed_from_u64(seed ^ (step << 16) ^ n.part as u64));
                            for (r, (w, d)) in b.block.weights.iter().zip(&n.dist).enumerate() {
                                if rng.random::<f64>() < scale * w * d {
                                    out.push(b.block.row(r).to_vec());
                                }
                            }
                        }
                        out
                    },
                ),
            )
            .collect()?;
        tracing::debug!(step, sum, chosen = chosen.len(), "k-means|| round");
        offset = candidates.len() as u32;
        candidates.extend(chosen.iter().cloned());
        new_centers = chosen;
    }
    let (distinct_candidates, first_of) = distinct_indexed(&candidates);
    if distinct_candidates.len() <= k {
        if let Some(old) = cached {
            old.unpersist();
        }
        return Ok(distinct_candidates);
    }
    // Each candidate's weight: the total weight of the rows nearest to it. The rows know their
    // nearest among the candidates of every round but the last; that one's distances are
    // computed in the same pass (instead of a pass over every candidate).
    let last = (!new_centers.is_empty()).then(|| ctx.broadcast(Centers::new(&new_centers, dim)));
    let m = distinct_candidates.len();
    let weights = blocks
        .zip_partitions(
            &costs,
            with(
                (last, offset, first_of, m),
                |(last, offset, first_of, m): &(Option<Broadcast<Centers>>, u32, Vec<u32>, usize),
                 bs: BoxIter<NormedBlock>,
                 ns: BoxIter<NearestCandidates>| {
                    let mut acc = vec![0.0; *m];
                    for (b, n) in bs.zip(ns) {
                        let n = match last {
                            Some(bc) => n.closer(&b, bc, *offset),
                            None => n,
                        };
                        for (w, &i) in b.block.weights.iter().zip(&n.at) {
                            acc[first_of[i as usize] as usize] += w;
                        }
                    }
                    [acc]
                },
            ),
        )
        .tree_aggregate(
            vec![0.0; m],
            |mut a: Vec<f64>, b: Vec<f64>| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
            |mut a: Vec<f64>, b: Vec<f64>| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
            2,
        )?;
    if let Some(old) = cached {
        old.unpersist();
    }
    Ok(local_kmeans_pp(&distinct_candidates, &weights, k, rng.random(), 30))
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
    fn rounds_of_candidates_find_the_nearest_distinct_candidate() {
        use crate::clustering::distance::closest_dense;
        use crate::data::{InstanceBlock, LabeledPoint};
        // Rounds with repeats (within and across rounds) and rows at equal distances from
        // several candidates (the lowest index must win, as over all candidates at once).
        let rounds: Vec<Vec<Vec<f64>>> = vec![
            vec![vec![0.0, 0.0]],
            vec![vec![2.0, 0.0], vec![-2.0, 0.0], vec![0.0, 0.0], vec![2.0, 0.0]],
            vec![vec![0.0, 2.0], vec![-2.0, 0.0], vec![1.0, 1.0], vec![0.0, -2.0]],
        ];
        let mut rows: Vec<Vec<f64>> = (0..60)
            .map(|i| {
                let t = i as f64 * 0.37;
                vec![3.0 * t.sin(), 2.5 * (1.3 * t).cos()]
            })
            .collect();
        rows.extend([
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![-1.0, 0.0],
            vec![0.0, 0.0],
            vec![1.0, 1.0],
        ]);
        let points: Vec<LabeledPoint> = rows.iter().map(|x| LabeledPoint::new(0.0, x.clone())).collect();
        let block = NormedBlock::new(InstanceBlock::from_points(&points, 2));
        let mut nearest = NearestCandidates::unseen(0, rows.len());
        let mut all = Vec::new();
        for round in &rounds {
            nearest = nearest.closer(&block, &Centers::new(round, 2), all.len() as u32);
            all.extend(round.iter().cloned());
        }
        let (distinct, first_of) = distinct_indexed(&all);
        assert_eq!(distinct.len(), 6);
        let over_all = Centers::new(&distinct, 2);
        for (r, x) in rows.iter().enumerate() {
            let (j, d2) = closest_dense(x, &over_all);
            assert_eq!(first_of[nearest.at[r] as usize] as usize, j, "row {r} {x:?}");
            assert_eq!(nearest.dist[r], d2);
        }
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
