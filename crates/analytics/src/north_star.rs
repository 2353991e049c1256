//! North Star metric (北极星指标): one metric that sums up the value customers get (weekly
//! persons completing an order, say), its period-over-period change, and the driver metrics
//! thought to move it, with an attribution of the metric's changes to the drivers' changes.
//!
//! Definitions:
//! - The metric and every driver are trends series (an event or any event, and a math; see
//!   [`crate::trends`]) over the same periods, with the same definitions of values and
//!   `null`s.
//! - **Change** in period `t`: `value[t] - value[t - 1]`; **relative change**: that over
//!   `value[t - 1]`. Both are `null` in the first period and where either value is `null`;
//!   the relative change is also `null` when the previous value is 0.
//! - **Attribution** — drivers are free-form, so no identity (metric = product or sum of
//!   drivers) can be assumed; instead an ordinary least-squares regression with intercept
//!   of the metric's changes on the drivers' changes, over the periods where the metric and
//!   every driver have a change:
//!   `Δmetric[t] = a + Σ_j b_j · Δdriver_j[t] + e[t]`, solved in closed form from the normal
//!   equations on centred data (Gaussian elimination with partial pivoting; k ≤ 5 drivers).
//!   Reported per driver: the coefficient `b_j` (metric change per unit of driver change),
//!   the standardized coefficient `β_j = b_j · sd(Δdriver_j) / sd(Δmetric)`, the correlation
//!   `r_j` of the two changes, and the **share of variance explained** `β_j · r_j` (Pratt's
//!   measure): the shares sum to R². A share can be negative when drivers are correlated
//!   with each other (suppression); it is reported as computed, not clipped.
//!   R² = 1 − residual sum of squares / total sum of squares of the metric's changes.
//! - The regression is descriptive, not causal, and with few periods it fits by construction:
//!   with `k` drivers it has `k + 1` parameters, so the query is refused (field `drivers`)
//!   when the range has fewer than `k + 2` periods (fewer than `k + 1` changes); with exactly
//!   `k + 1` changes the fit is exact and R² is 1 whatever the data. Read it over many periods.
//! - The attribution is `null`, with the reason in `attribution_note`, when it is not
//!   identified: the metric's changes do not vary, a driver's changes do not vary, the
//!   drivers' changes are collinear, or missing values leave too few periods.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};
use crate::period::Calendar;
use crate::source::PersonSource;
use crate::spec::{RangeSpec, with_range};
use crate::trends::{Grid, Series, SeriesSpec, TrendInterval, TrendsQuery, trend_interval, trends};

/// Most drivers.
pub const MAX_DRIVERS: usize = 5;

/// A named series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedSeries {
    /// Its name in the answer.
    pub name: String,
    /// What it measures.
    pub series: Series,
}

/// A North Star question.
#[derive(Debug, Clone)]
pub struct NorthStarQuery {
    /// The metric.
    pub metric: NamedSeries,
    /// The drivers (at most [`MAX_DRIVERS`], distinct names).
    pub drivers: Vec<NamedSeries>,
    /// Period length.
    pub interval: TrendInterval,
    /// Time zone and week start.
    pub calendar: Calendar,
    /// First date.
    pub from: Date,
    /// Last date, included.
    pub to: Date,
    /// Threads to use.
    pub threads: usize,
}

/// A metric's values and changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    /// Its name.
    pub name: String,
    /// Per period.
    pub values: Vec<Option<f64>>,
    /// Per period: the change from the previous period.
    pub change: Vec<Option<f64>>,
    /// Per period: the change over the previous value.
    pub relative_change: Vec<Option<f64>>,
}

/// One driver's part in the regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverAttribution {
    /// The driver.
    pub name: String,
    /// Metric change per unit of the driver's change, the others held fixed.
    pub coefficient: f64,
    /// The coefficient in standard deviations.
    pub standardized_coefficient: f64,
    /// Correlation of the driver's changes with the metric's.
    pub correlation: f64,
    /// Standardized coefficient × correlation; the drivers' shares sum to R².
    pub variance_share: f64,
}

/// The regression of the metric's changes on the drivers'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    /// Periods used (those with every change defined).
    pub observations: usize,
    /// The intercept: the metric's change with no driver change.
    pub intercept: f64,
    /// Per driver, in query order.
    pub drivers: Vec<DriverAttribution>,
    /// Share of the metric changes' variance the drivers explain.
    pub r_squared: f64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NorthStarResult {
    /// Period labels.
    pub labels: Vec<String>,
    /// The metric.
    pub metric: MetricSeries,
    /// The drivers, in query order.
    pub drivers: Vec<MetricSeries>,
    /// The attribution, when identified.
    pub attribution: Option<Attribution>,
    /// Why there is no attribution.
    pub attribution_note: Option<String>,
}

impl NorthStarQuery {
    fn check(&self, periods: usize) -> Result<()> {
        if self.metric.name.is_empty() {
            return Err(AnalyticsError::invalid("metric.name", "empty name"));
        }
        let k = self.drivers.len();
        if k > MAX_DRIVERS {
            return Err(AnalyticsError::invalid(
                "drivers",
                format!("at most {MAX_DRIVERS} drivers, not {k}"),
            ));
        }
        for (i, d) in self.drivers.iter().enumerate() {
            if d.name.is_empty() {
                return Err(AnalyticsError::invalid(
                    format!("drivers[{i}].name"),
                    "empty name",
                ));
            }
            if self.drivers[..i].iter().any(|o| o.name == d.name) {
                return Err(AnalyticsError::invalid(
                    format!("drivers[{i}].name"),
                    format!("{:?} names two drivers", d.name),
                ));
            }
        }
        if periods < k + 2 {
            return Err(AnalyticsError::invalid(
                "drivers",
                format!(
                    "{k} drivers need at least {} periods; the range has {periods}",
                    k + 2
                ),
            ));
        }
        Ok(())
    }
}

/// Changes of one series: (absolute, relative).
pub(crate) fn changes(values: &[Option<f64>]) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
    let mut abs = vec![None; values.len()];
    let mut rel = vec![None; values.len()];
    for t in 1..values.len() {
        if let (Some(prev), Some(now)) = (values[t - 1], values[t]) {
            abs[t] = Some(now - prev);
            rel[t] = (prev != 0.0).then(|| (now - prev) / prev);
        }
    }
    (abs, rel)
}

/// Runs the North Star analysis.
pub fn north_star(source: &dyn PersonSource, q: &NorthStarQuery) -> Result<NorthStarResult> {
    let grid = Grid::new(&q.calendar, q.interval, q.from, q.to)?;
    q.check(grid.len())?;
    let all: Vec<&NamedSeries> = std::iter::once(&q.metric).chain(&q.drivers).collect();
    let tq = TrendsQuery {
        series: all.iter().map(|s| s.series.clone()).collect(),
        interval: q.interval,
        calendar: q.calendar.clone(),
        from: q.from,
        to: q.to,
        breakdown_limit: None,
        threads: q.threads,
    };
    let t = trends(source, &tq)?;
    let mut metrics: Vec<MetricSeries> = all
        .iter()
        .zip(t.series)
        .map(|(named, s)| {
            let (change, relative_change) = changes(&s.values);
            MetricSeries {
                name: named.name.clone(),
                values: s.values,
                change,
                relative_change,
            }
        })
        .collect();
    let drivers = metrics.split_off(1);
    let metric = metrics.pop().expect("the metric");
    let y: Vec<Option<f64>> = metric.change.clone();
    let xs: Vec<&[Option<f64>]> = drivers.iter().map(|d| d.change.as_slice()).collect();
    let names: Vec<String> = drivers.iter().map(|d| d.name.clone()).collect();
    let (attribution, attribution_note) = match regress(&y, &xs, &names) {
        Ok(a) => (Some(a), None),
        Err(why) => (None, Some(why)),
    };
    Ok(NorthStarResult {
        labels: t.labels,
        metric,
        drivers,
        attribution,
        attribution_note,
    })
}

/// Ordinary least squares with intercept of `y` on the `xs` over the rows where all are
/// defined; `Err` says why the fit is not identified.
pub fn regress(
    y: &[Option<f64>],
    xs: &[&[Option<f64>]],
    names: &[String],
) -> std::result::Result<Attribution, String> {
    let k = xs.len();
    let rows: Vec<usize> = (0..y.len())
        .filter(|&t| y[t].is_some() && xs.iter().all(|x| x[t].is_some()))
        .collect();
    let m = rows.len();
    if m < k + 1 || m < 2 {
        return Err(format!(
            "{m} periods have every change; {k} drivers need at least {}",
            (k + 1).max(2)
        ));
    }
    let yv: Vec<f64> = rows.iter().map(|&t| y[t].expect("filtered")).collect();
    let xv: Vec<Vec<f64>> = xs
        .iter()
        .map(|x| rows.iter().map(|&t| x[t].expect("filtered")).collect())
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let ym = mean(&yv);
    let xm: Vec<f64> = xv.iter().map(|x| mean(x)).collect();
    let yc: Vec<f64> = yv.iter().map(|v| v - ym).collect();
    let xc: Vec<Vec<f64>> = xv
        .iter()
        .zip(&xm)
        .map(|(x, m)| x.iter().map(|v| v - m).collect())
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let syy = dot(&yc, &yc);
    let scale = yv.iter().map(|v| v.abs()).fold(0.0, f64::max).max(1.0);
    if syy <= 1e-12 * scale * scale * m as f64 {
        return Err("the metric's changes do not vary".into());
    }
    let sxx: Vec<f64> = xc.iter().map(|x| dot(x, x)).collect();
    for (j, s) in sxx.iter().enumerate() {
        let sc = xv[j].iter().map(|v| v.abs()).fold(0.0, f64::max).max(1.0);
        if *s <= 1e-12 * sc * sc * m as f64 {
            return Err(format!("the changes of driver {:?} do not vary", names[j]));
        }
    }
    // Normal equations on centred data: (Xc'Xc) b = Xc'yc.
    let mut a: Vec<Vec<f64>> = (0..k)
        .map(|i| {
            let mut row: Vec<f64> = (0..k).map(|j| dot(&xc[i], &xc[j])).collect();
            row.push(dot(&xc[i], &yc));
            row
        })
        .collect();
    let b = solve(&mut a).ok_or_else(|| "the drivers' changes are collinear".to_string())?;
    let intercept = ym - b.iter().zip(&xm).map(|(b, m)| b * m).sum::<f64>();
    let explained: f64 = (0..k).map(|j| b[j] * dot(&xc[j], &yc)).sum();
    let r_squared = explained / syy;
    let sd_y = syy.sqrt();
    let drivers = (0..k)
        .map(|j| {
            let sd_x = sxx[j].sqrt();
            let standardized = b[j] * sd_x / sd_y;
            let correlation = dot(&xc[j], &yc) / (sd_x * sd_y);
            DriverAttribution {
                name: names[j].clone(),
                coefficient: b[j],
                standardized_coefficient: standardized,
                correlation,
                variance_share: standardized * correlation,
            }
        })
        .collect();
    Ok(Attribution {
        observations: m,
        intercept,
        drivers,
        r_squared,
    })
}

/// Solves the augmented system `a` (k rows of k + 1) by Gaussian elimination with partial
/// pivoting; `None` when singular.
fn solve(a: &mut [Vec<f64>]) -> Option<Vec<f64>> {
    let k = a.len();
    // Pivots are compared with the diagonal's size: scale-free singularity test.
    let size = (0..k).map(|i| a[i][i].abs()).fold(0.0, f64::max);
    for c in 0..k {
        let p = (c..k).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[p][c].abs() <= 1e-10 * size {
            return None;
        }
        a.swap(c, p);
        let (top, rest) = a.split_at_mut(c + 1);
        let pivot = &top[c];
        for row in rest {
            let f = row[c] / pivot[c];
            for (x, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                *x -= f * p;
            }
        }
    }
    let mut x = vec![0.0; k];
    for c in (0..k).rev() {
        let s: f64 = (c + 1..k).map(|j| a[c][j] * x[j]).sum();
        x[c] = (a[c][k] - s) / a[c][c];
    }
    Some(x)
}

/// A named series, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedSeriesSpec {
    /// Its name; for the metric, default `metric`.
    #[serde(default)]
    pub name: Option<String>,
    /// The event; any event when absent.
    #[serde(default)]
    pub event: Option<String>,
    /// As in trends; default `unique`.
    #[serde(default)]
    pub math: Option<String>,
}

impl NamedSeriesSpec {
    fn named(&self, field: &str, default_name: Option<&str>) -> Result<NamedSeries> {
        let name = match (&self.name, default_name) {
            (Some(n), _) => n.clone(),
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                return Err(AnalyticsError::invalid(
                    format!("{field}.name"),
                    "a driver needs a name",
                ));
            }
        };
        let spec = SeriesSpec {
            event: self.event.clone(),
            math: Some(self.math.clone().unwrap_or_else(|| "unique".into())),
        };
        Ok(NamedSeries {
            name,
            series: spec.series(field)?,
        })
    }
}

/// A North Star analysis, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NorthStarSpec {
    /// The metric (math default `unique`).
    pub metric: NamedSeriesSpec,
    /// The drivers, each with a name (math default `unique`).
    #[serde(default)]
    pub drivers: Vec<NamedSeriesSpec>,
    /// `hour`, `day`, `week` (default) or `month`.
    #[serde(default)]
    pub interval: Option<String>,
    /// First date (`YYYY-MM-DD`).
    pub date_from: String,
    /// Last date, included.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

with_range!(NorthStarSpec);

impl NorthStarSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<NorthStarQuery> {
        let range: RangeSpec<'_> = self.range();
        let (from, to) = range.dates()?;
        let q = NorthStarQuery {
            metric: self.metric.named("metric", Some("metric"))?,
            drivers: self
                .drivers
                .iter()
                .enumerate()
                .map(|(i, d)| d.named(&format!("drivers[{i}]"), None))
                .collect::<Result<Vec<_>>>()?,
            interval: trend_interval(self.interval.as_deref(), TrendInterval::Week)?,
            calendar: range.calendar()?,
            from,
            to,
            threads,
        };
        let grid = Grid::new(&q.calendar, q.interval, q.from, q.to)?;
        q.check(grid.len())?;
        Ok(q)
    }
}
