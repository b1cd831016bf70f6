//! L-BFGS and OWL-QN (L-BFGS for objectives with an L1 term), as Breeze's, which Spark ML uses.
//!
//! Both keep the last `memory` pairs `(s, y)` of steps and gradient changes and apply the
//! inverse-Hessian approximation with the two-loop recursion. L-BFGS searches along the
//! direction with a strong Wolfe line search. OWL-QN (Andrew & Gao, 2007) minimises
//! `f(x) + Σ l1_i |x_i|`: it works with the *pseudo-gradient* (the steepest-descent direction
//! of the non-smooth objective), keeps each step inside the orthant chosen at the start of the
//! iteration (coordinates that would cross zero are set to zero) and backtracks along that
//! projected path. Coordinates with L1 weight 0 (intercepts) are treated as smooth: neither
//! their direction nor their step is constrained to an orthant.
//!
//! Convergence, as Breeze's default check: the objective improved by less than `tol` relative
//! to its value (`|f_prev − f| ≤ tol · max(|f|, 1e-8)`), or the (pseudo-)gradient norm is below
//! `max(tol · |f|, 1e-8)`; it also stops when the line search finds no decrease along a
//! descent direction (the optimum up to rounding).

use tracing::debug;

use super::line_search::{Trial, backtracking, strong_wolfe};
use super::{DiffFunction, Minimum};
use crate::error::{MlError, Result};
use crate::linalg::kernels::{axpy, dot};

/// Limited-memory BFGS.
///
/// ```
/// use flint_mllib::optim::Lbfgs;
/// // (x - 3)² + 10 (y + 1)²
/// let mut f = |x: &[f64]| Ok(((x[0] - 3.0).powi(2) + 10.0 * (x[1] + 1.0).powi(2),
///                              vec![2.0 * (x[0] - 3.0), 20.0 * (x[1] + 1.0)]));
/// let min = Lbfgs::new().minimize(&mut f, vec![0.0, 0.0]).unwrap();
/// assert!((min.x[0] - 3.0).abs() < 1e-6 && (min.x[1] + 1.0).abs() < 1e-6);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Lbfgs {
    /// Correction pairs kept (default 10).
    pub memory: usize,
    /// Iteration limit (default 100).
    pub max_iter: usize,
    /// Convergence tolerance (default 1e-6), see the module docs.
    pub tol: f64,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Lbfgs {
            memory: 10,
            max_iter: 100,
            tol: 1e-6,
        }
    }
}

impl Lbfgs {
    /// The defaults: memory 10, 100 iterations, tolerance 1e-6.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the number of correction pairs kept.
    pub fn memory(mut self, m: usize) -> Self {
        self.memory = m;
        self
    }

    /// Sets the iteration limit.
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }

    /// Sets the convergence tolerance.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Minimises `f` from `x0`.
    pub fn minimize(&self, f: &mut dyn DiffFunction, x0: Vec<f64>) -> Result<Minimum> {
        check_settings(self.memory, self.max_iter, self.tol)?;
        run(f, x0, self.memory, self.max_iter, self.tol, None)
    }
}

/// Orthant-wise limited-memory quasi-Newton: minimises `f(x) + Σ l1_i |x_i|` for a smooth `f`
/// (the L1 weights are per coordinate: 0 for an intercept, `regParam·α` for a coefficient).
///
/// ```
/// use flint_mllib::optim::OwlQn;
/// // ½ (x - 3)² + |x|: minimum at x = 2.
/// let mut f = |x: &[f64]| Ok((0.5 * (x[0] - 3.0).powi(2), vec![x[0] - 3.0]));
/// let min = OwlQn::new(vec![1.0]).minimize(&mut f, vec![0.0]).unwrap();
/// assert!((min.x[0] - 2.0).abs() < 1e-6);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct OwlQn {
    /// Correction pairs kept (default 10).
    pub memory: usize,
    /// Iteration limit (default 100).
    pub max_iter: usize,
    /// Convergence tolerance (default 1e-6), see the module docs.
    pub tol: f64,
    /// L1 weight of each coordinate (non-negative).
    pub l1: Vec<f64>,
}

impl OwlQn {
    /// OWL-QN with per-coordinate L1 weights `l1` and the defaults: memory 10, 100 iterations,
    /// tolerance 1e-6.
    pub fn new(l1: Vec<f64>) -> Self {
        OwlQn {
            memory: 10,
            max_iter: 100,
            tol: 1e-6,
            l1,
        }
    }

    /// Sets the number of correction pairs kept.
    pub fn memory(mut self, m: usize) -> Self {
        self.memory = m;
        self
    }

    /// Sets the iteration limit.
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }

    /// Sets the convergence tolerance.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Minimises `f(x) + Σ l1_i |x_i|` from `x0`. The loss history holds the whole objective.
    pub fn minimize(&self, f: &mut dyn DiffFunction, x0: Vec<f64>) -> Result<Minimum> {
        check_settings(self.memory, self.max_iter, self.tol)?;
        if self.l1.len() != x0.len() {
            return Err(MlError::param(
                "l1",
                format!("{} weights", self.l1.len()),
                format!("one weight per coordinate ({})", x0.len()),
            ));
        }
        if let Some(w) = self.l1.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
            return Err(MlError::param("l1", w, "finite and >= 0"));
        }
        run(f, x0, self.memory, self.max_iter, self.tol, Some(&self.l1))
    }
}

fn check_settings(memory: usize, _max_iter: usize, tol: f64) -> Result<()> {
    if memory == 0 {
        return Err(MlError::param("memory", memory, ">= 1"));
    }
    if !(tol.is_finite() && tol >= 0.0) {
        return Err(MlError::param("tol", tol, "finite and >= 0"));
    }
    Ok(())
}

fn norm(v: &[f64]) -> f64 {
    dot(v, v).sqrt()
}

/// `Σ l1_i |x_i|`.
fn l1_value(l1: &[f64], x: &[f64]) -> f64 {
    l1.iter().zip(x).map(|(w, xi)| w * xi.abs()).sum()
}

/// The pseudo-gradient of `f + Σ l1_i |x_i|`: the gradient where `x_i ≠ 0`; at `x_i = 0` the
/// one-sided derivative that points downhill, or 0 when neither does.
fn pseudo_gradient(l1: &[f64], x: &[f64], g: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(g)
        .zip(l1)
        .map(|((&xi, &gi), &w)| {
            if w == 0.0 {
                gi
            } else if xi > 0.0 {
                gi + w
            } else if xi < 0.0 {
                gi - w
            } else if gi + w < 0.0 {
                gi + w
            } else if gi - w > 0.0 {
                gi - w
            } else {
                0.0
            }
        })
        .collect()
}

/// The limited-memory inverse Hessian: the last `memory` pairs.
struct History {
    memory: usize,
    s: Vec<Vec<f64>>,
    y: Vec<Vec<f64>>,
    rho: Vec<f64>,
}

impl History {
    fn push(&mut self, s: Vec<f64>, y: Vec<f64>) {
        let sy = dot(&s, &y);
        // Keep the approximation positive definite: skip pairs without positive curvature.
        if sy.is_nan() || sy <= 1e-10 * norm(&s) * norm(&y) {
            return;
        }
        if self.s.len() == self.memory {
            self.s.remove(0);
            self.y.remove(0);
            self.rho.remove(0);
        }
        self.s.push(s);
        self.y.push(y);
        self.rho.push(1.0 / sy);
    }

    fn clear(&mut self) {
        self.s.clear();
        self.y.clear();
        self.rho.clear();
    }

    /// `−H·g` by the two-loop recursion.
    fn direction(&self, g: &[f64]) -> Vec<f64> {
        let mut q = g.to_vec();
        let k = self.s.len();
        let mut a = vec![0.0; k];
        for i in (0..k).rev() {
            a[i] = self.rho[i] * dot(&self.s[i], &q);
            axpy(-a[i], &self.y[i], &mut q);
        }
        if k > 0 {
            let gamma = dot(&self.s[k - 1], &self.y[k - 1]) / dot(&self.y[k - 1], &self.y[k - 1]);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for (((ai, rho), s), y) in a.iter().zip(&self.rho).zip(&self.s).zip(&self.y) {
            let b = rho * dot(y, &q);
            axpy(ai - b, s, &mut q);
        }
        q.iter_mut().for_each(|v| *v = -*v);
        q
    }
}

/// The objective, each evaluation timed.
struct Timed<'a> {
    f: &'a mut dyn DiffFunction,
    seconds: Vec<f64>,
}

fn evaluate(f: &mut Timed, x: &[f64]) -> Result<(f64, Vec<f64>)> {
    let start = std::time::Instant::now();
    let (v, g) = f.f.evaluate(x)?;
    f.seconds.push(start.elapsed().as_secs_f64());
    if g.len() != x.len() {
        return Err(MlError::Data(format!(
            "the objective returned a gradient of {} entries for a point of {}",
            g.len(),
            x.len()
        )));
    }
    Ok((v, g))
}

/// The shared loop of L-BFGS (`l1 = None`) and OWL-QN.
fn run(
    f: &mut dyn DiffFunction,
    x0: Vec<f64>,
    memory: usize,
    max_iter: usize,
    tol: f64,
    l1: Option<&[f64]>,
) -> Result<Minimum> {
    let f = &mut Timed { f, seconds: Vec::new() };
    let (f0, g0) = evaluate(f, &x0)?;
    let mut value = f0 + l1.map_or(0.0, |w| l1_value(w, &x0));
    if !value.is_finite() {
        return Err(MlError::Data(format!("the objective is {value} at the starting point")));
    }
    let mut x = x0;
    let mut g = g0;
    let mut history = History {
        memory,
        s: Vec::new(),
        y: Vec::new(),
        rho: Vec::new(),
    };
    let mut loss_history = vec![value];
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iter {
        let pg = match l1 {
            Some(w) => pseudo_gradient(w, &x, &g),
            None => g.clone(),
        };
        if norm(&pg) <= (tol * value.abs()).max(1e-8) {
            converged = true;
            break;
        }
        let mut dir = history.direction(&pg);
        if let Some(w) = l1 {
            // Keep only the components that descend along the pseudo-gradient (coordinates
            // without an L1 term are smooth and keep the quasi-Newton direction).
            for ((d, p), w) in dir.iter_mut().zip(&pg).zip(w) {
                if *w > 0.0 && *d * *p >= 0.0 {
                    *d = 0.0;
                }
            }
        }
        if dot(&dir, &pg) >= 0.0 {
            // Not a descent direction (a stale approximation): restart from steepest descent.
            history.clear();
            dir = pg.iter().map(|v| -v).collect();
        }
        let init = if iterations == 0 {
            (1.0 / norm(&dir)).min(1.0)
        } else {
            1.0
        };
        let trial = match l1 {
            None => {
                let start = Trial {
                    alpha: 0.0,
                    x: x.clone(),
                    f: value,
                    g: g.clone(),
                    dphi: dot(&g, &dir),
                };
                let mut eval = |alpha: f64| -> Result<Trial> {
                    let mut xn = x.clone();
                    axpy(alpha, &dir, &mut xn);
                    let (fv, gv) = evaluate(f, &xn)?;
                    let dphi = dot(&gv, &dir);
                    Ok(Trial {
                        alpha,
                        x: xn,
                        f: fv,
                        g: gv,
                        dphi,
                    })
                };
                strong_wolfe(&start, init, &mut eval)?
            }
            Some(w) => {
                // The orthant of this iteration: the sign of x, or of the descent for x = 0.
                let orthant: Vec<f64> = x
                    .iter()
                    .zip(&pg)
                    .map(|(&xi, &p)| if xi != 0.0 { xi.signum() } else { -p.signum() })
                    .collect();
                let start = Trial {
                    alpha: 0.0,
                    x: x.clone(),
                    f: value,
                    g: g.clone(),
                    dphi: 0.0,
                };
                let mut eval = |alpha: f64| -> Result<Trial> {
                    let mut xn = x.clone();
                    axpy(alpha, &dir, &mut xn);
                    for ((v, o), l) in xn.iter_mut().zip(&orthant).zip(w) {
                        if *l > 0.0 && *v * *o <= 0.0 {
                            *v = 0.0;
                        }
                    }
                    let (fv, gv) = evaluate(f, &xn)?;
                    let step: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
                    let dphi = dot(&pg, &step);
                    Ok(Trial {
                        alpha,
                        f: fv + l1_value(w, &xn),
                        x: xn,
                        g: gv,
                        dphi,
                    })
                };
                let shrink = if iterations == 0 { 0.1 } else { 0.5 };
                backtracking(&start, init, shrink, &mut eval)?
            }
        };
        let Some(t) = trial else {
            debug!(iteration = iterations, value, "line search found no decrease; stopping");
            // No decrease along a descent direction: at the optimum up to rounding.
            converged = history.s.is_empty() || norm(&pg) <= 1e-6 * value.abs().max(1.0);
            break;
        };
        iterations += 1;
        let s: Vec<f64> = t.x.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = t.g.iter().zip(&g).map(|(a, b)| a - b).collect();
        history.push(s, y);
        let previous = value;
        x = t.x;
        g = t.g;
        value = t.f;
        loss_history.push(value);
        debug!(iteration = iterations, value, "quasi-Newton step");
        if (previous - value).abs() <= tol * value.abs().max(1e-8) {
            converged = true;
            break;
        }
    }
    Ok(Minimum {
        x,
        loss_history,
        iterations,
        converged,
        evaluation_seconds: std::mem::take(&mut f.seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_gradient_picks_the_downhill_side_at_zero() {
        let l1 = [1.0, 1.0, 1.0, 0.0];
        let pg = pseudo_gradient(&l1, &[0.0, 0.0, 2.0, 0.0], &[-3.0, 0.5, 0.5, 0.5]);
        assert_eq!(pg, vec![-2.0, 0.0, 1.5, 0.5]);
    }

    #[test]
    fn bad_settings_are_named() {
        let mut f = |x: &[f64]| Ok((x[0] * x[0], vec![2.0 * x[0]]));
        let e = Lbfgs::new().memory(0).minimize(&mut f, vec![1.0]).unwrap_err();
        assert!(e.to_string().contains("memory"), "{e}");
        let e = OwlQn::new(vec![1.0, 2.0]).minimize(&mut f, vec![1.0]).unwrap_err();
        assert!(e.to_string().contains("l1"), "{e}");
    }
}
