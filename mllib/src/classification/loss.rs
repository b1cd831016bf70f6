//! The logistic loss and its gradient over one instance block, fused and numerically stable:
//! `log(1 + e^z)` as `max(z, 0) + log1p(e^{−|z|})`, softmax with the row's maximum margin
//! subtracted. Both losses make one pass over each block, in chunks of rows that stay in L1
//! while their margins, terms and gradient contributions are computed.
//!
//! Parameter layout (`coefs`): `K·d` coefficients, class by class (row-major `K × d`; `K = 1`
//! for the binomial loss), then the `K` intercepts when fitted.

use serde::{Deserialize, Serialize};

use crate::data::InstanceBlock;
use crate::device::Device;
use crate::linalg::elementary::{exp_nonpositive, ln_1p_unit};
use crate::linalg::kernels::{STRETCH as CHUNK, add_scaled_rows};
use crate::linalg::rows::RowDots;

/// Shape of the parameters a block's loss is computed for.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct Shape {
    /// Features.
    pub d: usize,
    /// Coefficient vectors: 1 (binomial) or the number of classes (multinomial).
    pub k: usize,
    /// Whether the intercepts follow the coefficients.
    pub intercept: bool,
    /// Multinomial (softmax) loss rather than binomial.
    pub multinomial: bool,
}

impl Shape {
    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.k * self.d + if self.intercept { self.k } else { 0 }
    }
}

/// Sums over blocks: weighted loss, weight and gradient.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct LossSums {
    pub loss: f64,
    pub weight: f64,
    /// Empty until the first block is added.
    pub grad: Vec<f64>,
    /// Blocks whose sums the GPU computed.
    pub gpu_blocks: u64,
    /// Why a block could not be computed on the requested device (the first such reason):
    /// carried to the driver, which fails the fit with it.
    pub failure: Option<String>,
}

impl LossSums {
    /// Adds two partial sums.
    pub fn merge(mut self, other: LossSums) -> LossSums {
        self.gpu_blocks += other.gpu_blocks;
        if self.failure.is_none() {
            self.failure = other.failure;
        }
        if other.grad.is_empty() {
            return self;
        }
        if self.grad.is_empty() {
            self.loss = other.loss;
            self.weight = other.weight;
            self.grad = other.grad;
            return self;
        }
        self.loss += other.loss;
        self.weight += other.weight;
        for (a, b) in self.grad.iter_mut().zip(&other.grad) {
            *a += b;
        }
        self
    }

    /// Adds `block`'s loss and gradient at `coefs`, computed on `device` as this process
    /// resolves it (see [`crate::device`]); a device failure is recorded in `failure`.
    pub fn add_block_on(self, device: Device, shape: &Shape, coefs: &[f64], block: &InstanceBlock) -> LossSums {
        if self.failure.is_some() {
            return self;
        }
        let failed = |mut acc: LossSums, why: String| {
            acc.failure = Some(why);
            acc
        };
        match device.select(block.rows * block.cols) {
            Ok(engine) if engine.is_gpu() => match engine.logistic(shape, coefs, block) {
                Ok(mut sums) => {
                    sums.gpu_blocks = 1;
                    self.merge(sums)
                }
                Err(why) => failed(self, why),
            },
            Ok(_) => self.add_block(shape, coefs, block),
            Err(why) => failed(self, why),
        }
    }

    /// Adds `block`'s loss and gradient at `coefs` (on the CPU).
    pub fn add_block(mut self, shape: &Shape, coefs: &[f64], block: &InstanceBlock) -> LossSums {
        if self.grad.is_empty() {
            self.grad = vec![0.0; shape.len()];
        }
        if shape.multinomial {
            self.add_multinomial(shape, coefs, block);
        } else {
            self.add_binomial(shape, coefs, block);
        }
        self
    }

    /// One pass over the rows, [`CHUNK`] at a time while they are in L1: their margins, then
    /// loss and gradient weights for the whole chunk in one vectorisable loop (`exp` and `ln`
    /// as straight-line arithmetic), then their gradient contributions; the whole loop runs on
    /// the CPU's widest vector unit ([`RowDots::run`]).
    fn add_binomial(&mut self, shape: &Shape, coefs: &[f64], block: &InstanceBlock) {
        let d = shape.d;
        let b = if shape.intercept { coefs[d] } else { 0.0 };
        let beta = &coefs[..d];
        let grad = &mut self.grad[..d];
        let (x, labels, weights) = (&block.features[..], &block.labels[..], &block.weights[..]);
        let (loss, weight, intercept_grad) = RowDots::detect().run(
            #[inline(always)]
            |k| {
                let (mut loss, mut weight, mut intercept_grad) = (0.0, 0.0, 0.0);
                let chunk_rows = |start: usize| &x[start * d..(start + CHUNK.min(block.rows - start)) * d];
                let mut z = [0.0; CHUNK];
                if block.rows > 0 {
                    margins(k, chunk_rows(0), beta, b, &mut z[..CHUNK.min(block.rows)]);
                }
                for start in (0..block.rows).step_by(CHUNK) {
                    let n = CHUNK.min(block.rows - start);
                    let rows = chunk_rows(start);
                    // The rows two chunks past the next (whose margins come first) are requested
                    // from memory now: they arrive while this chunk and the next two are
                    // computed. One chunk nearer, the requests came too late on this VM (one
                    // core, 1M x 50 from memory: 54-64 against 29-33 ms).
                    let ahead = start + 3 * CHUNK;
                    if ahead < block.rows {
                        k.prefetch(chunk_rows(ahead));
                    }
                    // The next chunk's margins first: its rows stream in from memory while this
                    // chunk's terms and gradient, on rows already in L1, keep the core busy.
                    let mut z_next = [0.0; CHUNK];
                    let next = start + CHUNK;
                    if next < block.rows {
                        margins(
                            k,
                            chunk_rows(next),
                            beta,
                            b,
                            &mut z_next[..CHUNK.min(block.rows - next)],
                        );
                    }
                    // Rows past `n` keep weight 0: they add nothing.
                    let (mut w, mut y) = ([0.0; CHUNK], [0.0; CHUNK]);
                    w[..n].copy_from_slice(&weights[start..start + n]);
                    y[..n].copy_from_slice(&labels[start..start + n]);
                    let (l, g) = binomial_terms(&z, &w, &y);
                    loss += l;
                    for i in 0..n {
                        weight += w[i];
                        intercept_grad += g[i];
                    }
                    add_scaled_rows(rows, &g[..n], grad);
                    z = z_next;
                }
                (loss, weight, intercept_grad)
            },
        );
        self.loss += loss;
        self.weight += weight;
        if shape.intercept {
            self.grad[d] += intercept_grad;
        }
    }

    /// One pass over the rows, [`CHUNK`] at a time while they are in L1, as the binomial loss:
    /// the chunk's margins for every class, the softmax terms with the row's largest margin
    /// subtracted (`e^{z − max}` as straight-line arithmetic, across the chunk's rows in
    /// vector lanes), then each class's gradient contributions.
    fn add_multinomial(&mut self, shape: &Shape, coefs: &[f64], block: &InstanceBlock) {
        let (rows, d, k) = (block.rows, shape.d, shape.k);
        let (x, labels, weights) = (&block.features[..], &block.labels[..], &block.weights[..]);
        let intercept = |c: usize| if shape.intercept { coefs[k * d + c] } else { 0.0 };
        let (grad, intercept_grad) = self.grad.split_at_mut(k * d);
        // Per class `c`, its margins of the chunk's rows, then their exponentials, then their
        // gradient weights, at `terms[c·CHUNK..][..CHUNK]`.
        let mut terms = vec![0.0; k * CHUNK];
        let mut class_sums = vec![0.0; k];
        let (loss, weight) = RowDots::detect().run(
            #[inline(always)]
            |kern| {
                let (mut loss, mut weight) = (0.0, 0.0);
                for start in (0..rows).step_by(CHUNK) {
                    let n = CHUNK.min(rows - start);
                    let chunk = &x[start * d..(start + n) * d];
                    // Requested three chunks ahead, as the binomial pass does.
                    let ahead = start + 3 * CHUNK;
                    if ahead < rows {
                        kern.prefetch(&x[ahead * d..(ahead + CHUNK).min(rows) * d]);
                    }
                    let mut max = [f64::NEG_INFINITY; CHUNK];
                    for (c, z) in terms.chunks_exact_mut(CHUNK).enumerate() {
                        margins(kern, chunk, &coefs[c * d..(c + 1) * d], intercept(c), &mut z[..n]);
                        for (m, &zi) in max.iter_mut().zip(&z[..n]) {
                            *m = if zi > *m { zi } else { *m };
                        }
                    }
                    // Rows past `n` keep weight 0: they add nothing.
                    let (mut w, mut y, mut label_margin) = ([0.0; CHUNK], [0; CHUNK], [0.0; CHUNK]);
                    w[..n].copy_from_slice(&weights[start..start + n]);
                    for i in 0..n {
                        y[i] = labels[start + i] as usize;
                        label_margin[i] = terms[y[i] * CHUNK + i];
                    }
                    let mut sum = [0.0; CHUNK];
                    for z in terms.chunks_exact_mut(CHUNK) {
                        for i in 0..CHUNK {
                            // Past `n`, `max` is −∞ and the argument +∞: taken as 0 (e⁰ = 1).
                            z[i] = exp_nonpositive(z[i] - max[i]);
                            sum[i] += z[i];
                        }
                    }
                    for i in 0..n {
                        // log Σ e^{z_c} − z_y = log(sum) + max − z_y.
                        loss += w[i] * (sum[i].ln() + max[i] - label_margin[i]);
                        weight += w[i];
                    }
                    for (c, (z, class_sum)) in terms.chunks_exact_mut(CHUNK).zip(&mut class_sums).enumerate() {
                        for i in 0..CHUNK {
                            z[i] = w[i] * (z[i] / sum[i]);
                        }
                        let mut chunk_sum = 0.0;
                        for i in 0..n {
                            if y[i] == c {
                                z[i] -= w[i];
                            }
                            chunk_sum += z[i];
                        }
                        *class_sum += chunk_sum;
                        add_scaled_rows(chunk, &z[..n], &mut grad[c * d..(c + 1) * d]);
                    }
                }
                (loss, weight)
            },
        );
        self.loss += loss;
        self.weight += weight;
        if shape.intercept {
            intercept_grad.iter_mut().zip(&class_sums).for_each(|(g, s)| *g += s);
        }
    }
}

/// `z[i] = x_i · beta + b` for the `z.len()` rows of `rows` (row-major, `beta.len()` columns),
/// each dot product summed as [`dot`] sums it ([`RowDots::dots`]).
#[inline(always)]
fn margins(k: RowDots, rows: &[f64], beta: &[f64], b: f64, z: &mut [f64]) {
    k.dots(rows, beta, z);
    z.iter_mut().for_each(|zi| *zi += b);
}

/// Per row of a chunk: the weighted loss `w·(log(1 + e^z) − y·z)`, summed, and the gradient
/// weight `w·(σ(z) − y)`. Stable for any margin: `log(1 + e^z) = max(z, 0) + log(1 + e^{−|z|})`,
/// and `e^{−|z|}` serves the probability as well. `ln(1 + e)` rather than `ln_1p(e)`: with
/// 0 < e ≤ 1 its error is an absolute ulp of the row's loss either way (what the mean needs).
#[inline(always)]
fn binomial_terms(z: &[f64; CHUNK], w: &[f64; CHUNK], y: &[f64; CHUNK]) -> (f64, [f64; CHUNK]) {
    let mut loss = [0.0; CHUNK];
    let mut g = [0.0; CHUNK];
    for i in 0..CHUNK {
        let e = exp_nonpositive(-z[i].abs());
        loss[i] = w[i] * (z[i].max(0.0) + ln_1p_unit(e) - y[i] * z[i]);
        let p = if z[i] >= 0.0 { 1.0 } else { e } / (1.0 + e);
        g[i] = w[i] * (p - y[i]);
    }
    (loss.iter().sum(), g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::LabeledPoint;
    use crate::linalg::kernels::{axpy, dot};

    fn block() -> InstanceBlock {
        let pts = vec![
            LabeledPoint::new(0.0, vec![1.0, -2.0]),
            LabeledPoint::new(1.0, vec![0.5, 3.0]).with_weight(2.0),
            LabeledPoint::new(2.0, vec![-1.5, 0.25]),
        ];
        InstanceBlock::from_points(&pts, 2)
    }

    fn check_gradient(shape: Shape, coefs: &[f64], block: &InstanceBlock) {
        let at = |c: &[f64]| LossSums::default().add_block(&shape, c, block);
        let base = at(coefs);
        for i in 0..coefs.len() {
            let h = 1e-6;
            let mut plus = coefs.to_vec();
            plus[i] += h;
            let mut minus = coefs.to_vec();
            minus[i] -= h;
            let numeric = (at(&plus).loss - at(&minus).loss) / (2.0 * h);
            assert!(
                (numeric - base.grad[i]).abs() < 1e-6,
                "coordinate {i}: {numeric} vs {}",
                base.grad[i]
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut b = block();
        b.labels = std::sync::Arc::new(vec![0.0, 1.0, 1.0]);
        let binom = Shape {
            d: 2,
            k: 1,
            intercept: true,
            multinomial: false,
        };
        check_gradient(binom, &[0.3, -0.7, 0.2], &b);
        let multi = Shape {
            d: 2,
            k: 3,
            intercept: true,
            multinomial: true,
        };
        check_gradient(multi, &[0.3, -0.7, 0.2, 0.1, -0.4, 0.9, 0.0, 0.5, -0.5], &block());
    }

    #[test]
    fn huge_margins_stay_finite() {
        let b = block();
        let binom = Shape {
            d: 2,
            k: 1,
            intercept: false,
            multinomial: false,
        };
        let s = LossSums::default().add_block(&binom, &[800.0, -900.0], &b);
        assert!(s.loss.is_finite() && s.grad.iter().all(|g| g.is_finite()), "{s:?}");
        let multi = Shape {
            d: 2,
            k: 3,
            intercept: false,
            multinomial: true,
        };
        let s = LossSums::default().add_block(&multi, &[800.0, -900.0, 0.0, 0.0, -700.0, 1000.0], &b);
        assert!(s.loss.is_finite() && s.grad.iter().all(|g| g.is_finite()), "{s:?}");
    }

    #[test]
    fn chunked_multinomial_pass_equals_the_row_by_row_formula() {
        // 37 rows: two whole chunks and a partial one; 3 classes; 7 features.
        let (rows, d, k) = (37, 7, 3);
        let pts: Vec<LabeledPoint> = (0..rows)
            .map(|r| {
                let x: Vec<f64> = (0..d).map(|j| ((r * d + j) as f64 * 0.517).cos() * 2.0).collect();
                LabeledPoint::new((r * 7 % k) as f64, x).with_weight(0.25 + (r % 5) as f64)
            })
            .collect();
        let b = InstanceBlock::from_points(&pts, d);
        let coefs: Vec<f64> = (0..k * d + k).map(|j| (j as f64 * 0.9).sin()).collect();
        let shape = Shape {
            d,
            k,
            intercept: true,
            multinomial: true,
        };
        let got = LossSums::default().add_block(&shape, &coefs, &b);
        let (mut loss, mut weight, mut grad) = (0.0, 0.0, vec![0.0; k * d + k]);
        for p in &pts {
            let x = p.features.to_dense();
            let z: Vec<f64> = (0..k)
                .map(|c| dot(&x, &coefs[c * d..(c + 1) * d]) + coefs[k * d + c])
                .collect();
            let norm: f64 = z.iter().map(|v| v.exp()).sum();
            let (w, y) = (p.weight, p.label as usize);
            loss += w * (norm.ln() - z[y]);
            weight += w;
            for c in 0..k {
                let g = w * (z[c].exp() / norm - if c == y { 1.0 } else { 0.0 });
                axpy(g, &x, &mut grad[c * d..(c + 1) * d]);
                grad[k * d + c] += g;
            }
        }
        assert_eq!(got.weight, weight);
        assert!((got.loss - loss).abs() <= 1e-13 * loss.abs(), "{} vs {loss}", got.loss);
        for (j, (a, e)) in got.grad.iter().zip(&grad).enumerate() {
            assert!((a - e).abs() <= 1e-12 * e.abs().max(1.0), "coordinate {j}: {a} vs {e}");
        }
    }

    #[test]
    fn chunked_binomial_pass_equals_the_row_by_row_formula() {
        // 37 rows: two whole chunks, a partial one, rows in quads and a remainder; 7 features:
        // dot products with a tail.
        let (rows, d) = (37, 7);
        let pts: Vec<LabeledPoint> = (0..rows)
            .map(|r| {
                let x: Vec<f64> = (0..d).map(|j| ((r * d + j) as f64 * 0.731).sin() * 3.0).collect();
                LabeledPoint::new((r % 3 == 0) as u8 as f64, x).with_weight(0.5 + (r % 4) as f64)
            })
            .collect();
        let b = InstanceBlock::from_points(&pts, d);
        let coefs: Vec<f64> = (0..=d).map(|j| (j as f64 * 1.3).cos() * 2.0).collect();
        let shape = Shape {
            d,
            k: 1,
            intercept: true,
            multinomial: false,
        };
        let got = LossSums::default().add_block(&shape, &coefs, &b);
        let (mut loss, mut grad) = (0.0, vec![0.0; d + 1]);
        for p in &pts {
            let x = p.features.to_dense();
            let z = dot(&x, &coefs[..d]) + coefs[d];
            let (w, y) = (p.weight, p.label);
            loss += w * (z.max(0.0) + (-z.abs()).exp().ln_1p() - y * z);
            let g = w * (1.0 / (1.0 + (-z).exp()) - y);
            axpy(g, &x, &mut grad[..d]);
            grad[d] += g;
        }
        assert!((got.loss - loss).abs() <= 1e-13 * loss.abs(), "{} vs {loss}", got.loss);
        for (j, (a, e)) in got.grad.iter().zip(&grad).enumerate() {
            assert!((a - e).abs() <= 1e-12 * e.abs().max(1.0), "coordinate {j}: {a} vs {e}");
        }
    }
}
