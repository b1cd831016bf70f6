//! The k-means estimator (Spark ML's `KMeans`): parameters, validation, and Lloyd's iterations
//! over cached instance blocks, one job per iteration.

use std::time::Instant;

use flint_engine::{BoxIter, Broadcast, Rdd, with};
use serde::{Deserialize, Serialize};

use super::bounds::{self, BlockKey, FitId};
use super::distance::{Centers, NormedBlock, lloyd_block, sq_dist};
use super::init;
use super::input::{InputInfo, scan};
use super::model::{KMeansModel, KMeansSummary};
use crate::data::{InstanceBlock, LabeledPoint, to_blocks};
use crate::device::{ClusterSums, Device, Engine, device_error};
use crate::error::{MlError, Result};
use crate::summary::TrainingSummary;

/// How the initial centers are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitMode {
    /// `k` distinct rows drawn at random (Spark's `"random"`).
    Random,
    /// k-means|| (Spark's `"k-means||"`, the default): `init_steps` rounds of oversampling rows
    /// in proportion to their cost, then weighted k-means++ on the driver.
    KMeansParallel,
}

/// k-means clustering with Lloyd's algorithm, as Spark ML's `KMeans`.
///
/// ```
/// use flint_mllib::{LabeledPoint, clustering::KMeans};
/// let ctx = flint_engine::Context::local(2).unwrap();
/// let points: Vec<LabeledPoint> = (0..40)
///     .map(|i| LabeledPoint::new(0.0, vec![(i % 2) as f64 * 10.0 + (i as f64) * 0.01]))
///     .collect();
/// let model = KMeans::new().k(2).seed(1).fit(&ctx.parallelize(points, 2)).unwrap();
/// let mut xs: Vec<f64> = model.cluster_centers().iter().map(|c| c[0]).collect();
/// xs.sort_by(f64::total_cmp);
/// assert!((xs[0] - 0.19).abs() < 1e-9 && (xs[1] - 10.2).abs() < 1e-9, "{xs:?}");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct KMeans {
    k: usize,
    max_iter: usize,
    tol: f64,
    seed: u64,
    init_mode: InitMode,
    init_steps: usize,
    initial_centers: Option<Vec<Vec<f64>>>,
    block_rows: Option<usize>,
    device: Option<Device>,
}

impl Default for KMeans {
    fn default() -> Self {
        KMeans::new()
    }
}

/// Combined per-cluster statistics of one Lloyd iteration.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LloydStats {
    /// Sums, weights, counts and cost per cluster.
    sums: ClusterSums,
    /// Rows whose bounds spared them the distance kernel.
    spared: u64,
    /// Why a block could not be computed on the requested device (the first reason).
    failure: Option<String>,
}

impl LloydStats {
    fn zero(k: usize, d: usize) -> Self {
        LloydStats {
            sums: ClusterSums::zero(k, d),
            spared: 0,
            failure: None,
        }
    }

    fn failed(k: usize, d: usize, why: String) -> Self {
        LloydStats {
            failure: Some(why),
            ..LloydStats::zero(k, d)
        }
    }

    /// Adds a block's full (unbounded) pass, computed on `engine`.
    fn add_block(mut self, engine: Engine, nb: &NormedBlock, centers: &Centers) -> Self {
        match engine.kmeans(nb, centers) {
            Ok(s) => {
                self.sums.merge(&s);
                self
            }
            Err(why) => self.merge(LloydStats::failed(centers.k, centers.d, why)),
        }
    }

    fn merge(mut self, o: LloydStats) -> Self {
        self.sums.merge(&o.sums);
        self.spared += o.spared;
        if self.failure.is_none() {
            self.failure = o.failure;
        }
        self
    }
}

/// One pass: every block's rows assigned to the closest of `centers` (on `device`),
/// statistics combined.
fn lloyd_pass(blocks: &Rdd<NormedBlock>, centers: &[Vec<f64>], d: usize, device: Device) -> Result<LloydStats> {
    let bc = blocks.context().broadcast(Centers::new(centers, d));
    let stats = blocks.tree_aggregate(
        LloydStats::zero(centers.len(), d),
        with(
            (bc, device),
            |(bc, device): &(Broadcast<Centers>, Device), acc: LloydStats, nb: NormedBlock| match device
                .select(nb.block.rows * nb.block.cols)
            {
                Ok(engine) => acc.add_block(engine, &nb, bc),
                Err(why) => acc.merge(LloydStats::failed(bc.k, bc.d, why)),
            },
        ),
        |a: LloydStats, b: LloydStats| a.merge(b),
        2,
    )?;
    match stats.failure {
        Some(why) => Err(device_error(device, why)),
        None => Ok(stats),
    }
}

/// State of a pass's tasks: the centers and their drift since the previous pass, which fit
/// and pass this is (for the bounds kept between passes), and the device.
type PassState = (Broadcast<(Centers, Vec<f64>)>, FitId, usize, Device);

/// Lloyd pass number `pass` of fit `fit`: every row assigned to the closest of `centers`
/// (which moved by `drift` since the previous pass), the statistics combined.
///
/// On the CPU, a block starts from the bounds the previous pass left in this process
/// ([`bounds`]; Hamerly's algorithm), so that rows far from any other center skip the distance
/// computations, and leaves its new ones. A block that `device` sends to a GPU takes the plain
/// full pass there (the GPU computes every distance faster than the CPU checks the bounds).
fn bounded_pass(
    blocks: &Rdd<NormedBlock>,
    centers: &[Vec<f64>],
    drift: &[f64],
    (fit, pass): (FitId, usize),
    d: usize,
    device: Device,
) -> Result<LloydStats> {
    let bc = blocks.context().broadcast((Centers::new(centers, d), drift.to_vec()));
    let stats = blocks
        .map_partitions_with_index(with(
            (bc, fit, pass, device),
            |(bc, fit, pass, device): &PassState, partition: usize, it: BoxIter<NormedBlock>| {
                let (centers, drift) = &**bc;
                let mut acc = LloydStats::zero(centers.k, centers.d);
                for (block, nb) in it.enumerate() {
                    acc = match device.select(nb.block.rows * nb.block.cols) {
                        Ok(engine) if engine.is_gpu() => acc.add_block(engine, &nb, centers),
                        Ok(_) => {
                            let key = BlockKey {
                                fit: *fit,
                                partition,
                                block,
                            };
                            let (mut b, valid) = bounds::take(key, *pass);
                            let spared = lloyd_block(&nb, centers, &mut b, valid.then_some(&drift[..]), &mut acc.sums);
                            bounds::keep(key, *pass, b);
                            acc.spared += spared as u64;
                            acc
                        }
                        Err(why) => acc.merge(LloydStats::failed(centers.k, centers.d, why)),
                    };
                }
                std::iter::once(acc)
            },
        ))
        .tree_aggregate(
            LloydStats::zero(centers.len(), d),
            |a: LloydStats, b: LloydStats| a.merge(b),
            |a: LloydStats, b: LloydStats| a.merge(b),
            2,
        )?;
    match stats.failure {
        Some(why) => Err(device_error(device, why)),
        None => Ok(stats),
    }
}

/// Drops the bounds of `fit` the processes running `blocks`' tasks keep (best effort: a
/// process this misses drops them when another fit needs the room).
fn forget_bounds(blocks: &Rdd<NormedBlock>, fit: FitId) {
    bounds::forget(fit);
    let cleared = blocks.foreach_partition(with(fit, |fit: &FitId, _: BoxIter<NormedBlock>| bounds::forget(*fit)));
    if let Err(e) = cleared {
        tracing::debug!(error = %e, "k-means: could not drop the bounds of a fit");
    }
}

impl KMeans {
    /// Defaults (Spark's): `k = 2`, `max_iter = 20`, `tol = 1e-4`, `seed = 2024`,
    /// `init_mode = KMeansParallel`, `init_steps = 2`, no initial centers, blocks of
    /// [`DEFAULT_BLOCK_ROWS`](crate::data::DEFAULT_BLOCK_ROWS) rows (larger with [`Device::Gpu`]: [`crate::device::GPU_BLOCK_ROWS`]),
    /// the device of `FLINT_ML_DEVICE` (else [`Device::Auto`]).
    pub fn new() -> Self {
        KMeans {
            k: 2,
            max_iter: 20,
            tol: 1e-4,
            seed: 2024,
            init_mode: InitMode::KMeansParallel,
            init_steps: 2,
            initial_centers: None,
            block_rows: None,
            device: None,
        }
    }

    /// Where Lloyd's passes run (default: the `flint.ml.device` setting, environment variable
    /// `FLINT_ML_DEVICE`, else [`Device::Auto`]); see [`crate::device`]. On a GPU each pass
    /// computes every distance (no Hamerly bounds); the initialization runs on the CPU.
    ///
    /// ```
    /// use flint_mllib::{Device, LabeledPoint, clustering::KMeans};
    /// let ctx = flint_engine::Context::local(2).unwrap();
    /// let points: Vec<LabeledPoint> = (0..20).map(|i| LabeledPoint::new(0.0, vec![(i % 2) as f64 * 5.0])).collect();
    /// let model = KMeans::new().k(2).device(Device::Cpu).fit(&ctx.parallelize(points, 2)).unwrap();
    /// assert_eq!(model.summary.cluster_sizes, vec![10, 10]);
    /// ```
    pub fn device(mut self, device: Device) -> Self {
        self.device = Some(device);
        self
    }

    /// Number of clusters, at least 1 and at most the number of rows (default 2).
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Maximum number of Lloyd iterations, 0 or more (default 20).
    pub fn max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Convergence tolerance, ≥ 0 (default 1e-4): training stops once no center moved by
    /// more than `tol` (Euclidean distance) in an iteration (Spark: `‖c' − c‖² ≤ tol²`).
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Seed of the random initialization (default 2024).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How initial centers are chosen (default [`InitMode::KMeansParallel`]).
    pub fn init_mode(mut self, mode: InitMode) -> Self {
        self.init_mode = mode;
        self
    }

    /// Rounds of k-means|| oversampling, at least 1 (default 2).
    pub fn init_steps(mut self, steps: usize) -> Self {
        self.init_steps = steps;
        self
    }

    /// Starts from these centers instead of a random initialization (Spark's `initialModel`);
    /// also sets `k` to their number.
    pub fn initial_centers(mut self, centers: Vec<Vec<f64>>) -> Self {
        self.k = centers.len();
        self.initial_centers = Some(centers);
        self
    }

    /// Rows per cached instance block, at least 1 (default [`DEFAULT_BLOCK_ROWS`](crate::data::DEFAULT_BLOCK_ROWS), or
    /// [`crate::device::GPU_BLOCK_ROWS`] with [`Device::Gpu`]).
    pub fn block_rows(mut self, rows: usize) -> Self {
        self.block_rows = Some(rows);
        self
    }

    fn check_params(&self) -> Result<()> {
        if self.k < 1 {
            return Err(MlError::param("k", self.k, "at least 1"));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(MlError::param("tol", self.tol, "finite and ≥ 0"));
        }
        if self.init_steps < 1 {
            return Err(MlError::param("init_steps", self.init_steps, "at least 1"));
        }
        if self.block_rows == Some(0) {
            return Err(MlError::param("block_rows", 0, "at least 1"));
        }
        Ok(())
    }

    fn check_initial_centers(&self, centers: &[Vec<f64>], dim: usize) -> Result<()> {
        let show = |what: &str| MlError::param("initial_centers", format!("({} centers)", centers.len()), what);
        if centers.len() != self.k {
            return Err(show(&format!("exactly k = {} centers", self.k)));
        }
        if let Some(c) = centers.iter().find(|c| c.len() != dim) {
            return Err(show(&format!(
                "centers of {dim} features like the data (one has {})",
                c.len()
            )));
        }
        if centers.iter().flatten().any(|x| !x.is_finite()) {
            return Err(show("finite values"));
        }
        Ok(())
    }

    /// Fits the model: checks the data in one pass, stacks it into cached instance blocks,
    /// initializes the centers and runs Lloyd's iterations (one job each) until no center moves
    /// by more than `tol` or `max_iter` iterations. An empty cluster keeps its center.
    ///
    /// Errors: a parameter out of range; empty data; rows of different lengths; non-finite
    /// features; negative or non-finite weights; `k` larger than the number of rows; initial
    /// centers of another count or length.
    pub fn fit(&self, data: &Rdd<LabeledPoint>) -> Result<KMeansModel> {
        self.check_params()?;
        let device = Device::or_env(self.device)?;
        let info = scan(data)?;
        if self.k as u64 > info.rows {
            return Err(MlError::param(
                "k",
                self.k,
                format!("at most the number of rows ({})", info.rows),
            ));
        }
        if let Some(c) = &self.initial_centers {
            self.check_initial_centers(c, info.dim)?;
        }
        let start = Instant::now();
        let blocks = to_blocks(data, info.dim, device.block_rows(self.block_rows))
            .map(|b: InstanceBlock| NormedBlock::new(b))
            .cache();
        let result = self.train(&blocks, &info, start, device);
        blocks.unpersist();
        result
    }

    fn train(
        &self,
        blocks: &Rdd<NormedBlock>,
        info: &InputInfo,
        start: Instant,
        device: Device,
    ) -> Result<KMeansModel> {
        let d = info.dim;
        let mut centers = match (&self.initial_centers, self.init_mode) {
            (Some(c), _) => c.clone(),
            (None, InitMode::Random) => init::random(blocks, self.k, self.seed)?,
            (None, InitMode::KMeansParallel) => init::kmeans_parallel(blocks, self.k, self.init_steps, self.seed, d)?,
        };
        tracing::info!(
            k = centers.len(),
            rows = info.rows,
            features = d,
            init_seconds = start.elapsed().as_secs_f64(),
            "k-means: initialized"
        );
        let tol2 = self.tol * self.tol;
        let mut history = Vec::with_capacity(self.max_iter);
        let mut sizes = Vec::new();
        let mut converged = false;
        let mut iterations = 0;
        // Each pass leaves its rows' assignment bounds in the executors for the next one
        // (Hamerly), so that rows far from any other center skip the distance computations.
        let fit = FitId::new();
        #[cfg(test)]
        tests::LAST_FIT.set(Some(fit));
        let mut drift = vec![0.0; centers.len()];
        let mut failure = None;
        let mut pass_seconds = Vec::with_capacity(self.max_iter);
        while iterations < self.max_iter && !converged {
            let pass_start = Instant::now();
            let pass = bounded_pass(blocks, &centers, &drift, (fit, iterations), d, device);
            pass_seconds.push(pass_start.elapsed().as_secs_f64());
            let stats = match pass {
                Ok(stats) => stats,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            converged = true;
            for (j, c) in centers.iter_mut().enumerate() {
                let w = stats.sums.weights[j];
                drift[j] = 0.0;
                if w > 0.0 {
                    let new: Vec<f64> = stats.sums.sums[j * d..(j + 1) * d].iter().map(|s| s / w).collect();
                    let moved = sq_dist(&new, c);
                    if moved > tol2 {
                        converged = false;
                    }
                    drift[j] = moved.sqrt() * (1.0 + 1e-10);
                    *c = new;
                }
            }
            tracing::debug!(
                iteration = iterations,
                cost = stats.sums.cost,
                spared = stats.spared,
                "k-means iteration"
            );
            history.push(stats.sums.cost);
            sizes = stats.sums.counts;
            iterations += 1;
        }
        forget_bounds(blocks, fit);
        if let Some(e) = failure {
            return Err(e);
        }
        let training_cost = match history.last() {
            Some(c) => *c,
            None => {
                let stats = lloyd_pass(blocks, &centers, d, device)?;
                sizes = stats.sums.counts;
                stats.sums.cost
            }
        };
        tracing::info!(iterations, converged, training_cost, "k-means: trained");
        Ok(KMeansModel::new(
            centers,
            KMeansSummary {
                training: TrainingSummary {
                    iterations,
                    loss_history: history,
                    converged,
                    train_seconds: start.elapsed().as_secs_f64(),
                    pass_seconds,
                },
                training_cost,
                cluster_sizes: sizes,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::atomic::Ordering;

    use flint_engine::Context;

    use super::*;
    use crate::clustering::bounds::{held, test_hooks};

    thread_local! {
        /// The fit id of the last fit this thread ran.
        pub(super) static LAST_FIT: Cell<Option<FitId>> = const { Cell::new(None) };
    }

    /// Four overlapping blobs in 6 dimensions, in 2 partitions of several blocks.
    fn blobs(ctx: &Context) -> Rdd<LabeledPoint> {
        let mut s: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let points: Vec<LabeledPoint> = (0..6000)
            .map(|i| {
                let c = (i % 4) as f64 * 3.0;
                LabeledPoint::new(0.0, (0..6).map(|p| c * (p % 2) as f64 + next() * 4.0).collect())
            })
            .collect();
        ctx.parallelize(points, 2)
    }

    fn fit(data: &Rdd<LabeledPoint>) -> (KMeansModel, FitId) {
        let model = KMeans::new()
            .k(5)
            .max_iter(25)
            .tol(0.0)
            .seed(7)
            .init_mode(InitMode::Random)
            .block_rows(512)
            .device(Device::Cpu)
            .fit(data)
            .unwrap();
        (model, LAST_FIT.get().expect("the fit ran on this thread"))
    }

    fn bits(m: &KMeansModel) -> (Vec<u64>, Vec<u64>) {
        (
            m.cluster_centers().iter().flatten().map(|x| x.to_bits()).collect(),
            m.summary.training.loss_history.iter().map(|x| x.to_bits()).collect(),
        )
    }

    #[test]
    fn the_bounds_change_no_bit_of_the_model_and_are_dropped_after_the_fit() {
        let ctx = Context::local(2).unwrap();
        let data = blobs(&ctx).cache();
        let used = test_hooks::USED.load(Ordering::Relaxed);
        let (with_bounds, fit_id) = fit(&data);
        assert!(
            test_hooks::USED.load(Ordering::Relaxed) > used,
            "no pass started from the previous pass's bounds"
        );
        assert_eq!(held(fit_id), 0, "the fit left its bounds behind");
        test_hooks::OFF.store(true, Ordering::Relaxed);
        let without = fit(&data).0;
        test_hooks::OFF.store(false, Ordering::Relaxed);
        assert_eq!(bits(&with_bounds), bits(&without));
        assert_eq!(with_bounds.summary.training.iterations, 25);
    }
}
