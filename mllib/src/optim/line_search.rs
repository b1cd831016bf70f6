//! Line searches along a descent direction: strong Wolfe (for L-BFGS) and projected
//! backtracking (for OWL-QN).
//!
//! Each trial point costs one evaluation of the objective (for an estimator, one job), so the
//! searches keep every evaluated point and hand back the accepted one with its value and
//! gradient: the optimizer never evaluates the same point twice.

use crate::error::Result;

/// One evaluated trial point of a line search.
#[derive(Clone, Debug)]
pub(crate) struct Trial {
    /// Step length.
    pub alpha: f64,
    /// The point.
    pub x: Vec<f64>,
    /// The objective there (smooth part plus any L1 part).
    pub f: f64,
    /// The gradient of the smooth part there.
    pub g: Vec<f64>,
    /// Directional derivative of the objective along the search direction.
    pub dphi: f64,
}

/// Sufficient-decrease constant (Armijo).
const C1: f64 = 1e-4;
/// Curvature constant of the strong Wolfe conditions (the usual choice for quasi-Newton).
const C2: f64 = 0.9;
/// Evaluations allowed in the bracketing phase and in the zoom phase each (as Breeze).
const MAX_BRACKET: usize = 10;
const MAX_ZOOM: usize = 10;

/// A minimiser of `x ↦ cubic` through two points with their derivatives, safeguarded to the
/// middle 80 % of the interval (bisection when the cubic is no help).
fn cubic_step(a: &Trial, b: &Trial) -> f64 {
    let (lo, hi) = if a.alpha < b.alpha { (a, b) } else { (b, a) };
    let width = hi.alpha - lo.alpha;
    let d1 = lo.dphi + hi.dphi - 3.0 * (lo.f - hi.f) / (lo.alpha - hi.alpha);
    let disc = d1 * d1 - lo.dphi * hi.dphi;
    let mid = 0.5 * (lo.alpha + hi.alpha);
    if !(disc.is_finite() && disc >= 0.0) {
        return mid;
    }
    let d2 = disc.sqrt();
    let t = hi.alpha - width * (hi.dphi + d2 - d1) / (hi.dphi - lo.dphi + 2.0 * d2);
    if t.is_finite() && t >= lo.alpha + 0.1 * width && t <= hi.alpha - 0.1 * width {
        t
    } else {
        mid
    }
}

/// Strong Wolfe line search (Nocedal & Wright, algorithms 3.5 and 3.6) from the point `start`
/// (`alpha = 0`) with first trial step `init`. `eval(alpha)` evaluates the objective at
/// `x + alpha·d`. Returns `None` when no step of sufficient decrease was found.
pub(crate) fn strong_wolfe(
    start: &Trial,
    init: f64,
    eval: &mut dyn FnMut(f64) -> Result<Trial>,
) -> Result<Option<Trial>> {
    let (f0, d0) = (start.f, start.dphi);
    let mut prev = start.clone();
    let mut alpha = init;
    for i in 0..MAX_BRACKET {
        let t = eval(alpha)?;
        if !t.f.is_finite() {
            // Overshot into a region the objective cannot evaluate: step back.
            alpha = 0.5 * (prev.alpha + alpha);
            continue;
        }
        if t.f > f0 + C1 * t.alpha * d0 || (i > 0 && t.f >= prev.f) {
            return zoom(start, prev, t, eval);
        }
        if t.dphi.abs() <= -C2 * d0 {
            return Ok(Some(t));
        }
        if t.dphi >= 0.0 {
            return zoom(start, t, prev, eval);
        }
        alpha = t.alpha * 2.0;
        prev = t;
    }
    // Ran out of bracketing steps: the last point still decreases sufficiently.
    Ok((prev.alpha > 0.0).then_some(prev))
}

/// The zoom phase: `lo` satisfies sufficient decrease and has the lowest value seen; the
/// minimiser lies between `lo` and `hi`.
fn zoom(
    start: &Trial,
    mut lo: Trial,
    mut hi: Trial,
    eval: &mut dyn FnMut(f64) -> Result<Trial>,
) -> Result<Option<Trial>> {
    let (f0, d0) = (start.f, start.dphi);
    for _ in 0..MAX_ZOOM {
        let alpha = cubic_step(&lo, &hi);
        let t = eval(alpha)?;
        if !t.f.is_finite() || t.f > f0 + C1 * t.alpha * d0 || t.f >= lo.f {
            hi = t;
        } else {
            if t.dphi.abs() <= -C2 * d0 {
                return Ok(Some(t));
            }
            if t.dphi * (hi.alpha - lo.alpha) >= 0.0 {
                hi = lo;
            }
            lo = t;
        }
        if (hi.alpha - lo.alpha).abs() <= 1e-14 * lo.alpha.abs().max(1e-14) {
            break;
        }
    }
    // Curvature not met within the budget: accept the best point of sufficient decrease.
    Ok((lo.alpha > 0.0).then_some(lo))
}

/// Backtracking along a projected path (OWL-QN): trial steps `init`, `init·shrink`, ...;
/// `eval(alpha)` evaluates the projected point, whose `dphi` must hold the pseudo-gradient's
/// dot product with the actual step `x(alpha) − x`. Accepts the first trial of sufficient
/// decrease.
pub(crate) fn backtracking(
    start: &Trial,
    init: f64,
    shrink: f64,
    eval: &mut dyn FnMut(f64) -> Result<Trial>,
) -> Result<Option<Trial>> {
    let mut alpha = init;
    for _ in 0..40 {
        let t = eval(alpha)?;
        if t.f.is_finite() && t.f <= start.f + C1 * t.dphi {
            return Ok(Some(t));
        }
        alpha *= shrink;
    }
    Ok(None)
}
