//! Predicted customer value from a project's own purchases: a "buy till you die" model
//! (BG/NBD, MBG/NBD or Pareto/NBD) and Gamma-Gamma spend, fitted by maximum likelihood on the
//! calibration period, then every buyer scored: P(alive), expected purchases and spend over
//! the horizon, CLV. With `holdout_to`, the fit is checked the way analysts do: predicted
//! against actual repeat purchases in the holdout period, per calibration frequency, week by
//! week (the tracking plot's data), with error metrics.
//!
//! Definitions (those of the literature and of `lodestar_models::summary`):
//! - purchases are the events named in `purchase_events` in the range, their amount the event
//!   value (a purchase without one counts with amount 0); days are calendar days in the
//!   query's zone, and the purchases of one day are one purchase;
//! - for each buyer whose first purchase is in the calibration period (`date_from` through
//!   `date_to`): x = repeat purchase days, tₓ = last − first purchase day, T = end of
//!   `date_to` − first purchase day, in `unit` (weeks by default), and the mean of the repeat
//!   days' amounts;
//! - the horizon is `horizon_months` months of 30.4375 days, discounted monthly at the monthly
//!   equivalent of `annual_discount`.

use std::collections::HashMap;

use jiff::civil::Date;
use lodestar_models::bg_nbd::BgNbdParams;
use lodestar_models::clv::{ClvHorizon, Discount, PurchaseModel, discounted_purchases};
use lodestar_models::gamma_gamma::{FittedGammaGamma, GammaGammaParams};
use lodestar_models::mbg_nbd::MbgNbdParams;
use lodestar_models::pareto_nbd::ParetoNbdParams;
use lodestar_models::summary::{CustomerSummary, SummaryOptions, TimeUnit, Transaction, summarize};
use lodestar_models::{FitOptions, FitReport, ModelError, Rfm, RfmData, SpendData};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{AnalyticsError, Result};
use crate::period::Calendar;
use crate::source::{PersonSource, SnapshotSource, run_sharded};
use crate::spec::{RangeSpec, with_range};

/// The purchase model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Fader, Hardie & Lee (2005).
    BgNbd,
    /// Batislam, Denizel & Filiztekin (2007): dropout possible after the first purchase too.
    MbgNbd,
    /// Schmittlein, Morrison & Colombo (1987).
    ParetoNbd,
}

/// A CLV question.
#[derive(Debug, Clone)]
pub struct ClvQuery {
    /// Events that are purchases.
    pub purchase_events: Vec<String>,
    /// The property holding a purchase's amount; the event value when none.
    pub amount_property: Option<String>,
    /// The purchase model.
    pub model: ModelKind,
    /// Unit of recency, age and horizons.
    pub unit: TimeUnit,
    /// Zone of the calendar days.
    pub calendar: Calendar,
    /// First calibration date.
    pub from: Date,
    /// Last calibration date (its end is the calibration end).
    pub to: Date,
    /// Last holdout date, for validation.
    pub holdout_to: Option<Date>,
    /// CLV horizon in months.
    pub horizon_months: u32,
    /// Annual discount rate.
    pub annual_discount: f64,
    /// List this many buyers, highest CLV first.
    pub list: usize,
    /// Threads to use.
    pub threads: usize,
}

/// A fitted model's parameters, their standard errors and the fit's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedModel {
    /// Which model.
    pub model: String,
    /// Estimates by name.
    pub params: Value,
    /// Standard errors by name, when the Hessian allows.
    pub std_errors: Option<Value>,
    /// Log-likelihood, iterations, convergence.
    pub report: FitReport,
}

/// One buyer's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuyerScore {
    /// Canonical person id.
    pub person: u64,
    /// Repeat purchase days in the calibration period.
    pub frequency: u32,
    /// tₓ, in the unit.
    pub recency: f64,
    /// T, in the unit.
    pub age: f64,
    /// Probability of being alive at the calibration end.
    pub p_alive: f64,
    /// Expected purchases over the horizon.
    pub expected_purchases: f64,
    /// Probability of at least one purchase over the horizon (BG/NBD and MBG/NBD).
    pub p_purchase: Option<f64>,
    /// Expected spend per purchase (none without a spend model).
    pub expected_spend: Option<f64>,
    /// Discounted expected value over the horizon (none without a spend model).
    pub clv: Option<f64>,
}

/// Predicted against actual for one calibration frequency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrequencyBucket {
    /// `0` … `6`, or `7+`.
    pub frequency: String,
    /// Buyers in it.
    pub customers: u64,
    /// Mean actual repeat purchases in the holdout.
    pub actual: f64,
    /// Mean predicted.
    pub predicted: f64,
}

/// One week of the holdout's tracking data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackingWeek {
    /// Weeks since the calibration end.
    pub week: u32,
    /// Repeat purchases in that week, actual.
    pub actual: u64,
    /// Expected.
    pub predicted: f64,
    /// Cumulative actual.
    pub actual_cumulative: u64,
    /// Cumulative expected.
    pub predicted_cumulative: f64,
}

/// The holdout check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Holdout length in the unit.
    pub holdout_length: f64,
    /// Per calibration frequency.
    pub by_frequency: Vec<FrequencyBucket>,
    /// Week by week (incremental and cumulative).
    pub tracking: Vec<TrackingWeek>,
    /// Repeat purchases in the holdout, actual.
    pub total_actual: u64,
    /// Expected.
    pub total_predicted: f64,
    /// (predicted − actual) / actual, percent.
    pub total_error_pct: Option<f64>,
    /// Mean absolute error per buyer.
    pub mae: f64,
    /// Root mean squared error per buyer.
    pub rmse: f64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClvResult {
    /// Unit of recency, age and horizons.
    pub unit: TimeUnit,
    /// Buyers in the calibration period.
    pub customers: u64,
    /// Of them, with a repeat purchase.
    pub repeat_buyers: u64,
    /// The purchase model.
    pub purchase_model: FittedModel,
    /// The spend model, when the data support one.
    pub spend_model: Option<FittedModel>,
    /// Why there is no spend model.
    pub spend_note: Option<String>,
    /// Σ expected purchases over the horizon.
    pub expected_purchases: f64,
    /// Σ CLV.
    pub clv: Option<f64>,
    /// Mean P(alive).
    pub mean_p_alive: f64,
    /// Buyers per tenth of P(alive): `p_alive_histogram[i]` counts [i/10, (i+1)/10).
    pub p_alive_histogram: Vec<u64>,
    /// The buyers asked for, highest CLV (or expected purchases) first.
    pub list: Vec<BuyerScore>,
    /// The holdout check, when asked for.
    pub validation: Option<Validation>,
}

fn model_error(e: ModelError) -> AnalyticsError {
    AnalyticsError::invalid(
        "purchase_events",
        format!("the data cannot support a fit: {e}"),
    )
}

/// A fitted purchase model, usable for scoring.
struct Fitted {
    model: Params,
    described: FittedModel,
}

/// The estimates of whichever model was fitted.
#[derive(Clone, Copy)]
enum Params {
    Bg(BgNbdParams),
    Modified(MbgNbdParams),
    Pareto(ParetoNbdParams),
}

impl Params {
    fn model(&self) -> &(dyn PurchaseModel + Sync) {
        match self {
            Params::Bg(p) => p,
            Params::Modified(p) => p,
            Params::Pareto(p) => p,
        }
    }

    /// P(at least one purchase within `t`), where the model gives it in closed form.
    fn prob_purchase_within(&self, c: &Rfm, t: f64) -> Option<f64> {
        match self {
            Params::Bg(p) => Some(p.prob_purchase_within(c, t)),
            Params::Modified(p) => Some(p.prob_purchase_within(c, t)),
            Params::Pareto(_) => None,
        }
    }
}

fn described<P: Serialize>(
    model: &str,
    params: &P,
    std_errors: Option<&P>,
    report: &FitReport,
) -> FittedModel {
    let json = |v: &P| serde_json::to_value(v).expect("parameters serialize");
    FittedModel {
        model: model.to_string(),
        params: json(params),
        std_errors: std_errors.map(json),
        report: report.clone(),
    }
}

fn fit_purchase(kind: ModelKind, data: &RfmData, options: &FitOptions) -> Result<Fitted> {
    Ok(match kind {
        ModelKind::BgNbd => {
            let f = BgNbdParams::fit(data, options).map_err(model_error)?;
            Fitted {
                described: described("bg_nbd", &f.params, f.std_errors.as_ref(), &f.report),
                model: Params::Bg(f.params),
            }
        }
        ModelKind::MbgNbd => {
            let f = MbgNbdParams::fit(data, options).map_err(model_error)?;
            Fitted {
                described: described("mbg_nbd", &f.params, f.std_errors.as_ref(), &f.report),
                model: Params::Modified(f.params),
            }
        }
        ModelKind::ParetoNbd => {
            let f = ParetoNbdParams::fit(data, options).map_err(model_error)?;
            Fitted {
                described: described("pareto_nbd", &f.params, f.std_errors.as_ref(), &f.report),
                model: Params::Pareto(f.params),
            }
        }
    })
}

/// Runs the CLV analysis, amounts from the event value.
pub fn clv(source: &dyn PersonSource, q: &ClvQuery) -> Result<ClvResult> {
    if q.amount_property.is_some() {
        return Err(AnalyticsError::invalid(
            "amount_property",
            "reading a named property needs the store's events (run clv through the registry)",
        ));
    }
    let transactions = transactions_from_values(source, q)?;
    fit_and_score(&transactions, q)
}

/// Runs the CLV analysis on a store's events: amounts from `amount_property` when the query
/// names one (read from the event bodies), else from the event value.
pub fn clv_snapshot(source: &SnapshotSource<'_>, q: &ClvQuery) -> Result<ClvResult> {
    let Some(name) = &q.amount_property else {
        return clv(source, q);
    };
    check_events(q)?;
    let (from_ms, to_ms) = bounds(q)?;
    let snapshot = source.snapshot();
    let runs = snapshot.runs();
    let wanted: Vec<bool> = snapshot
        .names()
        .iter()
        .map(|n| q.purchase_events.contains(n))
        .collect();
    let want = |r: usize, i: usize| {
        let run = &runs[r];
        wanted[run.names[i] as usize]
            && (from_ms..to_ms).contains(&run.ts[i])
            && !source.dropped(r, i)
    };
    let found = crate::filter::scan_bodies(snapshot, want, q.threads, |_, _, props| {
        Some(
            crate::filter::property(props, name)
                .and_then(crate::filter::number)
                .filter(|v| v.is_finite())
                .unwrap_or(0.0),
        )
    })?;
    let mut transactions = Vec::new();
    for (r, rows) in found.into_iter().enumerate() {
        let run = &runs[r];
        for (i, amount) in rows {
            let person = snapshot.canonical(run.stored_person(i));
            if source.kept(person) {
                transactions.push(Transaction::on_day(
                    person,
                    day_index(q, run.ts[i])?,
                    amount,
                ));
            }
        }
    }
    fit_and_score(&transactions, q)
}

fn check_events(q: &ClvQuery) -> Result<()> {
    if q.purchase_events.is_empty() {
        return Err(AnalyticsError::invalid(
            "purchase_events",
            "name at least one",
        ));
    }
    Ok(())
}

/// `[start of date_from, start of the day after holdout_to or date_to)` in ms.
fn bounds(q: &ClvQuery) -> Result<(i64, i64)> {
    let last = q.holdout_to.unwrap_or(q.to);
    let after = last
        .checked_add(jiff::Span::new().days(1))
        .map_err(|e| AnalyticsError::invalid("date_to", e.to_string()))?;
    Ok((q.calendar.start_of(q.from)?, q.calendar.start_of(after)?))
}

/// Days from `from` to `d`.
fn days_since_from(q: &ClvQuery, d: Date, field: &str) -> Result<i64> {
    Ok(i64::from(
        q.from
            .until(d)
            .map_err(|e| AnalyticsError::invalid(field, e.to_string()))?
            .get_days(),
    ))
}

/// Days since `from` of the calendar date of `ts`.
fn day_index(q: &ClvQuery, ts: i64) -> Result<i64> {
    days_since_from(q, q.calendar.date_of(ts)?, "date_from")
}

/// The purchases in the range, the event value as amount (0 without one).
fn transactions_from_values(
    source: &dyn PersonSource,
    q: &ClvQuery,
) -> Result<Vec<Transaction<u64>>> {
    check_events(q)?;
    let (from_ms, to_ms) = bounds(q)?;
    let wanted: Vec<bool> = source
        .names()
        .iter()
        .map(|n| q.purchase_events.contains(n))
        .collect();
    let parts = run_sharded(source, q.threads, |src, shard, shards| {
        let mut out: Vec<Transaction<u64>> = Vec::new();
        let mut failed = None;
        src.for_each_person_unordered(shard, shards, &mut |person, ev| {
            for i in 0..ev.len() {
                let ts = ev.ts[i];
                if !wanted[ev.names[i] as usize] || ts < from_ms || ts >= to_ms {
                    continue;
                }
                match day_index(q, ts) {
                    Ok(day) => {
                        let v = ev.values[i];
                        out.push(Transaction::on_day(
                            person.0,
                            day,
                            if v.is_nan() { 0.0 } else { v },
                        ));
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
        });
        (out, failed)
    });
    let mut transactions = Vec::new();
    for (t, failed) in parts {
        if let Some(e) = failed {
            return Err(e);
        }
        transactions.extend(t);
    }
    Ok(transactions)
}

/// Fits the models on the purchases and scores the buyers.
fn fit_and_score(transactions: &[Transaction<u64>], q: &ClvQuery) -> Result<ClvResult> {
    let cal_end_day = days_since_from(q, q.to, "date_to")? as f64;
    let holdout_end_day = match q.holdout_to {
        Some(h) => Some(days_since_from(q, h, "holdout_to")? as f64),
        None => None,
    };
    let summaries = summarize(
        transactions,
        &SummaryOptions {
            calibration_end_day: cal_end_day,
            holdout_end_day,
            unit: q.unit,
        },
    )
    .map_err(model_error)?;
    let options = FitOptions {
        threads: q.threads.max(1),
        ..FitOptions::default()
    };
    let data = RfmData::from_summaries(&summaries).map_err(model_error)?;
    let fitted = fit_purchase(q.model, &data, &options)?;
    let (spend, spend_note): (Option<FittedGammaGamma>, Option<String>) =
        match SpendData::from_summaries(&summaries)
            .and_then(|d| GammaGammaParams::fit(&d, &options))
        {
            Ok(f) => (Some(f), None),
            Err(e) => (None, Some(format!("no spend model: {e}"))),
        };
    let horizon = ClvHorizon::months(
        q.horizon_months,
        q.unit,
        Discount::Annual(q.annual_discount),
    )
    .map_err(|e| AnalyticsError::invalid("annual_discount", e.to_string()))?;
    let horizon_t = f64::from(q.horizon_months) * q.unit.month();
    let scores = score(
        &summaries,
        &fitted,
        spend.as_ref(),
        &horizon,
        horizon_t,
        q.threads,
    );
    let validation = holdout_end_day
        .map(|h| validate(&summaries, transactions, &fitted, cal_end_day, h, q.unit));
    let n = scores.len();
    let mut histogram = vec![0u64; 10];
    for s in &scores {
        histogram[((s.p_alive * 10.0) as usize).min(9)] += 1;
    }
    let mut list = scores.clone();
    list.sort_by(|a, b| {
        let key = |s: &BuyerScore| s.clv.unwrap_or(s.expected_purchases);
        key(b).total_cmp(&key(a)).then(a.person.cmp(&b.person))
    });
    list.truncate(q.list);
    Ok(ClvResult {
        unit: q.unit,
        customers: n as u64,
        repeat_buyers: summaries.iter().filter(|s| s.frequency > 0).count() as u64,
        purchase_model: fitted.described.clone(),
        spend_model: spend.as_ref().map(|f| FittedModel {
            model: "gamma_gamma".into(),
            params: serde_json::to_value(f.params).expect("serializes"),
            std_errors: f
                .std_errors
                .map(|s| serde_json::to_value(s).expect("serializes")),
            report: f.report.clone(),
        }),
        spend_note,
        expected_purchases: scores.iter().map(|s| s.expected_purchases).sum(),
        clv: spend
            .as_ref()
            .map(|_| scores.iter().filter_map(|s| s.clv).sum()),
        mean_p_alive: scores.iter().map(|s| s.p_alive).sum::<f64>() / n.max(1) as f64,
        p_alive_histogram: histogram,
        list,
        validation,
    })
}

/// Every buyer's scores; buyers with the same history share the model's work.
fn score(
    summaries: &[CustomerSummary<u64>],
    fitted: &Fitted,
    spend: Option<&FittedGammaGamma>,
    horizon: &ClvHorizon,
    horizon_t: f64,
    threads: usize,
) -> Vec<BuyerScore> {
    let mut index: HashMap<(u32, u64, u64), usize> = HashMap::new();
    let mut histories: Vec<Rfm> = Vec::new();
    let of: Vec<usize> = summaries
        .iter()
        .map(|s| {
            *index
                .entry((s.frequency, s.recency.to_bits(), s.age.to_bits()))
                .or_insert_with(|| {
                    histories.push(Rfm::new(s.frequency, s.recency, s.age).expect("summarised"));
                    histories.len() - 1
                })
        })
        .collect();
    let chunk = histories.len().div_ceil(threads.max(1)).max(1);
    let params = fitted.model;
    let model = params.model();
    let per_history: Vec<[f64; 4]> = std::thread::scope(|scope| {
        let handles: Vec<_> = histories
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|c| {
                            [
                                model.prob_alive(c),
                                model.expected_purchases(c, horizon_t),
                                discounted_purchases(model, c, horizon),
                                params
                                    .prob_purchase_within(c, horizon_t)
                                    .unwrap_or(f64::NAN),
                            ]
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("scoring thread"))
            .collect()
    });
    summaries
        .iter()
        .zip(&of)
        .map(|(s, &h)| {
            let [p_alive, expected, discounted, p_purchase] = per_history[h];
            let m = spend.and_then(|f| f.params.expected_spend(s.frequency, s.mean_repeat_spend));
            BuyerScore {
                person: s.customer,
                frequency: s.frequency,
                recency: s.recency,
                age: s.age,
                p_alive,
                expected_purchases: expected,
                p_purchase: (!p_purchase.is_nan()).then_some(p_purchase),
                expected_spend: m,
                clv: m.map(|m| m * discounted),
            }
        })
        .collect()
}

/// Predicted against actual repeat purchases in the holdout: days `cal_end + 1 ..= holdout_end`
/// (day numbers since the first calibration date).
fn validate(
    summaries: &[CustomerSummary<u64>],
    transactions: &[Transaction<u64>],
    fitted: &Fitted,
    cal_end: f64,
    holdout_end: f64,
    unit: TimeUnit,
) -> Validation {
    let model = fitted.model.model();
    let length = (holdout_end - cal_end) / unit.days();
    let weeks = ((holdout_end - cal_end) / 7.0).ceil().max(1.0) as u32;
    let mut buckets = [(0u64, 0u64, 0.0f64); 8];
    let (mut abs, mut sq, mut total_actual, mut total_predicted) = (0.0, 0.0, 0u64, 0.0);
    let mut predicted_cum = vec![0.0f64; weeks as usize];
    let ts: Vec<f64> = (1..=weeks)
        .map(|k| (f64::from(k) * 7.0 / unit.days()).min(length))
        .collect();
    let mut buf = vec![0.0; ts.len()];
    let mut customers = std::collections::BTreeSet::new();
    for s in summaries {
        customers.insert(s.customer);
        let c = Rfm::new(s.frequency, s.recency, s.age).expect("summarised");
        let predicted = model.expected_purchases(&c, length);
        let actual = s.holdout_frequency.unwrap_or(0);
        let b = &mut buckets[(s.frequency as usize).min(7)];
        b.0 += 1;
        b.1 += u64::from(actual);
        b.2 += predicted;
        abs += (predicted - f64::from(actual)).abs();
        sq += (predicted - f64::from(actual)).powi(2);
        total_actual += u64::from(actual);
        total_predicted += predicted;
        model.expected_purchases_many(&c, &ts, &mut buf);
        for (p, v) in predicted_cum.iter_mut().zip(&buf) {
            *p += v;
        }
    }
    // Actual repeat purchase days per holdout week, of the calibration's buyers.
    let mut days: Vec<(u64, i64)> = transactions
        .iter()
        .filter(|t| customers.contains(&t.customer))
        .map(|t| (t.customer, t.time_days.floor() as i64))
        .filter(|&(_, d)| (d as f64) > cal_end && (d as f64) <= holdout_end)
        .collect();
    days.sort_unstable();
    days.dedup();
    let mut actual_week = vec![0u64; weeks as usize];
    for (_, d) in days {
        let w = (((d as f64) - cal_end - 1.0) / 7.0).floor() as usize;
        actual_week[w.min(weeks as usize - 1)] += 1;
    }
    let n = summaries.len().max(1) as f64;
    let mut tracking = Vec::with_capacity(weeks as usize);
    let (mut cum_actual, mut previous) = (0u64, 0.0);
    for k in 0..weeks as usize {
        cum_actual += actual_week[k];
        tracking.push(TrackingWeek {
            week: k as u32 + 1,
            actual: actual_week[k],
            predicted: predicted_cum[k] - previous,
            actual_cumulative: cum_actual,
            predicted_cumulative: predicted_cum[k],
        });
        previous = predicted_cum[k];
    }
    Validation {
        holdout_length: length,
        by_frequency: buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.0 > 0)
            .map(|(i, b)| FrequencyBucket {
                frequency: if i == 7 { "7+".into() } else { i.to_string() },
                customers: b.0,
                actual: b.1 as f64 / b.0 as f64,
                predicted: b.2 / b.0 as f64,
            })
            .collect(),
        tracking,
        total_actual,
        total_predicted,
        total_error_pct: (total_actual > 0)
            .then(|| 100.0 * (total_predicted - total_actual as f64) / total_actual as f64),
        mae: abs / n,
        rmse: (sq / n).sqrt(),
    }
}

/// CLV, as asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClvSpec {
    /// Purchase events; default `["Order Completed"]`.
    #[serde(default)]
    pub purchase_events: Option<Vec<String>>,
    /// The property holding a purchase's amount (dots reach into objects); default the event
    /// value (`revenue`, `value`, `total`, `amount`, …).
    #[serde(default)]
    pub amount_property: Option<String>,
    /// `bg_nbd` (default), `mbg_nbd` or `pareto_nbd`.
    #[serde(default)]
    pub model: Option<ModelKind>,
    /// `weeks` (default) or `days`.
    #[serde(default)]
    pub unit: Option<TimeUnit>,
    /// Last date of a holdout period after `date_to`, to check the fit against.
    #[serde(default)]
    pub holdout_to: Option<String>,
    /// CLV horizon in months; default 12.
    #[serde(default)]
    pub horizon_months: Option<u32>,
    /// Annual discount rate; default 0.10.
    #[serde(default)]
    pub annual_discount: Option<f64>,
    /// List this many buyers, highest CLV first; default 20.
    #[serde(default)]
    pub list: Option<usize>,
    /// First calibration date (`YYYY-MM-DD`).
    pub date_from: String,
    /// Last calibration date, included.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

with_range!(ClvSpec);

impl ClvSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<ClvQuery> {
        let range: RangeSpec<'_> = self.range();
        let (from, to) = range.dates()?;
        let holdout_to = match &self.holdout_to {
            Some(h) => {
                let d: Date = h.parse().map_err(|_| {
                    AnalyticsError::invalid(
                        "holdout_to",
                        format!("{h:?} is not a date like 2026-11-01"),
                    )
                })?;
                if d <= to {
                    return Err(AnalyticsError::invalid(
                        "holdout_to",
                        "must be after date_to",
                    ));
                }
                Some(d)
            }
            None => None,
        };
        let purchase_events = self
            .purchase_events
            .clone()
            .unwrap_or_else(|| vec!["Order Completed".to_string()]);
        if let Some(i) = purchase_events.iter().position(String::is_empty) {
            return Err(AnalyticsError::invalid(
                format!("purchase_events[{i}]"),
                "empty event name",
            ));
        }
        let horizon_months = self.horizon_months.unwrap_or(12);
        if !(1..=600).contains(&horizon_months) {
            return Err(AnalyticsError::invalid(
                "horizon_months",
                "between 1 and 600",
            ));
        }
        let annual_discount = self.annual_discount.unwrap_or(0.10);
        if !(0.0..10.0).contains(&annual_discount) {
            return Err(AnalyticsError::invalid(
                "annual_discount",
                "a rate from 0 (0 %) below 10",
            ));
        }
        let list = self.list.unwrap_or(20);
        if list > 100_000 {
            return Err(AnalyticsError::invalid("list", "at most 100000"));
        }
        if let Some(p) = &self.amount_property
            && (p.is_empty() || p.split('.').any(str::is_empty))
        {
            return Err(AnalyticsError::invalid(
                "amount_property",
                format!("{p:?} is not a property name"),
            ));
        }
        Ok(ClvQuery {
            amount_property: self.amount_property.clone(),
            purchase_events,
            model: self.model.unwrap_or(ModelKind::BgNbd),
            unit: self.unit.unwrap_or(TimeUnit::Weeks),
            calendar: range.calendar()?,
            from,
            to,
            holdout_to,
            horizon_months,
            annual_discount,
            list,
            threads,
        })
    }
}
