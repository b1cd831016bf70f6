//! Exponential families and link functions of generalized linear models, as Spark ML's
//! `GeneralizedLinearRegression` defines them (variance, deviance, AIC, the projection of the
//! mean into the family's range, the IRLS starting mean).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::dist::{ln_gamma, normal_cdf, normal_pdf, normal_quantile};
use crate::error::{MlError, Result};

/// Smallest mean a binomial, Poisson or gamma model may predict (Spark's `epsilon`).
const EPSILON: f64 = 1e-16;

/// The error distribution of a generalized linear model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Family {
    /// Normal errors, variance 1; canonical link identity.
    Gaussian,
    /// Bernoulli (labels in `[0, 1]`), variance `μ(1−μ)`; canonical link logit.
    Binomial,
    /// Counts (labels ≥ 0), variance `μ`; canonical link log.
    Poisson,
    /// Positive labels, variance `μ²`; canonical link inverse.
    Gamma,
    /// Tweedie: variance `μ^p` for a variance power `p` of 0 or at least 1 (labels ≥ 0 for
    /// `1 ≤ p < 2`, > 0 for `p ≥ 2`); default link the power link `η = μ^(1−p)`. Spark
    /// treats it apart from the named families: its dispersion is always estimated and it
    /// has no AIC (NaN here).
    Tweedie {
        /// `p`.
        variance_power: f64,
    },
}

/// The link `η = g(μ)` between the linear predictor and the mean.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Link {
    /// `η = μ`.
    Identity,
    /// `η = ln μ`.
    Log,
    /// `η = ln(μ / (1−μ))`.
    Logit,
    /// `η = Φ⁻¹(μ)`.
    Probit,
    /// `η = ln(−ln(1−μ))`.
    CLogLog,
    /// `η = 1/μ`.
    Inverse,
    /// `η = √μ`.
    Sqrt,
    /// `η = μ^λ` (`ln μ` for `λ = 0`): the links of the Tweedie family.
    Power(f64),
}

impl Family {
    /// Parses Spark's family names (`gaussian`, `binomial`, `poisson`, `gamma`, and
    /// `tweedie` with Spark's default variance power 0).
    pub fn parse(name: &str) -> Result<Family> {
        match name.to_ascii_lowercase().as_str() {
            "gaussian" => Ok(Family::Gaussian),
            "binomial" => Ok(Family::Binomial),
            "poisson" => Ok(Family::Poisson),
            "gamma" => Ok(Family::Gamma),
            "tweedie" => Ok(Family::Tweedie { variance_power: 0.0 }),
            _ => Err(MlError::param(
                "family",
                name,
                "one of gaussian, binomial, poisson, gamma, tweedie",
            )),
        }
    }

    /// The canonical link (the default when none is given).
    pub fn canonical_link(self) -> Link {
        match self {
            Family::Gaussian => Link::Identity,
            Family::Binomial => Link::Logit,
            Family::Poisson => Link::Log,
            Family::Gamma => Link::Inverse,
            Family::Tweedie { variance_power } => Link::Power(1.0 - variance_power),
        }
    }

    /// Whether Spark accepts `link` with this family.
    pub fn supports(self, link: Link) -> bool {
        match self {
            Family::Tweedie { .. } => matches!(link, Link::Power(_) | Link::Log | Link::Identity),
            _ => self.supported_links().contains(&link),
        }
    }

    /// The links Spark accepts with this family (the Tweedie family takes any power link).
    pub fn supported_links(self) -> &'static [Link] {
        match self {
            Family::Gaussian => &[Link::Identity, Link::Log, Link::Inverse],
            Family::Binomial => &[Link::Logit, Link::Probit, Link::CLogLog],
            Family::Poisson => &[Link::Log, Link::Identity, Link::Sqrt],
            Family::Gamma => &[Link::Inverse, Link::Identity, Link::Log],
            Family::Tweedie { .. } => &[Link::Log, Link::Identity],
        }
    }

    /// Whether the dispersion is fixed at 1 (binomial, Poisson): z statistics and normal
    /// p-values; otherwise it is estimated and the statistics are Student t.
    pub fn fixed_dispersion(self) -> bool {
        matches!(self, Family::Binomial | Family::Poisson)
    }

    /// Checks one label (and its weight) against the family's range.
    pub fn check_label(self, y: f64) -> std::result::Result<(), &'static str> {
        match self {
            Family::Gaussian => Ok(()),
            Family::Binomial if (0.0..=1.0).contains(&y) => Ok(()),
            Family::Binomial => Err("the binomial family needs labels in [0, 1]"),
            Family::Poisson if y >= 0.0 => Ok(()),
            Family::Poisson => Err("the poisson family needs labels >= 0"),
            Family::Gamma if y > 0.0 => Ok(()),
            Family::Gamma => Err("the gamma family needs labels > 0"),
            Family::Tweedie { variance_power: p } if p >= 2.0 && y <= 0.0 => {
                Err("the tweedie family with variance power >= 2 needs labels > 0")
            }
            Family::Tweedie { variance_power: p } if p >= 1.0 && y < 0.0 => {
                Err("the tweedie family with variance power >= 1 needs labels >= 0")
            }
            Family::Tweedie { .. } => Ok(()),
        }
    }

    /// The starting mean of IRLS for a label (Spark's `initialize`).
    pub fn initial_mean(self, y: f64, weight: f64) -> f64 {
        match self {
            Family::Gaussian | Family::Gamma => y,
            Family::Binomial => (weight * y + 0.5) / (weight + 1.0),
            Family::Poisson | Family::Tweedie { .. } => {
                if y == 0.0 {
                    0.1
                } else {
                    y
                }
            }
        }
    }

    /// The variance function `V(μ)`.
    pub fn variance(self, mu: f64) -> f64 {
        match self {
            Family::Gaussian => 1.0,
            Family::Binomial => mu * (1.0 - mu),
            Family::Poisson => mu,
            Family::Gamma => mu * mu,
            Family::Tweedie { variance_power } => mu.powf(variance_power),
        }
    }

    /// Keeps a mean inside the family's range (Spark's `project`).
    pub fn project(self, mu: f64) -> f64 {
        match self {
            Family::Gaussian => {
                if mu.is_infinite() {
                    mu.signum() * f64::MAX
                } else {
                    mu
                }
            }
            Family::Binomial => mu.clamp(EPSILON, 1.0 - EPSILON),
            Family::Poisson | Family::Gamma | Family::Tweedie { .. } => {
                if mu < EPSILON {
                    EPSILON
                } else if mu.is_infinite() {
                    f64::MAX
                } else {
                    mu
                }
            }
        }
    }

    /// The weighted unit deviance `w · d(y, μ)`.
    pub fn deviance(self, y: f64, mu: f64, weight: f64) -> f64 {
        let ylogy = |y: f64, mu: f64| if y == 0.0 { 0.0 } else { y * (y / mu).ln() };
        match self {
            Family::Gaussian => weight * (y - mu) * (y - mu),
            Family::Binomial => 2.0 * weight * (ylogy(y, mu) + ylogy(1.0 - y, 1.0 - mu)),
            Family::Poisson => 2.0 * weight * (ylogy(y, mu) - (y - mu)),
            Family::Gamma => -2.0 * weight * ((y / mu).ln() - (y - mu) / mu),
            Family::Tweedie { variance_power: p } => {
                if p == 0.0 {
                    Family::Gaussian.deviance(y, mu, weight)
                } else if p == 1.0 {
                    Family::Poisson.deviance(y, mu, weight)
                } else if p == 2.0 {
                    Family::Gamma.deviance(y, mu, weight)
                } else {
                    2.0 * weight
                        * (y.powf(2.0 - p) / ((1.0 - p) * (2.0 - p)) - y * mu.powf(1.0 - p) / (1.0 - p)
                            + mu.powf(2.0 - p) / (2.0 - p))
                }
            }
        }
    }

    /// Spark's AIC without the `2·rank` term, from the rows' `(y, μ, w)`, the deviance, the row
    /// count and the weight sum.
    pub fn aic(self, rows: &AicTerms, deviance: f64, num_instances: f64, weight_sum: f64) -> f64 {
        match self {
            // n (ln(2π D/n) + 1) + 2 − Σ ln w: the scale counts as a parameter.
            Family::Gaussian => {
                num_instances * ((deviance / num_instances * 2.0 * std::f64::consts::PI).ln() + 1.0) + 2.0
                    - rows.sum_ln_w
            }
            Family::Binomial => -2.0 * rows.binomial_ll,
            Family::Poisson => -2.0 * rows.poisson_ll,
            // Gamma with shape 1/φ and φ = D / Σw: −2 Σ w ln f(y) + 2.
            Family::Gamma => {
                let disp = deviance / weight_sum;
                -2.0 * rows.gamma_ll(disp) + 2.0
            }
            Family::Tweedie { .. } => f64::NAN,
        }
    }
}

/// Per-row sums the AIC of each family needs, collected in one pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AicTerms {
    /// `Σ ln w` (gaussian).
    pub sum_ln_w: f64,
    /// `Σ ln Binomial(round(w), μ).pmf(round(y w))` (binomial).
    pub binomial_ll: f64,
    /// `Σ w ln Poisson(μ).pmf(y)` (Poisson).
    pub poisson_ll: f64,
    /// Gamma: `Σ w`, `Σ w ln y`, `Σ w y/μ`, `Σ w ln μ` — the log density is linear in them
    /// for a fixed dispersion.
    pub gamma: [f64; 4],
}

impl AicTerms {
    /// Adds one row.
    pub fn add(&mut self, family: Family, y: f64, mu: f64, w: f64) {
        match family {
            Family::Gaussian => {
                if w > 0.0 {
                    self.sum_ln_w += w.ln();
                }
            }
            Family::Binomial => {
                let n = w.round();
                if n > 0.0 {
                    let k = (y * w).round();
                    let ln_choose = ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0);
                    let t = |c: f64, p: f64| if c == 0.0 { 0.0 } else { c * p.ln() };
                    self.binomial_ll += ln_choose + t(k, mu) + t(n - k, 1.0 - mu);
                }
            }
            Family::Poisson => {
                let k = y.trunc();
                let t = if k == 0.0 { 0.0 } else { k * mu.ln() };
                self.poisson_ll += w * (t - mu - ln_gamma(k + 1.0));
            }
            Family::Gamma => {
                self.gamma[0] += w;
                self.gamma[1] += w * y.ln();
                self.gamma[2] += w * y / mu;
                self.gamma[3] += w * mu.ln();
            }
            Family::Tweedie { .. } => {}
        }
    }

    /// Merges another partial sum.
    pub fn merge(&mut self, o: &AicTerms) {
        self.sum_ln_w += o.sum_ln_w;
        self.binomial_ll += o.binomial_ll;
        self.poisson_ll += o.poisson_ll;
        for (a, b) in self.gamma.iter_mut().zip(o.gamma) {
            *a += b;
        }
    }

    /// `Σ w ln f(y)` for the gamma density of shape `k = 1/φ` and scale `μ φ`:
    /// `ln f = −ln Γ(k) − k ln(μφ) + (k−1) ln y − y/(μφ)`.
    fn gamma_ll(&self, disp: f64) -> f64 {
        let k = 1.0 / disp;
        let [sw, sw_ln_y, sw_y_mu, sw_ln_mu] = self.gamma;
        sw * (-ln_gamma(k) - k * disp.ln()) - k * sw_ln_mu + (k - 1.0) * sw_ln_y - k * sw_y_mu
    }
}

impl Link {
    /// Parses Spark's link names (`identity`, `log`, `logit`, `probit`, `cloglog`, `inverse`,
    /// `sqrt`).
    pub fn parse(name: &str) -> Result<Link> {
        match name.to_ascii_lowercase().as_str() {
            "identity" => Ok(Link::Identity),
            "log" => Ok(Link::Log),
            "logit" => Ok(Link::Logit),
            "probit" => Ok(Link::Probit),
            "cloglog" => Ok(Link::CLogLog),
            "inverse" => Ok(Link::Inverse),
            "sqrt" => Ok(Link::Sqrt),
            _ => Err(MlError::param(
                "link",
                name,
                "one of identity, log, logit, probit, cloglog, inverse, sqrt",
            )),
        }
    }

    /// `η = g(μ)`.
    pub fn link(self, mu: f64) -> f64 {
        match self {
            Link::Identity => mu,
            Link::Log => mu.ln(),
            Link::Logit => (mu / (1.0 - mu)).ln(),
            Link::Probit => normal_quantile(mu),
            Link::CLogLog => (-(-mu).ln_1p()).ln(),
            Link::Inverse => 1.0 / mu,
            Link::Sqrt => mu.sqrt(),
            Link::Power(0.0) => mu.ln(),
            Link::Power(l) => mu.powf(l),
        }
    }

    /// `μ = g⁻¹(η)`.
    pub fn unlink(self, eta: f64) -> f64 {
        match self {
            Link::Identity => eta,
            Link::Log => eta.exp(),
            Link::Logit => 1.0 / (1.0 + (-eta).exp()),
            Link::Probit => normal_cdf(eta),
            Link::CLogLog => -(-eta.exp()).exp_m1(),
            Link::Inverse => 1.0 / eta,
            Link::Sqrt => eta * eta,
            Link::Power(0.0) => eta.exp(),
            Link::Power(l) => eta.powf(1.0 / l),
        }
    }

    /// `dη/dμ = g'(μ)`.
    pub fn deriv(self, mu: f64) -> f64 {
        match self {
            Link::Identity => 1.0,
            Link::Log => 1.0 / mu,
            Link::Logit => 1.0 / (mu * (1.0 - mu)),
            Link::Probit => 1.0 / normal_pdf(normal_quantile(mu)),
            Link::CLogLog => 1.0 / ((mu - 1.0) * (-mu).ln_1p()),
            Link::Inverse => -1.0 / (mu * mu),
            Link::Sqrt => 1.0 / (2.0 * mu.sqrt()),
            Link::Power(0.0) => 1.0 / mu,
            Link::Power(l) => l * mu.powf(l - 1.0),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Gaussian => "gaussian",
            Family::Binomial => "binomial",
            Family::Poisson => "poisson",
            Family::Gamma => "gamma",
            Family::Tweedie { variance_power } => return write!(f, "tweedie({variance_power})"),
        })
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Link::Identity => "identity",
            Link::Log => "log",
            Link::Logit => "logit",
            Link::Probit => "probit",
            Link::CLogLog => "cloglog",
            Link::Inverse => "inverse",
            Link::Sqrt => "sqrt",
            Link::Power(l) => return write!(f, "power({l})"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_invert_and_derivatives_match_differences() {
        let links = [
            Link::Identity,
            Link::Log,
            Link::Logit,
            Link::Probit,
            Link::CLogLog,
            Link::Inverse,
            Link::Sqrt,
            Link::Power(0.0),
            Link::Power(-0.5),
            Link::Power(1.5),
        ];
        for link in links {
            for mu in [0.1, 0.35, 0.8] {
                let eta = link.link(mu);
                assert!((link.unlink(eta) - mu).abs() < 1e-12, "{link}");
                let h = 1e-6;
                let numeric = (link.link(mu + h) - link.link(mu - h)) / (2.0 * h);
                assert!(
                    (numeric - link.deriv(mu)).abs() < 1e-6 * numeric.abs().max(1.0),
                    "{link}"
                );
            }
        }
    }

    #[test]
    fn names_parse_and_unknown_names_are_errors() {
        assert_eq!(Family::parse("Poisson").unwrap(), Family::Poisson);
        assert_eq!(Link::parse("cloglog").unwrap(), Link::CLogLog);
        assert!(Family::parse("tweedy").unwrap_err().to_string().contains("family"));
        assert!(Link::parse("loggit").unwrap_err().to_string().contains("link"));
    }
}
