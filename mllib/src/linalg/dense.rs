//! Small dense symmetric matrices for the normal equations: packed Gram accumulation over a
//! block, Cholesky factorisation and solve, and the inverse of a symmetric positive definite
//! matrix (for standard errors).
//!
//! Packed storage holds the lower triangle row by row: entry `(i, j)` with `j ≤ i` is at
//! [`packed_index`]`(i, j) = i(i+1)/2 + j`; an `n × n` matrix takes [`packed_len`]`(n)` values.
//! Full matrices are row-major `n × n`.

use super::kernels::{add_scaled_rows, axpy};
#[cfg(target_arch = "x86_64")]
use super::simd::Isa;

/// Number of values of a packed symmetric `n × n` matrix.
#[inline]
pub fn packed_len(n: usize) -> usize {
    n * (n + 1) / 2
}

/// Index of entry `(i, j)` of a packed symmetric matrix (either order).
#[inline]
pub fn packed_index(i: usize, j: usize) -> usize {
    let (i, j) = if j > i { (j, i) } else { (i, j) };
    i * (i + 1) / 2 + j
}

/// `A += alpha · v vᵀ` on a packed symmetric matrix of size `v.len()`.
#[inline]
pub fn spr_add(alpha: f64, v: &[f64], packed: &mut [f64]) {
    debug_assert_eq!(packed.len(), packed_len(v.len()));
    if alpha == 0.0 {
        return;
    }
    for i in 0..v.len() {
        let start = i * (i + 1) / 2;
        axpy(alpha * v[i], &v[..=i], &mut packed[start..=start + i]);
    }
}

/// Rows per chunk of [`gram_accumulate`]: a chunk's rows (and their weighted copies) stay in the
/// L1 cache while every tile of the matrix reads them.
const GRAM_CHUNK: usize = 32;

/// Rows of the Gram matrix per tile (broadcast values).
const TILE_I: usize = 4;

/// Columns of the Gram matrix per tile (contiguous in a row: whole vectors) for the plain and
/// AVX2 tiles; the AVX-512 one takes twice as many.
const TILE_J: usize = 8;

/// Accumulates the weighted Gram matrix of a row-major `rows × cols` block augmented with a
/// column of ones (the intercept column, last): `packed += Σ_r w_r a_r a_rᵀ` and
/// `az += Σ_r w_r a_r z_r` with `a_r = [x_r, 1]`, so `packed` is `(cols+1)`-square and `az` has
/// `cols + 1` entries. Rows of weight 0 add nothing.
///
/// Register-tiled, in AVX-512 or AVX2 vectors where the CPU has them: per chunk of
/// 32 rows (copied, padded to whole tiles, next to a copy scaled by the weights),
/// each `TILE_I × COLS` tile of the lower triangle sums its products over the chunk's rows in
/// registers and is added to `packed` once. A row-by-row rank-one update (BLAS `dspr`, what
/// Spark does) reads and writes the whole triangle for every row instead: 3.5 times slower
/// (1M x 50 on one core: 560 against 160 ms).
/// Every product is `(w_r · x_ri) · x_rj`, summed in row order within a chunk, without fused
/// multiply-adds: the same bits on every CPU.
pub fn gram_accumulate(x: &[f64], rows: usize, cols: usize, w: &[f64], z: &[f64], packed: &mut [f64], az: &mut [f64]) {
    debug_assert_eq!(x.len(), rows * cols);
    debug_assert_eq!(packed.len(), packed_len(cols + 1));
    debug_assert_eq!(az.len(), cols + 1);
    let (x, w, z) = (&x[..rows * cols], &w[..rows], &z[..rows]);
    match Isa::detect() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512(simd) => simd.vectorize(GramPass {
            tile: Avx512Tile(simd),
            x,
            cols,
            w,
            z,
            packed,
            az,
        }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2(simd) => simd.vectorize(GramPass {
            tile: Avx2Tile(simd),
            x,
            cols,
            w,
            z,
            packed,
            az,
        }),
        Isa::Baseline => gram_chunks(PlainTile, x, cols, w, z, packed, az),
    }
}

/// [`gram_chunks`] for `vectorize` (a struct, not a closure: see `clustering::distance`'s
/// `LloydPass`).
#[cfg(target_arch = "x86_64")]
struct GramPass<'a, T> {
    tile: T,
    x: &'a [f64],
    cols: usize,
    w: &'a [f64],
    z: &'a [f64],
    packed: &'a mut [f64],
    az: &'a mut [f64],
}

#[cfg(target_arch = "x86_64")]
impl<T: GramTile> pulp::NullaryFnOnce for GramPass<'_, T> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        gram_chunks(self.tile, self.x, self.cols, self.w, self.z, self.packed, self.az)
    }
}

/// A chunk's rows as the tiles read them: `xs` (the rows, padded to `stride` values with
/// zeros) and `wxs` (each scaled by its weight), `rows` of them, `cols` real columns.
struct Chunk<'a> {
    xs: &'a [f64],
    wxs: &'a [f64],
    stride: usize,
    rows: usize,
    cols: usize,
}

impl Chunk<'_> {
    /// Row `r`'s `J` values from column `jb`, and its `TILE_I` scaled values from column `ib`
    /// (whole, as the rows are padded to whole tiles).
    #[inline(always)]
    fn row<const J: usize>(&self, r: usize, ib: usize, jb: usize) -> (&[f64; J], &[f64; TILE_I]) {
        let at = r * self.stride;
        let row = self.xs[at + jb..].first_chunk().expect("rows padded to whole tiles");
        let scaled = self.wxs[at + ib..].first_chunk().expect("rows padded to whole tiles");
        (row, scaled)
    }
}

/// One tile of a chunk's Gram matrix: `acc[t][l] = Σ_r wxs[r][ib + t] · xs[r][jb + l]` over the
/// chunk's rows ([`Chunk`]), in row order, each product added as it comes
/// (`acc + p`, never fused); then its entries `j ≤ i < cols` added to `packed` ([`flush`]).
/// Every tile shape gives the same bits.
trait GramTile: Copy {
    /// Columns per tile: a multiple of [`TILE_I`].
    const COLS: usize;

    fn add_tile(self, chunk: &Chunk, ib: usize, jb: usize, packed: &mut [f64]);

    /// Hints that `data` will be read soon.
    #[inline(always)]
    fn prefetch(self, _data: &[f64]) {}
}

/// Requests each cache line of `data` (x86-64 has `prefetcht0` in its baseline).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_lines(simd: pulp::x86::V3, data: &[f64]) {
    for at in (0..data.len()).step_by(8) {
        simd.sse
            ._mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(data[at..].as_ptr().cast());
    }
}

/// Plain loops, vectorised as the compiler sees fit.
#[derive(Clone, Copy)]
struct PlainTile;

impl GramTile for PlainTile {
    const COLS: usize = TILE_J;

    #[inline(always)]
    fn add_tile(self, chunk: &Chunk, ib: usize, jb: usize, packed: &mut [f64]) {
        let mut acc = [[0.0f64; TILE_J]; TILE_I];
        for r in 0..chunk.rows {
            let (row, scaled) = chunk.row::<TILE_J>(r, ib, jb);
            for t in 0..TILE_I {
                for l in 0..TILE_J {
                    acc[t][l] += scaled[t] * row[l];
                }
            }
        }
        flush(&acc, ib, jb, chunk.cols, packed);
    }
}

/// Adds the entries `j ≤ i < cols` of the tile `acc` at `(ib, jb)` to `packed`.
#[inline(always)]
fn flush<const J: usize>(acc: &[[f64; J]; TILE_I], ib: usize, jb: usize, cols: usize, packed: &mut [f64]) {
    for (t, a) in acc.iter().enumerate() {
        let i = ib + t;
        if i >= cols {
            break;
        }
        let last = i.min(jb + J - 1);
        if last < jb {
            continue;
        }
        let at = packed_index(i, jb);
        for (p, v) in packed[at..=at + (last - jb)].iter_mut().zip(a) {
            *p += v;
        }
    }
}

/// AVX2 vectors, the accumulators as named variables (kept in registers; an array of them the
/// compiler shuffled through memory): the same multiplications and additions as [`PlainTile`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx2Tile(pulp::x86::V3);

#[cfg(target_arch = "x86_64")]
impl GramTile for Avx2Tile {
    #[inline(always)]
    fn prefetch(self, data: &[f64]) {
        prefetch_lines(self.0, data)
    }

    const COLS: usize = TILE_J;

    #[inline(always)]
    fn add_tile(self, chunk: &Chunk, ib: usize, jb: usize, packed: &mut [f64]) {
        const { assert!(TILE_I == 4 && TILE_J == 8) };
        let simd = self.0;
        let zero = simd.splat_f64x4(0.0);
        let [mut a00, mut a01, mut a10, mut a11, mut a20, mut a21, mut a30, mut a31] = [zero; 8];
        for r in 0..chunk.rows {
            let (row, scaled) = chunk.row::<TILE_J>(r, ib, jb);
            let (lo, hi) = row.split_at(4);
            let v0: pulp::f64x4 = pulp::cast(*lo.first_chunk::<4>().expect("four"));
            let v1: pulp::f64x4 = pulp::cast(*hi.first_chunk::<4>().expect("four"));
            let step = |a0: &mut pulp::f64x4, a1: &mut pulp::f64x4, s: f64| {
                let s = simd.splat_f64x4(s);
                *a0 = simd.add_f64x4(*a0, simd.mul_f64x4(s, v0));
                *a1 = simd.add_f64x4(*a1, simd.mul_f64x4(s, v1));
            };
            step(&mut a00, &mut a01, scaled[0]);
            step(&mut a10, &mut a11, scaled[1]);
            step(&mut a20, &mut a21, scaled[2]);
            step(&mut a30, &mut a31, scaled[3]);
        }
        let row = |a: pulp::f64x4, b: pulp::f64x4| -> [f64; TILE_J] { pulp::cast([a, b]) };
        let acc = [row(a00, a01), row(a10, a11), row(a20, a21), row(a30, a31)];
        flush(&acc, ib, jb, chunk.cols, packed);
    }
}

/// AVX-512: tiles of `TILE_I × 16`, a tile row in two 512-bit vectors (eight accumulators of
/// the 32 registers): per row of the chunk two loads and four broadcasts for 16 products,
/// against 2 and 4 for 8 in [`Avx2Tile`].
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx512Tile(pulp::x86::V4);

#[cfg(target_arch = "x86_64")]
impl GramTile for Avx512Tile {
    #[inline(always)]
    fn prefetch(self, data: &[f64]) {
        prefetch_lines(*self.0, data)
    }

    const COLS: usize = 16;

    #[inline(always)]
    fn add_tile(self, chunk: &Chunk, ib: usize, jb: usize, packed: &mut [f64]) {
        const { assert!(TILE_I == 4) };
        let simd = self.0;
        let f = simd.avx512f;
        let zero = simd.splat_f64x8(0.0);
        let [mut a00, mut a01, mut a10, mut a11, mut a20, mut a21, mut a30, mut a31] = [zero; 8];
        for r in 0..chunk.rows {
            let (row, scaled) = chunk.row::<16>(r, ib, jb);
            let (lo, hi) = row.split_at(8);
            let v0: pulp::f64x8 = pulp::cast(*lo.first_chunk::<8>().expect("eight"));
            let v1: pulp::f64x8 = pulp::cast(*hi.first_chunk::<8>().expect("eight"));
            let step = |a0: &mut pulp::f64x8, a1: &mut pulp::f64x8, s: f64| {
                let s = pulp::cast(simd.splat_f64x8(s));
                *a0 = pulp::cast(f._mm512_add_pd(pulp::cast(*a0), f._mm512_mul_pd(s, pulp::cast(v0))));
                *a1 = pulp::cast(f._mm512_add_pd(pulp::cast(*a1), f._mm512_mul_pd(s, pulp::cast(v1))));
            };
            step(&mut a00, &mut a01, scaled[0]);
            step(&mut a10, &mut a11, scaled[1]);
            step(&mut a20, &mut a21, scaled[2]);
            step(&mut a30, &mut a31, scaled[3]);
        }
        let row = |a: pulp::f64x8, b: pulp::f64x8| -> [f64; 16] { pulp::cast([a, b]) };
        let acc = [row(a00, a01), row(a10, a11), row(a20, a21), row(a30, a31)];
        flush(&acc, ib, jb, chunk.cols, packed);
    }
}

#[inline(always)]
fn gram_chunks<T: GramTile>(tile: T, x: &[f64], cols: usize, w: &[f64], z: &[f64], packed: &mut [f64], az: &mut [f64]) {
    if cols == 0 {
        packed[0] += w.iter().sum::<f64>();
        az[0] += w.iter().zip(z).map(|(w, z)| w * z).sum::<f64>();
        return;
    }
    // Row stride of the padded copies: whole tiles both ways (`T::COLS` is a multiple of
    // `TILE_I`), zeros past `cols`.
    let stride = cols.next_multiple_of(T::COLS);
    let mut xs = vec![0.0; GRAM_CHUNK * stride];
    let mut wxs = vec![0.0; GRAM_CHUNK * stride];
    let mut wz = [0.0; GRAM_CHUNK];
    // The intercept's row of the matrix: `Σ w_r x_r`, then `Σ w_r`.
    let ones = packed_index(cols, 0);
    let chunk = GRAM_CHUNK * cols;
    for (c, ((xc, wc), zc)) in x
        .chunks(chunk)
        .zip(w.chunks(GRAM_CHUNK))
        .zip(z.chunks(GRAM_CHUNK))
        .enumerate()
    {
        let n = wc.len();
        // The next chunk is requested a part per row of tiles, while this one is worked on
        // (its copy would otherwise wait for the memory, row by row).
        let next = &x[((c + 1) * chunk).min(x.len())..((c + 2) * chunk).min(x.len())];
        let mut parts = next.chunks(next.len().div_ceil(cols.div_ceil(TILE_I)).max(1));
        for (r, (xr, &wr)) in xc.chunks_exact(cols).zip(wc).enumerate() {
            xs[r * stride..r * stride + cols].copy_from_slice(xr);
            for (o, &v) in wxs[r * stride..r * stride + cols].iter_mut().zip(xr) {
                *o = wr * v;
            }
        }
        let chunk_rows = Chunk {
            xs: &xs,
            wxs: &wxs,
            stride,
            rows: n,
            cols,
        };
        for ib in (0..cols).step_by(TILE_I) {
            if let Some(part) = parts.next() {
                tile.prefetch(part);
            }
            // Tiles holding at least one entry `j ≤ i` of these rows.
            for jb in (0..=ib + TILE_I - 1).step_by(T::COLS).take_while(|&jb| jb < cols) {
                tile.add_tile(&chunk_rows, ib, jb, packed);
            }
        }
        for (o, (&wr, &zr)) in wz.iter_mut().zip(wc.iter().zip(zc)) {
            *o = wr * zr;
        }
        add_scaled_rows(xc, wc, &mut packed[ones..ones + cols]);
        packed[ones + cols] += wc.iter().sum::<f64>();
        add_scaled_rows(xc, &wz[..n], &mut az[..cols]);
        az[cols] += wz[..n].iter().sum::<f64>();
    }
}

/// The full row-major `n × n` matrix of a packed one.
pub fn unpack(packed: &[f64], n: usize) -> Vec<f64> {
    debug_assert_eq!(packed.len(), packed_len(n));
    let mut full = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v = packed[packed_index(i, j)];
            full[i * n + j] = v;
            full[j * n + i] = v;
        }
    }
    full
}

/// Cholesky factorisation `A = L Lᵀ` of a full symmetric `n × n` matrix, in place: the lower
/// triangle becomes `L` (the upper triangle is left as it was). `Err(k)` when the leading
/// `k+1`-minor is not positive definite (the matrix is singular or indefinite).
pub fn cholesky(a: &mut [f64], n: usize) -> Result<(), usize> {
    debug_assert_eq!(a.len(), n * n);
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        // A pivot that lost (almost) all its value to cancellation means a (numerically)
        // singular matrix: refuse it rather than divide by rounding noise.
        if d.is_nan() || d <= a[j * n + j].abs() * 1e-13 || d <= 0.0 {
            return Err(j);
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    Ok(())
}

/// Solves `L Lᵀ x = b` in place (`b` becomes `x`) with `L` from [`cholesky`].
pub fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    debug_assert_eq!(b.len(), n);
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// The inverse (full, row-major) of a symmetric positive definite matrix given its Cholesky
/// factor `L` from [`cholesky`].
pub fn cholesky_inverse(l: &[f64], n: usize) -> Vec<f64> {
    let mut inv = vec![0.0; n * n];
    let mut e = vec![0.0; n];
    for c in 0..n {
        e.fill(0.0);
        e[c] = 1.0;
        cholesky_solve(l, n, &mut e);
        for r in 0..n {
            inv[r * n + c] = e[r];
        }
    }
    inv
}

/// The inverse of a full symmetric positive definite `n × n` matrix; `None` when it is not
/// (numerically) positive definite.
pub fn spd_inverse(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = a.to_vec();
    cholesky(&mut l, n).ok()?;
    Some(cholesky_inverse(&l, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Vec<f64> {
        // B Bᵀ + n I for a fixed B.
        let b: Vec<f64> = (0..n * n).map(|i| ((i * 7 + 3) as f64 * 0.31).sin()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>();
            }
            a[i * n + i] += n as f64;
        }
        a
    }

    #[test]
    fn gram_matches_naive_sums() {
        // 75 rows: two whole chunks and a partial one; widths below, at and across tiles.
        for cols in [0, 1, 3, 4, 8, 13, 17] {
            let rows = 75;
            let x: Vec<f64> = (0..rows * cols).map(|i| (i as f64 * 0.7).cos() * 3.0).collect();
            // Some zero weights.
            let w: Vec<f64> = (0..rows)
                .map(|i| if i % 7 == 3 { 0.0 } else { 0.5 + i as f64 })
                .collect();
            let z: Vec<f64> = (0..rows).map(|i| i as f64 - 2.0).collect();
            let mut p = vec![0.25; packed_len(cols + 1)];
            let mut az = vec![-1.0; cols + 1];
            gram_accumulate(&x, rows, cols, &w, &z, &mut p, &mut az);
            // Row by row (rank-one updates), from the same starting values.
            let (mut want, mut want_az) = (vec![0.25; packed_len(cols + 1)], vec![-1.0; cols + 1]);
            for r in 0..rows {
                let mut a = x[r * cols..(r + 1) * cols].to_vec();
                a.push(1.0);
                spr_add(w[r], &a, &mut want);
                axpy(w[r] * z[r], &a, &mut want_az);
            }
            for (i, (g, e)) in p.iter().zip(&want).chain(az.iter().zip(&want_az)).enumerate() {
                assert!(
                    (g - e).abs() <= 1e-12 * e.abs().max(1.0),
                    "cols {cols}, entry {i}: {g} {e}"
                );
            }
            // The baseline loops give the bits of the vectorised ones.
            let (mut plain, mut plain_az) = (vec![0.25; packed_len(cols + 1)], vec![-1.0; cols + 1]);
            gram_chunks(PlainTile, &x, cols, &w, &z, &mut plain, &mut plain_az);
            assert_eq!(plain, p, "cols {cols}");
            assert_eq!(plain_az, az, "cols {cols}");
        }
    }

    #[test]
    fn cholesky_solves_and_inverts() {
        let n = 5;
        let a = spd(n);
        let x: Vec<f64> = (0..n).map(|i| i as f64 - 1.5).collect();
        let mut b: Vec<f64> = (0..n).map(|i| (0..n).map(|k| a[i * n + k] * x[k]).sum()).collect();
        let mut l = a.clone();
        cholesky(&mut l, n).unwrap();
        cholesky_solve(&l, n, &mut b);
        for i in 0..n {
            assert!((b[i] - x[i]).abs() < 1e-12);
        }
        let inv = spd_inverse(&a, n).unwrap();
        for i in 0..n {
            for j in 0..n {
                let p: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                assert!((p - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn singular_matrices_are_refused() {
        let a = vec![1.0, 2.0, 2.0, 4.0];
        assert!(spd_inverse(&a, 2).is_none());
        assert!(spd_inverse(&[-1.0], 1).is_none());
    }
}
