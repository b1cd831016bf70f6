//! Micro-benchmarks of the engine, the same work as `../shared/peers/spark_bench.py` runs on
//! Spark: tiny-job latency, empty-task throughput, shuffle-heavy sort and group-by, and an
//! aggregation larger than the memory limit; and the cost of an ML iteration's job apart from
//! its arithmetic.

use std::time::Instant;

use flint::Result;
use flint::prelude::*;

/// The multiplicative hash the peer benchmark uses for pseudo-random 32-bit keys.
const H: i64 = 2_654_435_761;

/// Latencies (seconds) of `jobs` one-task jobs `parallelize([1], 1).count()`, after one warm-up.
pub fn tiny_job_latencies(ctx: &Context, jobs: usize) -> Result<Vec<f64>> {
    ctx.parallelize(vec![1u8], 1).count()?;
    let mut lat = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let start = Instant::now();
        let n = ctx.parallelize(vec![1u8], 1).count()?;
        lat.push(start.elapsed().as_secs_f64());
        debug_assert_eq!(n, 1);
    }
    Ok(lat)
}

/// The passes of a logistic regression over `rows` x 50 cached rows, few enough that the
/// arithmetic is negligible (microseconds): what an iteration's job costs apart from the work
/// (broadcast of the coefficients, tasks, tree aggregation, the optimizer's step). Returns the
/// passes' seconds (100 iterations at tol 0, a few more passes for line searches).
pub fn ml_pass_overhead(ctx: &Context, rows: usize) -> flint::ml::Result<Vec<f64>> {
    use flint::ml::LabeledPoint;
    use flint::ml::classification::LogisticRegression;
    // Generated in the tasks (not `parallelize`d: a job's tasks would carry the rows with
    // the lineage to the executors in distributed mode).
    let data = ctx
        .range(0, rows as i64, 2)
        .map(|r: i64| {
            let r = r as usize;
            let x: Vec<f64> = (0..50).map(|j| ((r * 50 + j) as f64 * 0.37).sin()).collect();
            // Labels unrelated to the features: no separation, several iterations.
            LabeledPoint::new(((r * 2_654_435_761) >> 7 & 1) as f64, x)
        })
        .cache();
    data.count()?;
    let model = LogisticRegression::new().tol(0.0).max_iter(100).fit(&data)?;
    Ok(model.summary().pass_seconds.clone())
}

/// Seconds to run one job of `tasks` empty tasks (`range(0, tasks, tasks).count()`).
pub fn empty_tasks(ctx: &Context, tasks: usize) -> Result<f64> {
    let start = Instant::now();
    let n = ctx.range(0, tasks as i64, tasks).count()?;
    assert_eq!(n, tasks as u64);
    Ok(start.elapsed().as_secs_f64())
}

/// The peer benchmark's `(k, v)` pairs: `v` in `0..n`, `k` a 32-bit hash of `v`, 8 partitions.
pub fn pairs(ctx: &Context, n: u64) -> Rdd<(i64, i64)> {
    ctx.range(0, n as i64, 8)
        .map(|v: i64| ((v.wrapping_mul(H)) & 0xFFFF_FFFF, v))
}

/// `sortByKey(8).count()` of the pairs.
pub fn sort_pairs(ctx: &Context, n: u64) -> Result<u64> {
    pairs(ctx, n).sort_by_key(true, 8).count()
}

/// `(k mod 10^6, v).groupByKey(8)`, then the sum of group sizes.
pub fn group_pairs(ctx: &Context, n: u64) -> Result<u64> {
    pairs(ctx, n)
        .map(|(k, v): (i64, i64)| (k % 1_000_000, v))
        .group_by_key_into(8)
        .map(|(_, vs): (i64, Vec<i64>)| vs.len() as u64)
        .fold(0, |a, b| a + b)
}

/// Sum per key over `n` records with `distinct` keys (each key's sum is `k * copies` style
/// data): an aggregation whose state is far larger than a small memory limit.
pub fn aggregate_distinct(ctx: &Context, n: u64, distinct: u64) -> Result<u64> {
    ctx.range(0, n as i64, 8)
        .map(with(distinct as i64, |d: &i64, v: i64| {
            ((v.wrapping_mul(H) & 0xFFFF_FFFF) % d, v)
        }))
        .reduce_by_key(|a: i64, b: i64| a.wrapping_add(b))
        .count()
}

/// Read bandwidth of this machine in GB/s ([`memory_bandwidth`]).
#[derive(Clone, Copy, Debug)]
pub struct Bandwidth {
    /// Summing ordinary heap memory (4 KiB pages, as the cached blocks are), 1 thread.
    pub one_thread: f64,
    /// The same, 2 threads.
    pub two_threads: f64,
    /// Summing memory on transparent huge pages (2 MiB; numpy's large arrays are), 1 and 2
    /// threads, and the bytes the kernel did put on huge pages; `None` where it put none.
    pub huge_pages: Option<(f64, f64, u64)>,
}

impl Bandwidth {
    /// The best 2-thread figure: the bound the ML benchmarks are compared to.
    pub fn best_two_threads(&self) -> f64 {
        self.huge_pages
            .map_or(self.two_threads, |(_, two, _)| two.max(self.two_threads))
    }
}

/// Read bandwidth of this machine: the best of 5 sums of a `bytes`-long `f64` array on 1 and
/// on 2 threads (what numpy's `a.sum()` measures in the peers' `limits` case), in ordinary
/// memory and again in an anonymous map advised onto transparent huge pages (fewer TLB misses
/// and no prefetcher stop at every 4 KiB: up to a few tens of percent more on some machines).
pub fn memory_bandwidth(bytes: usize) -> Bandwidth {
    let n = bytes / 8;
    let data: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
    let (one_thread, two_threads) = sum_bandwidth(&data);
    drop(data);
    Bandwidth {
        one_thread,
        two_threads,
        huge_pages: huge_page_bandwidth(n * 8),
    }
}

/// [`sum_bandwidth`] of `bytes` in a map advised `MADV_HUGEPAGE`, with the bytes that landed
/// on huge pages; `None` where the map or the advice fails or no huge page was given.
fn huge_page_bandwidth(bytes: usize) -> Option<(f64, f64, u64)> {
    let mut map = memmap2::MmapMut::map_anon(bytes).ok()?;
    map.advise(memmap2::Advice::HugePage).ok()?;
    let data: &mut [f64] = bytemuck::try_cast_slice_mut(&mut map[..]).ok()?;
    data.iter_mut().enumerate().for_each(|(i, x)| *x = (i % 7) as f64);
    let huge = anon_huge_page_bytes()?;
    if huge == 0 {
        return None;
    }
    let (one, two) = sum_bandwidth(data);
    Some((one, two, huge))
}

/// `AnonHugePages` of this process (Linux), in bytes.
fn anon_huge_page_bytes() -> Option<u64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = rollup.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// GB/s of the best of 5 sums of `data`, on 1 and on 2 threads.
fn sum_bandwidth(data: &[f64]) -> (f64, f64) {
    let bytes = std::mem::size_of_val(data);
    let sum = |xs: &[f64]| -> f64 {
        let mut acc = [0.0f64; 8];
        let chunks = xs.chunks_exact(8);
        let rest: f64 = chunks.remainder().iter().sum();
        for c in chunks {
            for k in 0..8 {
                acc[k] += c[k];
            }
        }
        acc.iter().sum::<f64>() + rest
    };
    let best = |f: &dyn Fn() -> f64| -> f64 {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let start = Instant::now();
            std::hint::black_box(f());
            best = best.min(start.elapsed().as_secs_f64());
        }
        bytes as f64 / best / 1e9
    };
    let one = best(&|| sum(data));
    let (a, b) = data.split_at(data.len() / 2);
    let two = best(&|| {
        std::thread::scope(|s| {
            let h = s.spawn(|| sum(a));
            sum(b) + h.join().expect("summing thread")
        })
    });
    (one, two)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidths_are_measured_and_the_bound_is_the_best_of_them() {
        let bw = memory_bandwidth(16 << 20);
        assert!(bw.one_thread > 0.0 && bw.two_threads > 0.0, "{bw:?}");
        assert!(bw.best_two_threads() >= bw.two_threads, "{bw:?}");
        // Huge pages depend on the kernel's settings; where some were given, they count.
        if let Some((one, two, bytes)) = bw.huge_pages {
            assert!(one > 0.0 && two > 0.0 && bytes > 0, "{bw:?}");
            assert!(bw.best_two_threads() >= two, "{bw:?}");
        }
    }
}
