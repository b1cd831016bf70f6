//! The k-means estimator (Spark ML's `KMeans`): parameters, validation, and Lloyd's iterations
//! over cached instance blocks, one job per iteration.

use std::sync::Arc;
use std::time::Instant;

use flint_engine::{Broadcast, Rdd, with};
use serde::{Deserialize, Serialize};

use super::distance::{Bounds, Centers, NormedBlock, assign_bounded, sq_dist};
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
    /// `k × d`: Σ w·x of the rows closest to each center.
    sums: Vec<f64>,
    /// Σ w per cluster.
    weights: Vec<f64>,
    /// Rows per cluster.
    counts: Vec<u64>,
    /// Σ w·d² to the closest center.
    cost: f64,
    /// Why a block could not be computed on the requested device (the first reason).
    failure: Option<String>,
}

impl LloydStats {
    fn zero(k: usize, d: usize) -> Self {
        LloydStats {
            sums: vec![0.0; k * d],
            weights: vec![0.0; k],
            counts: vec![0; k],
            cost: 0.0,
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
    fn add_block(self, engine: Engine, nb: &NormedBlock, centers: &Centers) -> Self {
        match engine.kmeans(nb, centers) {
            Ok(s) => self.add_sums(&s),
            Err(why) => self.merge(LloydStats::failed(centers.k, centers.d, why)),
        }
    }

    fn add_sums(mut self, s: &ClusterSums) -> Self {
        self.sums.iter_mut().zip(&s.sums).for_each(|(a, b)| *a += b);
        self.weights.iter_mut().zip(&s.weights).for_each(|(a, b)| *a += b);
        self.counts.iter_mut().zip(&s.counts).for_each(|(a, b)| *a += b);
        self.cost += s.cost;
        self
    }

    /// Adds a block whose rows were assigned by [`assign_bounded`].
    fn add_assigned(mut self, nb: &NormedBlock, bounds: &Bounds) -> Self {
        let b = &nb.block;
        let d = b.cols;
        for (r, (&j, &dist)) in bounds.assign.iter().zip(&bounds.dist2).enumerate() {
            let (j, w) = (j as usize, b.weights[r]);
            crate::linalg::kernels::axpy(w, b.row(r), &mut self.sums[j * d..(j + 1) * d]);
            self.weights[j] += w;
            self.counts[j] += 1;
            self.cost += w * dist;
        }
        self
    }

    fn merge_ref(mut self, o: &LloydStats) -> Self {
        self.sums.iter_mut().zip(&o.sums).for_each(|(a, b)| *a += b);
        self.weights.iter_mut().zip(&o.weights).for_each(|(a, b)| *a += b);
        self.counts.iter_mut().zip(&o.counts).for_each(|(a, b)| *a += b);
        self.cost += o.cost;
        if self.failure.is_none() {
            self.failure.clone_from(&o.failure);
        }
        self
    }

    fn merge(self, o: LloydStats) -> Self {
        self.merge_ref(&o)
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

/// Passes whose bounds derive from one another before they restart from scratch (one exact
/// pass): bounds the lineage depth of the cached bounds.
const BOUNDS_LINEAGE_PASSES: usize = 8;

/// Most numbers (`k × d`) of per-block statistics cached with a block's bounds.
const FUSED_STATS_MAX: usize = 1 << 16;

/// What a pass keeps per block for the next one: its rows' bounds and, when small, the block's
/// statistics.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Pass {
    bounds: Arc<Bounds>,
    stats: Option<Arc<LloydStats>>,
}

/// State of a bounded pass's tasks: the centers, their drift since the previous pass, whether
/// to keep per-block statistics, and the device.
type PassState = (Broadcast<(Centers, Vec<f64>)>, bool, Device);

/// One pass that reuses the previous pass's bounds (`prev`, one per block, for centers that
/// have moved by `drift` since): the new bounds, cached (the caller unpersists them), and the
/// statistics. The bounds are cached apart from the blocks (zipped with them), so that caching
/// them costs only their own size.
///
/// A block that `device` sends to a GPU takes the plain full pass there (no bounds: the GPU
/// computes every distance faster than the CPU checks the bounds); its statistics are kept
/// with an empty `Bounds`, so that a later pass on the CPU starts that block afresh.
fn bounded_pass(
    blocks: &Rdd<NormedBlock>,
    prev: &Rdd<Pass>,
    centers: &[Vec<f64>],
    drift: &[f64],
    d: usize,
    device: Device,
) -> Result<(Rdd<Pass>, LloydStats)> {
    let bc = blocks.context().broadcast((Centers::new(centers, d), drift.to_vec()));
    // With few centers, each block's statistics are summed while its rows are still in cache
    // and kept (k × d numbers) with its bounds; else the aggregation reads the block again.
    let fuse = centers.len() * d <= FUSED_STATS_MAX;
    let next = blocks
        .zip(prev)
        .map(with(
            (bc, fuse, device),
            |(bc, fuse, device): &PassState, (nb, old): (NormedBlock, Pass)| {
                let (centers, drift) = &**bc;
                let (k, d) = (centers.k, centers.d);
                let gpu_stats = match device.select(nb.block.rows * nb.block.cols) {
                    Ok(engine) if engine.is_gpu() => Some(LloydStats::zero(k, d).add_block(engine, &nb, centers)),
                    Ok(_) => None,
                    Err(why) => Some(LloydStats::failed(k, d, why)),
                };
                if let Some(stats) = gpu_stats {
                    return Pass {
                        bounds: Arc::default(),
                        stats: Some(Arc::new(stats)),
                    };
                }
                let bounds = assign_bounded(&nb, centers, Some(&old.bounds), drift);
                let stats = fuse.then(|| Arc::new(LloydStats::zero(centers.k, centers.d).add_assigned(&nb, &bounds)));
                Pass {
                    bounds: Arc::new(bounds),
                    stats,
                }
            },
        ))
        .cache();
    let stats = blocks.zip(&next).tree_aggregate(
        LloydStats::zero(centers.len(), d),
        |acc: LloydStats, (nb, pass): (NormedBlock, Pass)| match &pass.stats {
            Some(s) => acc.merge_ref(s),
            None => acc.add_assigned(&nb, &pass.bounds),
        },
        |a: LloydStats, b: LloydStats| a.merge(b),
        2,
    );
    match stats {
        Ok(stats) => match stats.failure {
            Some(why) => {
                next.unpersist();
                Err(device_error(device, why))
            }
            None => Ok((next, stats)),
        },
        Err(e) => {
            next.unpersist();
            Err(e.into())
        }
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
        // Each pass keeps its rows' assignment bounds cached for the next one (Hamerly), so
        // that rows far from any other center skip the distance computations.
        let mut state: Rdd<Pass> = blocks.map(|_: NormedBlock| Pass::default());
        let mut cached: Option<Rdd<Pass>> = None;
        let mut drift = vec![0.0; centers.len()];
        let mut failure = None;
        while iterations < self.max_iter && !converged {
            // Each pass's bounds derive from the previous pass's: start afresh every few passes
            // so that the lineage a lost partition is recomputed through (and every task
            // ships) stays short however many iterations run.
            if iterations > 0 && iterations % BOUNDS_LINEAGE_PASSES == 0 {
                state = blocks.map(|_: NormedBlock| Pass::default());
            }
            let stats = match bounded_pass(blocks, &state, &centers, &drift, d, device) {
                Ok((next, stats)) => {
                    if let Some(old) = cached.replace(next.clone()) {
                        old.unpersist();
                    }
                    state = next;
                    stats
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            converged = true;
            for (j, c) in centers.iter_mut().enumerate() {
                let w = stats.weights[j];
                drift[j] = 0.0;
                if w > 0.0 {
                    let new: Vec<f64> = stats.sums[j * d..(j + 1) * d].iter().map(|s| s / w).collect();
                    let moved = sq_dist(&new, c);
                    if moved > tol2 {
                        converged = false;
                    }
                    drift[j] = moved.sqrt() * (1.0 + 1e-10);
                    *c = new;
                }
            }
            tracing::debug!(iteration = iterations, cost = stats.cost, "k-means iteration");
            history.push(stats.cost);
            sizes = stats.counts;
            iterations += 1;
        }
        if let Some(old) = cached {
            old.unpersist();
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let training_cost = match history.last() {
            Some(c) => *c,
            None => {
                let stats = lloyd_pass(blocks, &centers, d, device)?;
                sizes = stats.counts;
                stats.cost
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
                },
                training_cost,
                cluster_sizes: sizes,
            },
        ))
    }
}
