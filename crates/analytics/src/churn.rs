//! Churn risk (流失预警) for products whose users do not buy (SaaS, education): a behavioural
//! logistic model fitted on a time split of the project's own history, its quality on held-out
//! persons, and P(churn in the next window) for every active person with the factors behind it.
//!
//! Definitions:
//! - *Activity* is any event, or one of `activity_events` when given. Only events on or after
//!   the start of `date_from` and before the end of `date_to` (the query's zone) are read.
//! - Days are calendar days of the query's zone, read from one table of day boundaries (no
//!   zone conversion per event). *As of* is the end of `date_to`; the *cut-off* t0 is the
//!   start of the day `window_days` days before it, so `[t0, as of)` is exactly the last
//!   `window_days` calendar days of the range. The range must hold more days than the window.
//! - At a cut `c` (t0 or as of, both starts of days), a person's features come from their
//!   events before `c` only; "the last N days" are the N calendar days before `c`. A person is
//!   *considered* at `c` when they have activity in the `lookback_days` days before `c`.
//! - A person considered at t0 **churned** when they have no activity in `[t0, as of)`.
//! - **Features** ([`FEATURES`]), each standardised with the mean and standard deviation
//!   (population, ÷ n) of the training persons; a feature constant over them scores 0:
//!   1. `recency`: ln(1 + d), d = days from the day of the last activity to `c` (≥ 1);
//!   2. `frequency_30d`: ln(1 + activity events in the last 30 days);
//!   3. `active_days_30d`: days with activity among the last 30;
//!   4. `trend`: (a − b) / (a + b + 1), a = activity events in the last 30 days, b = in the
//!      30 days before those;
//!   5. `breadth_90d`: distinct event names (any event, not only activity) in the last 90 days;
//!   6. `tenure`: ln(1 + days from the day of the person's first event in the range to `c`);
//!   7. `conversions_90d`: events named `conversion_event` in the last 90 days (only when a
//!      conversion event is given).
//! - **Split**: a person is in the validation set (20 %) when `splitmix64(person id) % 5 == 0`
//!   ([`is_validation`]), else in the training set: deterministic, independent of threads,
//!   shards and data order, and the same person stays on the same side across runs.
//! - **Model**: logistic regression of `churned` on the standardised features plus an
//!   intercept, minimising Σ [ln(1 + e^η) − yη] + λ/2 Σⱼ βⱼ² (the intercept is not penalised),
//!   λ = `l2` or 10⁻³ × training persons; fitted by Newton's method (IRLS) with step halving,
//!   see [`fit_logistic`]. At least [`MIN_TRAINING`] training persons of both classes.
//! - **Quality** on the validation persons: AUC (ties count half, [`auc`]), log loss (risks
//!   clamped to [10⁻¹⁵, 1 − 10⁻¹⁵]), the Brier score, the base churn rate and the log loss of
//!   always predicting it, and calibration in 10 deciles of predicted risk: persons sorted by
//!   risk (then id), decile `i` holding ranks `⌊i·n/10⌋ .. ⌊(i+1)·n/10⌋`.
//! - **Scoring**: every person considered at as of, features from events before as of, risk =
//!   P(no activity in the next `window_days` days). The `list` highest risks (ties by id) come
//!   with their **top factors**: up to 3 features whose contribution βᵢ·zᵢ to the log-odds is
//!   positive, largest first.
//!
//! The analysis never reads the clock.

use std::collections::HashSet;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};
use crate::period::{Calendar, Interval, Periods};
use crate::source::{Events, PersonSource, run_sharded};
use crate::spec::{RangeSpec, with_range};

/// Most days `window_days` and `lookback_days` may be.
pub const MAX_DAYS: u32 = 3_650;

/// Fewest training persons a fit needs.
pub const MIN_TRAINING: usize = 20;

/// Most persons listed.
pub const MAX_LIST: usize = 100_000;

/// Most Newton iterations.
pub const MAX_ITERATIONS: u32 = 100;

/// A feature of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// Stable key (`recency`, …).
    pub key: &'static str,
    /// Bilingual name shown in reports.
    pub name: &'static str,
}

/// The features, in model order; the last only with a `conversion_event`.
pub const FEATURES: [Feature; 7] = [
    Feature {
        key: "recency",
        name: "recency 最近活跃",
    },
    Feature {
        key: "frequency_30d",
        name: "frequency_30d 近30天活跃次数",
    },
    Feature {
        key: "active_days_30d",
        name: "active_days_30d 近30天活跃天数",
    },
    Feature {
        key: "trend",
        name: "trend 活跃趋势",
    },
    Feature {
        key: "breadth_90d",
        name: "breadth_90d 行为广度",
    },
    Feature {
        key: "tenure",
        name: "tenure 使用时长",
    },
    Feature {
        key: "conversions_90d",
        name: "conversions_90d 近90天转化次数",
    },
];

/// A churn-risk question.
#[derive(Debug, Clone)]
pub struct ChurnQuery {
    /// Events that count as activity; any event when empty.
    pub activity: Vec<String>,
    /// The key conversion counted as a feature, if any.
    pub conversion_event: Option<String>,
    /// Days of the prediction window.
    pub window_days: u32,
    /// Persons with activity in this many days before a cut are considered.
    pub lookback_days: u32,
    /// λ of the L2 penalty; 10⁻³ × training persons when absent.
    pub l2: Option<f64>,
    /// List this many persons, highest risk first.
    pub list: usize,
    /// Zone of the calendar days.
    pub calendar: Calendar,
    /// Earliest date whose events are read.
    pub from: Date,
    /// Scoring date: risks are as of its end.
    pub to: Date,
    /// Threads to use.
    pub threads: usize,
}

impl ChurnQuery {
    fn check(&self) -> Result<()> {
        for (i, name) in self.activity.iter().enumerate() {
            if name.is_empty() {
                return Err(AnalyticsError::invalid(
                    format!("activity_events[{i}]"),
                    "empty event name",
                ));
            }
        }
        if self.conversion_event.as_deref() == Some("") {
            return Err(AnalyticsError::invalid(
                "conversion_event",
                "empty event name",
            ));
        }
        for (field, days) in [
            ("window_days", self.window_days),
            ("lookback_days", self.lookback_days),
        ] {
            if days == 0 || days > MAX_DAYS {
                return Err(AnalyticsError::invalid(
                    field,
                    format!("must be 1 to {MAX_DAYS}, not {days}"),
                ));
            }
        }
        if let Some(l2) = self.l2
            && !(l2.is_finite() && l2 > 0.0)
        {
            return Err(AnalyticsError::invalid(
                "l2",
                format!("must be a positive number, not {l2}"),
            ));
        }
        if self.to < self.from {
            return Err(AnalyticsError::invalid(
                "date_to",
                format!("{} is before date_from {}", self.to, self.from),
            ));
        }
        let days = self
            .from
            .until(self.to)
            .map_err(|e| AnalyticsError::invalid("date_to", e.to_string()))?
            .get_days()
            + 1;
        if i64::from(days) <= i64::from(self.window_days) {
            return Err(AnalyticsError::invalid(
                "date_from",
                format!(
                    "the range holds {days} days; it needs more than window_days ({}) so that \
                     there is history before the cut-off",
                    self.window_days
                ),
            ));
        }
        Ok(())
    }

    /// The features used: [`FEATURES`] without `conversions_90d` when no conversion event.
    pub fn features(&self) -> &'static [Feature] {
        if self.conversion_event.is_some() {
            &FEATURES
        } else {
            &FEATURES[..6]
        }
    }
}

/// One person's raw (unstandardised) features at a cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRow {
    /// Canonical person id.
    pub person: u64,
    /// In [`ChurnQuery::features`] order.
    pub values: Vec<f64>,
    /// At the cut-off: whether they had no activity in `[t0, as of)`; none when scoring.
    pub churned: Option<bool>,
}

/// The features of every considered person at both cuts, sorted by person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureTable {
    /// At the cut-off t0, with labels.
    pub training: Vec<FeatureRow>,
    /// As of the end of `date_to`.
    pub scoring: Vec<FeatureRow>,
}

/// Whether a person is in the validation set: `splitmix64(person) % 5 == 0` (20 %).
pub fn is_validation(person: u64) -> bool {
    splitmix64(person).is_multiple_of(5)
}

/// The SplitMix64 output function (Steele, Lea & Flood 2014) of `x`: a fixed bijection
/// that mixes every input bit into every output bit.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The day table and cut-offs of a query.
struct Days {
    /// Days `from ..= to`.
    days: Periods,
    /// Day index of t0 (the first day of the label window).
    cutoff: usize,
    /// Day index of as of (one past the last day).
    as_of: usize,
}

impl Days {
    fn new(q: &ChurnQuery) -> Result<Days> {
        let days = Periods::new(&q.calendar, Interval::Day, q.from, q.to)?;
        let as_of = days.len();
        Ok(Days {
            cutoff: as_of - q.window_days as usize,
            as_of,
            days,
        })
    }
}

/// Reusable per-shard buffers and the per-query lookups of feature computation.
struct Extractor<'a> {
    is_activity: &'a [bool],
    conversion: Option<u32>,
    with_conversions: bool,
    lookback: usize,
    names: HashSet<u32>,
    active: HashSet<usize>,
}

impl Extractor<'_> {
    /// The features at day `cut` from `(day, name)` of the person's events in the range, or
    /// none when the person is not considered there.
    fn at(&mut self, ev: &[(usize, u32)], cut: usize) -> Option<Vec<f64>> {
        let within = |d: usize, n: usize| d < cut && d + n >= cut;
        let (mut first, mut last) = (None, None);
        let (mut a, mut b, mut conversions) = (0u64, 0u64, 0u64);
        self.names.clear();
        self.active.clear();
        for &(d, name) in ev {
            if d >= cut {
                break;
            }
            first.get_or_insert(d);
            if within(d, 90) {
                self.names.insert(name);
                if Some(name) == self.conversion {
                    conversions += 1;
                }
            }
            if !self.is_activity[name as usize] {
                continue;
            }
            last = Some(d);
            if within(d, 30) {
                a += 1;
                self.active.insert(d);
            } else if within(d, 60) {
                b += 1;
            }
        }
        let last = last.filter(|&l| within(l, self.lookback))?;
        let first = first.expect("an activity is an event");
        let mut values = vec![
            ((cut - last) as f64).ln_1p(),
            (a as f64).ln_1p(),
            self.active.len() as f64,
            (a as f64 - b as f64) / (a + b + 1) as f64,
            self.names.len() as f64,
            ((cut - first) as f64).ln_1p(),
        ];
        if self.with_conversions {
            values.push(conversions as f64);
        }
        Some(values)
    }
}

/// The features of every considered person at the cut-off (with labels) and as of `date_to`.
pub fn features(source: &dyn PersonSource, q: &ChurnQuery) -> Result<FeatureTable> {
    q.check()?;
    let days = Days::new(q)?;
    feature_table(source, q, &days)
}

fn feature_table(source: &dyn PersonSource, q: &ChurnQuery, days: &Days) -> Result<FeatureTable> {
    let is_activity: Vec<bool> = source
        .names()
        .iter()
        .map(|n| q.activity.is_empty() || q.activity.contains(n))
        .collect();
    let conversion = q
        .conversion_event
        .as_deref()
        .and_then(|c| source.name_id(c));
    let (from_ms, to_ms) = (days.days.begin(), days.days.end());
    let parts = run_sharded(source, q.threads, |src, shard, shards| {
        let mut ex = Extractor {
            is_activity: &is_activity,
            conversion,
            with_conversions: q.conversion_event.is_some(),
            lookback: q.lookback_days as usize,
            names: HashSet::new(),
            active: HashSet::new(),
        };
        let mut training = Vec::new();
        let mut scoring = Vec::new();
        let mut ev: Vec<(usize, u32)> = Vec::new();
        src.for_each_person(shard, shards, &mut |person, events: Events<'_>| {
            let events = events.within(from_ms, to_ms);
            ev.clear();
            ev.extend(
                events
                    .ts
                    .iter()
                    .zip(events.names)
                    .map(|(&t, &n)| (days.days.index(t).expect("within the range"), n)),
            );
            if let Some(values) = ex.at(&ev, days.cutoff) {
                let churned = !ev
                    .iter()
                    .any(|&(d, n)| d >= days.cutoff && is_activity[n as usize]);
                training.push(FeatureRow {
                    person: person.0,
                    values,
                    churned: Some(churned),
                });
            }
            if let Some(values) = ex.at(&ev, days.as_of) {
                scoring.push(FeatureRow {
                    person: person.0,
                    values,
                    churned: None,
                });
            }
        });
        (training, scoring)
    });
    let mut table = FeatureTable {
        training: Vec::new(),
        scoring: Vec::new(),
    };
    for (t, s) in parts {
        table.training.extend(t);
        table.scoring.extend(s);
    }
    table.training.sort_unstable_by_key(|r| r.person);
    table.scoring.sort_unstable_by_key(|r| r.person);
    Ok(table)
}

/// A fitted logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticFit {
    /// Intercept first, then one coefficient per column.
    pub coefficients: Vec<f64>,
    /// Newton iterations taken.
    pub iterations: u32,
    /// Whether the last Newton step was below 10⁻⁹ in every coordinate.
    pub converged: bool,
    /// The minimised objective: negative log-likelihood plus the penalty.
    pub objective: f64,
}

/// ln(1 + eᶻ) without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// β₀ + Σ βⱼ xⱼ.
fn linear(beta: &[f64], x: &[f64]) -> f64 {
    beta[0] + beta[1..].iter().zip(x).map(|(b, v)| b * v).sum::<f64>()
}

fn objective(x: &[Vec<f64>], y: &[bool], l2: f64, beta: &[f64]) -> f64 {
    let nll: f64 = x
        .iter()
        .zip(y)
        .map(|(row, &yi)| {
            let eta = linear(beta, row);
            softplus(eta) - if yi { eta } else { 0.0 }
        })
        .sum();
    nll + 0.5 * l2 * beta[1..].iter().map(|b| b * b).sum::<f64>()
}

/// Solves `a·x = b` for a symmetric positive definite `a` (`n × n`, row-major) by Cholesky
/// decomposition, in place: `b` becomes `x`. False when `a` is not positive definite.
fn solve_spd(a: &mut [f64], b: &mut [f64], n: usize) -> bool {
    // a = L·Lᵀ, L stored in the lower triangle.
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
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
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    true
}

/// Fits P(y) = σ(β₀ + Σ βⱼ xⱼ) minimising Σ [ln(1 + e^η) − yη] + `l2`/2 Σⱼ≥₁ βⱼ² by Newton's
/// method from β = 0, halving a step until the objective does not rise; stops after a step
/// below 10⁻⁹ in every coordinate, or after [`MAX_ITERATIONS`], or when the Hessian is not
/// positive definite (then not converged).
///
/// # Panics
/// When `x` and `y` differ in length or the rows of `x` in width.
pub fn fit_logistic(x: &[Vec<f64>], y: &[bool], l2: f64) -> LogisticFit {
    assert_eq!(x.len(), y.len(), "one label per row");
    let k = x.first().map_or(0, Vec::len);
    assert!(x.iter().all(|r| r.len() == k), "rows of equal width");
    let n = k + 1;
    let mut beta = vec![0.0; n];
    let mut current = objective(x, y, l2, &beta);
    let (mut iterations, mut converged) = (0, false);
    let mut row = vec![0.0; n];
    while iterations < MAX_ITERATIONS {
        let mut g = vec![0.0; n];
        let mut h = vec![0.0; n * n];
        for (xi, &yi) in x.iter().zip(y) {
            let p = sigmoid(linear(&beta, xi));
            let w = p * (1.0 - p);
            let r = p - if yi { 1.0 } else { 0.0 };
            row[0] = 1.0;
            row[1..].copy_from_slice(xi);
            for a in 0..n {
                g[a] += r * row[a];
                for b in 0..=a {
                    h[a * n + b] += w * row[a] * row[b];
                }
            }
        }
        for j in 1..n {
            g[j] += l2 * beta[j];
            h[j * n + j] += l2;
        }
        for a in 0..n {
            for b in a + 1..n {
                h[a * n + b] = h[b * n + a];
            }
        }
        let mut step = g;
        if !solve_spd(&mut h, &mut step, n) {
            break;
        }
        iterations += 1;
        let small = step.iter().all(|s| s.abs() < 1e-9);
        let mut t = 1.0;
        loop {
            let trial: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b - t * s).collect();
            let value = objective(x, y, l2, &trial);
            if value <= current + 1e-12 * current.abs() || t < 1e-10 {
                beta = trial;
                current = value;
                break;
            }
            t *= 0.5;
        }
        if small {
            converged = true;
            break;
        }
    }
    LogisticFit {
        coefficients: beta,
        iterations,
        converged,
        objective: current,
    }
}

/// The area under the ROC curve of `scores` for `positive` labels: the share of (positive,
/// negative) pairs in which the positive scores higher, ties counting half (from mid-ranks,
/// O(n log n)). None unless both classes occur.
///
/// # Panics
/// When the slices differ in length.
pub fn auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), positive.len(), "one label per score");
    let pos = positive.iter().filter(|&&p| p).count();
    let neg = positive.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the positives' 1-based mid-ranks.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid = (i + j + 2) as f64 / 2.0;
        rank_sum += mid * order[i..=j].iter().filter(|&&o| positive[o]).count() as f64;
        i = j + 1;
    }
    let (pos, neg) = (pos as f64, neg as f64);
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// A feature's standardisation and coefficient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coefficient {
    /// Stable key.
    pub feature: String,
    /// Bilingual name.
    pub name: String,
    /// β on the standardised scale: the change in log-odds per standard deviation.
    pub coefficient: f64,
    /// Mean over the training persons.
    pub mean: f64,
    /// Standard deviation over the training persons (÷ n); 0 when constant.
    pub sd: f64,
}

/// How the fit went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitSummary {
    /// λ used.
    pub l2: f64,
    /// Newton iterations.
    pub iterations: u32,
    /// Whether Newton's method converged.
    pub converged: bool,
    /// Negative log-likelihood plus penalty at the estimate.
    pub objective: f64,
    /// Training persons.
    pub persons: u64,
    /// Of them, churned.
    pub churned: u64,
    /// Mean log loss on the training persons.
    pub log_loss: f64,
}

/// One decile of predicted risk among the validation persons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// 1 (lowest risks) to 10.
    pub decile: u32,
    /// Persons in it.
    pub count: u64,
    /// Their mean predicted risk.
    pub mean_predicted: f64,
    /// The share of them that churned.
    pub observed_rate: f64,
}

/// The model's quality on the validation persons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnValidation {
    /// Validation persons.
    pub persons: u64,
    /// Of them, churned.
    pub churned: u64,
    /// `churned / persons`.
    pub base_rate: f64,
    /// Area under the ROC curve (ties half); absent unless both classes occur.
    pub auc: Option<f64>,
    /// Mean log loss.
    pub log_loss: f64,
    /// Mean log loss of predicting the validation base rate for everyone.
    pub baseline_log_loss: f64,
    /// Mean squared error of the risk.
    pub brier: f64,
    /// By decile of predicted risk, lowest first (deciles with nobody left out).
    pub calibration: Vec<CalibrationBin>,
}

/// A feature that raises a person's risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// Stable key.
    pub feature: String,
    /// Bilingual name.
    pub name: String,
    /// βᵢ·zᵢ: what it adds to the log-odds of churning.
    pub contribution: f64,
}

/// One scored person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonRisk {
    /// Canonical person id.
    pub person: u64,
    /// P(no activity in the next window).
    pub risk: f64,
    /// Raw feature values, in [`ChurnResult::coefficients`] order.
    pub values: Vec<f64>,
    /// Up to 3 features with a positive contribution, largest first.
    pub top_factors: Vec<Factor>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnResult {
    /// First day of the label window (the cut-off t0).
    pub cutoff: String,
    /// The scoring date (risks as of its end).
    pub as_of: String,
    /// Days of the prediction window.
    pub window_days: u32,
    /// Days of activity look-back that make a person considered.
    pub lookback_days: u32,
    /// The intercept (log-odds at the training means).
    pub intercept: f64,
    /// One per feature, in model order.
    pub coefficients: Vec<Coefficient>,
    /// How the fit went.
    pub fit: FitSummary,
    /// Quality on the held-out 20 %; absent when none fell there.
    pub validation: Option<ChurnValidation>,
    /// Persons scored as of `date_to`.
    pub scored: u64,
    /// Mean risk.
    pub mean_risk: f64,
    /// Σ risk: expected churners in the next window.
    pub expected_churners: f64,
    /// Persons per tenth of risk: `risk_histogram[i]` counts [i/10, (i+1)/10).
    pub risk_histogram: Vec<u64>,
    /// The persons asked for, highest risk first.
    pub list: Vec<PersonRisk>,
}

/// Mean and standard deviation (÷ n) of each column.
fn standardisation(rows: &[&FeatureRow], k: usize) -> Vec<(f64, f64)> {
    let n = rows.len().max(1) as f64;
    (0..k)
        .map(|j| {
            let mean = rows.iter().map(|r| r.values[j]).sum::<f64>() / n;
            let var = rows
                .iter()
                .map(|r| (r.values[j] - mean).powi(2))
                .sum::<f64>()
                / n;
            (mean, var.sqrt())
        })
        .collect()
}

fn standardise(values: &[f64], scale: &[(f64, f64)]) -> Vec<f64> {
    values
        .iter()
        .zip(scale)
        .map(|(v, &(m, s))| if s > 0.0 { (v - m) / s } else { 0.0 })
        .collect()
}

fn log_loss(p: f64, y: bool) -> f64 {
    let p = p.clamp(1e-15, 1.0 - 1e-15);
    -if y { p.ln() } else { (1.0 - p).ln() }
}

fn too_few(message: String) -> AnalyticsError {
    AnalyticsError::invalid("activity_events", message)
}

/// Runs the churn-risk analysis.
pub fn churn(source: &dyn PersonSource, q: &ChurnQuery) -> Result<ChurnResult> {
    q.check()?;
    let days = Days::new(q)?;
    let table = feature_table(source, q, &days)?;
    let features = q.features();
    let k = features.len();
    let cutoff_date = days.days.dates[days.cutoff];
    let (validation, training): (Vec<&FeatureRow>, Vec<&FeatureRow>) =
        table.training.iter().partition(|r| is_validation(r.person));
    let label = |r: &FeatureRow| r.churned.expect("training rows are labelled");
    let churned = training.iter().filter(|r| label(r)).count();
    if training.len() < MIN_TRAINING {
        return Err(too_few(format!(
            "{} training persons had activity in the {} days before the cut-off {cutoff_date}; \
             the model needs at least {MIN_TRAINING}",
            training.len(),
            q.lookback_days
        )));
    }
    if churned == 0 || churned == training.len() {
        return Err(too_few(format!(
            "{} of {} training persons churned after the cut-off {cutoff_date}: the model needs \
             both churned and retained persons",
            churned,
            training.len()
        )));
    }
    let scale = standardisation(&training, k);
    let x: Vec<Vec<f64>> = training
        .iter()
        .map(|r| standardise(&r.values, &scale))
        .collect();
    let y: Vec<bool> = training.iter().map(|r| label(r)).collect();
    let l2 = q.l2.unwrap_or(1e-3 * training.len() as f64);
    let fit = fit_logistic(&x, &y, l2);
    let beta = &fit.coefficients;
    let risk_of = |values: &[f64]| sigmoid(linear(beta, &standardise(values, &scale)));
    let train_loss = x
        .iter()
        .zip(&y)
        .map(|(xi, &yi)| log_loss(sigmoid(linear(beta, xi)), yi))
        .sum::<f64>()
        / x.len() as f64;
    let validation = (!validation.is_empty()).then(|| {
        let risks: Vec<f64> = validation.iter().map(|r| risk_of(&r.values)).collect();
        let labels: Vec<bool> = validation.iter().map(|r| label(r)).collect();
        validate(&risks, &labels, validation.iter().map(|r| r.person))
    });
    let scored: Vec<(u64, f64, &FeatureRow)> = table
        .scoring
        .iter()
        .map(|r| (r.person, risk_of(&r.values), r))
        .collect();
    let mut histogram = vec![0u64; 10];
    for s in &scored {
        histogram[((s.1 * 10.0) as usize).min(9)] += 1;
    }
    let total_risk: f64 = scored.iter().map(|s| s.1).sum();
    let mut ranked: Vec<&(u64, f64, &FeatureRow)> = scored.iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(q.list);
    let list = ranked
        .into_iter()
        .map(|&(person, risk, row)| {
            let z = standardise(&row.values, &scale);
            let mut factors: Vec<(usize, f64)> = z
                .iter()
                .enumerate()
                .map(|(j, zj)| (j, beta[j + 1] * zj))
                .filter(|f| f.1 > 0.0)
                .collect();
            factors.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            factors.truncate(3);
            PersonRisk {
                person,
                risk,
                values: row.values.clone(),
                top_factors: factors
                    .into_iter()
                    .map(|(j, contribution)| Factor {
                        feature: features[j].key.to_string(),
                        name: features[j].name.to_string(),
                        contribution,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(ChurnResult {
        cutoff: cutoff_date.to_string(),
        as_of: q.to.to_string(),
        window_days: q.window_days,
        lookback_days: q.lookback_days,
        intercept: beta[0],
        coefficients: features
            .iter()
            .zip(&scale)
            .zip(&beta[1..])
            .map(|((f, &(mean, sd)), &coefficient)| Coefficient {
                feature: f.key.to_string(),
                name: f.name.to_string(),
                coefficient,
                mean,
                sd,
            })
            .collect(),
        fit: FitSummary {
            l2,
            iterations: fit.iterations,
            converged: fit.converged,
            objective: fit.objective,
            persons: training.len() as u64,
            churned: churned as u64,
            log_loss: train_loss,
        },
        validation,
        scored: scored.len() as u64,
        mean_risk: total_risk / scored.len().max(1) as f64,
        expected_churners: total_risk,
        risk_histogram: histogram,
        list,
    })
}

/// The validation metrics of `risks` against `labels` (persons `ids`, to order ties).
fn validate(risks: &[f64], labels: &[bool], ids: impl Iterator<Item = u64>) -> ChurnValidation {
    let n = risks.len();
    let churned = labels.iter().filter(|&&l| l).count();
    let base = churned as f64 / n as f64;
    let mean = |f: &dyn Fn(usize) -> f64| (0..n).map(f).sum::<f64>() / n as f64;
    let ids: Vec<u64> = ids.collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| risks[a].total_cmp(&risks[b]).then(ids[a].cmp(&ids[b])));
    let calibration = (0..10)
        .filter_map(|i| {
            let bin = &order[i * n / 10..(i + 1) * n / 10];
            (!bin.is_empty()).then(|| CalibrationBin {
                decile: i as u32 + 1,
                count: bin.len() as u64,
                mean_predicted: bin.iter().map(|&o| risks[o]).sum::<f64>() / bin.len() as f64,
                observed_rate: bin.iter().filter(|&&o| labels[o]).count() as f64 / bin.len() as f64,
            })
        })
        .collect();
    ChurnValidation {
        persons: n as u64,
        churned: churned as u64,
        base_rate: base,
        auc: auc(risks, labels),
        log_loss: mean(&|i| log_loss(risks[i], labels[i])),
        baseline_log_loss: mean(&|i| log_loss(base, labels[i])),
        brier: mean(&|i| (risks[i] - if labels[i] { 1.0 } else { 0.0 }).powi(2)),
        calibration,
    }
}

/// Churn risk, as asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnSpec {
    /// Events that count as activity; any event when absent or empty.
    #[serde(default)]
    pub activity_events: Vec<String>,
    /// The key conversion, counted in the last 90 days as a feature.
    #[serde(default)]
    pub conversion_event: Option<String>,
    /// Days of the prediction window; default 30.
    #[serde(default)]
    pub window_days: Option<u32>,
    /// Persons with activity in this many days before a cut are considered; default 90.
    #[serde(default)]
    pub lookback_days: Option<u32>,
    /// λ of the L2 penalty; default 10⁻³ × training persons.
    #[serde(default)]
    pub l2: Option<f64>,
    /// List this many persons, highest risk first; default 20.
    #[serde(default)]
    pub list: Option<usize>,
    /// Earliest date whose events are read (`YYYY-MM-DD`).
    pub date_from: String,
    /// The scoring date: risks as of its end.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

with_range!(ChurnSpec);

impl ChurnSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<ChurnQuery> {
        let range: RangeSpec<'_> = self.range();
        let (from, to) = range.dates()?;
        let q = ChurnQuery {
            activity: self.activity_events.clone(),
            conversion_event: self.conversion_event.clone(),
            window_days: self.window_days.unwrap_or(30),
            lookback_days: self.lookback_days.unwrap_or(90),
            l2: self.l2,
            list: self.list.unwrap_or(20),
            calendar: range.calendar()?,
            from,
            to,
            threads,
        };
        // A query may list at most MAX_LIST persons; code (keeping every score) may ask more.
        if q.list > MAX_LIST {
            return Err(AnalyticsError::invalid(
                "list",
                format!("at most {MAX_LIST}"),
            ));
        }
        q.check()?;
        Ok(q)
    }
}
