//! Model inputs: one customer's (x, tₓ, T) as a checked [`Rfm`], and the compact, aggregated
//! arrays the likelihoods run over ([`RfmData`], [`SpendData`]).
//!
//! Customers with identical patterns are merged into one row with a weight, rows are sorted by
//! frequency, and each distinct frequency is a contiguous group, so a likelihood evaluation
//! computes its log-gamma terms once per distinct frequency and then runs a tight loop over
//! plain `f64` slices.

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::summary::CustomerSummary;

/// One customer's frequency x, recency tₓ and age T (both in the model's time unit), checked:
/// finite, 0 ≤ tₓ ≤ T, and tₓ = 0 when x = 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RfmUnchecked")]
pub struct Rfm {
    frequency: u32,
    recency: f64,
    age: f64,
}

#[derive(Deserialize)]
struct RfmUnchecked {
    frequency: u32,
    recency: f64,
    age: f64,
}

impl TryFrom<RfmUnchecked> for Rfm {
    type Error = ModelError;
    fn try_from(u: RfmUnchecked) -> Result<Self, ModelError> {
        Rfm::new(u.frequency, u.recency, u.age)
    }
}

impl Rfm {
    /// Checks and builds a customer's (x, tₓ, T).
    ///
    /// # Errors
    /// [`ModelError::NonFinite`], [`ModelError::RecencyExceedsAge`], or
    /// [`ModelError::InvalidValue`] for a negative recency or a non-zero recency with x = 0.
    pub fn new(frequency: u32, recency: f64, age: f64) -> Result<Self, ModelError> {
        Self::checked(frequency, recency, age, 0)
    }

    pub(crate) fn checked(
        frequency: u32,
        recency: f64,
        age: f64,
        index: usize,
    ) -> Result<Self, ModelError> {
        if !recency.is_finite() {
            return Err(ModelError::NonFinite {
                field: "recency",
                index,
            });
        }
        if !age.is_finite() {
            return Err(ModelError::NonFinite {
                field: "age",
                index,
            });
        }
        if recency < 0.0 {
            return Err(ModelError::InvalidValue {
                field: "recency",
                index,
                value: recency,
                reason: "must be >= 0",
            });
        }
        if recency > age {
            return Err(ModelError::RecencyExceedsAge {
                index,
                recency,
                age,
            });
        }
        if frequency == 0 && recency != 0.0 {
            return Err(ModelError::InvalidValue {
                field: "recency",
                index,
                value: recency,
                reason: "must be 0 when frequency is 0",
            });
        }
        Ok(Self {
            frequency,
            recency,
            age,
        })
    }

    /// x: repeat purchases in the calibration period.
    pub fn frequency(&self) -> u32 {
        self.frequency
    }
    /// tₓ: time of the last purchase since the first one.
    pub fn recency(&self) -> f64 {
        self.recency
    }
    /// T: time from the first purchase to the end of the calibration period.
    pub fn age(&self) -> f64 {
        self.age
    }
}

impl<K> CustomerSummary<K> {
    /// The summary's (x, tₓ, T).
    ///
    /// # Errors
    /// As [`Rfm::new`] (a summary made by [`crate::summary::summarize`] always passes).
    pub fn rfm(&self) -> Result<Rfm, ModelError> {
        Rfm::new(self.frequency, self.recency, self.age)
    }
}

/// Rows of the subsample that guides the start of a fit on large data.
const COARSE_ROWS: usize = 8192;

/// A contiguous run of rows with the same frequency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Group {
    pub x: u32,
    pub start: usize,
    pub end: usize,
}

/// Sorts `(key, weight)` rows and merges equal keys, summing weights.
fn aggregate<T: Copy + Ord>(mut rows: Vec<(T, f64)>) -> Vec<(T, f64)> {
    rows.sort_unstable_by_key(|r| r.0);
    let mut out: Vec<(T, f64)> = Vec::with_capacity(rows.len());
    for (k, w) in rows {
        match out.last_mut() {
            Some(last) if last.0 == k => last.1 += w,
            _ => out.push((k, w)),
        }
    }
    out
}

/// An integer key that sorts like a non-negative float (and maps −0 to +0).
fn key(v: f64) -> u64 {
    (v + 0.0).to_bits()
}

fn groups(xs: impl Iterator<Item = u32>) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for (i, x) in xs.enumerate() {
        match out.last_mut() {
            Some(g) if g.x == x => g.end = i + 1,
            _ => out.push(Group {
                x,
                start: i,
                end: i + 1,
            }),
        }
    }
    out
}

fn check_weight(weight: f64, index: usize) -> Result<(), ModelError> {
    if !weight.is_finite() {
        return Err(ModelError::NonFinite {
            field: "weight",
            index,
        });
    }
    if weight <= 0.0 {
        return Err(ModelError::InvalidValue {
            field: "weight",
            index,
            value: weight,
            reason: "must be > 0",
        });
    }
    Ok(())
}

/// (x, tₓ, T) of many customers, aggregated: the input of the BG/NBD, MBG/NBD and Pareto/NBD
/// fits.
#[derive(Debug, Clone, PartialEq)]
pub struct RfmData {
    pub(crate) groups: Vec<Group>,
    pub(crate) recency: Vec<f64>,
    pub(crate) age: Vec<f64>,
    pub(crate) weight: Vec<f64>,
    pub(crate) total_weight: f64,
    /// Distinct ages and, per row, the index of the row's age in it: likelihoods compute
    /// ln(α + T) once per distinct T (days or weeks take few distinct values).
    pub(crate) age_values: Vec<f64>,
    pub(crate) age_index: Vec<u32>,
    /// Distinct recencies and, per row, the index of the row's recency in it.
    pub(crate) recency_values: Vec<f64>,
    pub(crate) recency_index: Vec<u32>,
}

/// The sorted distinct values of `v` and the index of each element in them.
fn distinct(v: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let mut values = v.to_vec();
    values.sort_by(f64::total_cmp);
    values.dedup_by(|a, b| a.total_cmp(b).is_eq());
    let index = v
        .iter()
        .map(|x| values.partition_point(|y| y.total_cmp(x).is_lt()) as u32)
        .collect();
    (values, index)
}

impl RfmData {
    /// One row per customer.
    ///
    /// # Errors
    /// [`ModelError::EmptyData`] for no customers, and the checks of [`Rfm::new`].
    pub fn from_summaries<K>(summaries: &[CustomerSummary<K>]) -> Result<Self, ModelError> {
        Self::from_weighted(
            summaries
                .iter()
                .enumerate()
                .map(|(i, s)| (s.frequency, s.recency, s.age, 1.0, i)),
        )
    }

    /// Customers given as checked points, one each.
    ///
    /// # Errors
    /// [`ModelError::EmptyData`] for no customers.
    pub fn from_rfm(points: &[Rfm]) -> Result<Self, ModelError> {
        Self::from_weighted(
            points
                .iter()
                .enumerate()
                .map(|(i, p)| (p.frequency, p.recency, p.age, 1.0, i)),
        )
    }

    /// Patterns `(x, tₓ, T, weight)`, the weight being the number of customers (it may be
    /// fractional) with that pattern.
    ///
    /// # Errors
    /// [`ModelError::EmptyData`], the checks of [`Rfm::new`], and a weight that is not a finite
    /// positive number ([`ModelError::InvalidValue`] / [`ModelError::NonFinite`]).
    pub fn from_patterns(patterns: &[(u32, f64, f64, f64)]) -> Result<Self, ModelError> {
        Self::from_weighted(
            patterns
                .iter()
                .enumerate()
                .map(|(i, &(x, tx, t, w))| (x, tx, t, w, i)),
        )
    }

    fn from_weighted(
        rows: impl Iterator<Item = (u32, f64, f64, f64, usize)>,
    ) -> Result<Self, ModelError> {
        let mut checked = Vec::new();
        for (x, tx, t, w, i) in rows {
            let p = Rfm::checked(x, tx, t, i)?;
            check_weight(w, i)?;
            checked.push(((p.frequency, key(p.recency), key(p.age)), w));
        }
        if checked.is_empty() {
            return Err(ModelError::EmptyData);
        }
        let rows = aggregate(checked);
        let recency: Vec<f64> = rows.iter().map(|r| f64::from_bits(r.0.1)).collect();
        let age: Vec<f64> = rows.iter().map(|r| f64::from_bits(r.0.2)).collect();
        let (age_values, age_index) = distinct(&age);
        let (recency_values, recency_index) = distinct(&recency);
        Ok(Self {
            groups: groups(rows.iter().map(|r| r.0.0)),
            recency,
            age,
            weight: rows.iter().map(|r| r.1).collect(),
            total_weight: rows.iter().map(|r| r.1).sum(),
            age_values,
            age_index,
            recency_values,
            recency_index,
        })
    }

    /// Distinct (x, tₓ, T) patterns.
    pub fn patterns(&self) -> usize {
        self.weight.len()
    }

    /// Number of customers (the sum of the weights).
    pub fn customers(&self) -> f64 {
        self.total_weight
    }

    /// A starting value for the rate parameters (α, β) of the purchase models: a tenth of the
    /// largest age, which makes the start independent of the time unit.
    pub(crate) fn rate_start(&self) -> f64 {
        let max_age = self.age_values.last().copied().unwrap_or(1.0);
        if max_age > 0.0 { max_age / 10.0 } else { 1.0 }
    }

    /// A systematic subsample (every k-th aggregated row, weights kept) of about
    /// [`COARSE_ROWS`] rows, when the data have more than twice that many; it only guides the
    /// start of a fit.
    pub(crate) fn subsample(&self) -> Option<RfmData> {
        let every = self.patterns() / COARSE_ROWS;
        if every < 2 {
            return None;
        }
        let rows: Vec<_> = self.iter().step_by(every).collect();
        Self::from_patterns(&rows).ok()
    }

    /// Fails with [`ModelError::AllZeroFrequency`] when nobody made a repeat purchase.
    pub(crate) fn require_repeat(&self) -> Result<(), ModelError> {
        if self.groups.iter().all(|g| g.x == 0) {
            Err(ModelError::AllZeroFrequency)
        } else {
            Ok(())
        }
    }

    /// Iterates (x, tₓ, T, weight) over the aggregated rows.
    pub fn iter(&self) -> impl Iterator<Item = (u32, f64, f64, f64)> + '_ {
        self.groups.iter().flat_map(move |g| {
            (g.start..g.end).map(move |i| (g.x, self.recency[i], self.age[i], self.weight[i]))
        })
    }
}

/// Repeat buyers' frequency x and mean repeat spend m̄, aggregated: the input of the
/// Gamma-Gamma fit. Customers with x = 0 carry no information about spend and are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendData {
    pub(crate) groups: Vec<Group>,
    /// ln m̄ per row.
    pub(crate) ln_mean: Vec<f64>,
    /// x · m̄ per row (the customer's total repeat spend).
    pub(crate) total: Vec<f64>,
    /// ln(x · m̄) per row.
    pub(crate) ln_total: Vec<f64>,
    pub(crate) weight: Vec<f64>,
    pub(crate) total_weight: f64,
}

impl SpendData {
    /// From summaries; customers with x = 0 are skipped.
    ///
    /// # Errors
    /// See [`SpendData::from_patterns`].
    pub fn from_summaries<K>(summaries: &[CustomerSummary<K>]) -> Result<Self, ModelError> {
        if summaries.is_empty() {
            return Err(ModelError::EmptyData);
        }
        Self::from_weighted(
            summaries
                .iter()
                .enumerate()
                .map(|(i, s)| (s.frequency, s.mean_repeat_spend, 1.0, i)),
        )
    }

    /// Patterns `(x, m̄, weight)`; rows with x = 0 are skipped.
    ///
    /// # Errors
    /// [`ModelError::EmptyData`] for no rows, [`ModelError::NoRepeatBuyers`] when no row has
    /// x > 0, [`ModelError::NonFinite`] / [`ModelError::InvalidValue`] for a mean spend of a
    /// repeat buyer that is not a finite positive number or a bad weight.
    pub fn from_patterns(patterns: &[(u32, f64, f64)]) -> Result<Self, ModelError> {
        if patterns.is_empty() {
            return Err(ModelError::EmptyData);
        }
        Self::from_weighted(
            patterns
                .iter()
                .enumerate()
                .map(|(i, &(x, m, w))| (x, m, w, i)),
        )
    }

    fn from_weighted(
        rows: impl Iterator<Item = (u32, f64, f64, usize)>,
    ) -> Result<Self, ModelError> {
        let mut checked = Vec::new();
        for (x, m, w, i) in rows {
            if x == 0 {
                continue;
            }
            if !m.is_finite() {
                return Err(ModelError::NonFinite {
                    field: "mean_repeat_spend",
                    index: i,
                });
            }
            if m <= 0.0 {
                return Err(ModelError::InvalidValue {
                    field: "mean_repeat_spend",
                    index: i,
                    value: m,
                    reason: "must be > 0",
                });
            }
            check_weight(w, i)?;
            checked.push(((x, key(m)), w));
        }
        if checked.is_empty() {
            return Err(ModelError::NoRepeatBuyers);
        }
        let rows: Vec<((u32, f64), f64)> = aggregate(checked)
            .into_iter()
            .map(|((x, m), w)| ((x, f64::from_bits(m)), w))
            .collect();
        Ok(Self {
            groups: groups(rows.iter().map(|r| r.0.0)),
            ln_mean: rows.iter().map(|r| r.0.1.ln()).collect(),
            total: rows.iter().map(|r| r.0.1 * f64::from(r.0.0)).collect(),
            ln_total: rows
                .iter()
                .map(|r| (r.0.1 * f64::from(r.0.0)).ln())
                .collect(),
            weight: rows.iter().map(|r| r.1).collect(),
            total_weight: rows.iter().map(|r| r.1).sum(),
        })
    }

    /// Number of repeat buyers (the sum of the weights).
    pub fn customers(&self) -> f64 {
        self.total_weight
    }

    /// Distinct (x, m̄) patterns.
    pub fn patterns(&self) -> usize {
        self.weight.len()
    }

    /// A systematic subsample, as [`RfmData::subsample`].
    pub(crate) fn subsample(&self) -> Option<SpendData> {
        let every = self.patterns() / COARSE_ROWS;
        if every < 2 {
            return None;
        }
        let rows: Vec<(u32, f64, f64)> = self
            .groups
            .iter()
            .flat_map(|g| {
                (g.start..g.end).map(move |i| (g.x, self.total[i] / f64::from(g.x), self.weight[i]))
            })
            .step_by(every)
            .collect();
        Self::from_patterns(&rows).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_and_groups() {
        let d = RfmData::from_patterns(&[
            (1, 2.0, 5.0, 1.0),
            (0, 0.0, 5.0, 1.0),
            (1, 2.0, 5.0, 2.5),
            (3, 4.0, 4.0, 1.0),
        ])
        .unwrap();
        assert_eq!(d.patterns(), 3);
        assert_eq!(d.customers(), 5.5);
        assert_eq!(d.groups.len(), 3);
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            vec![(0, 0.0, 5.0, 1.0), (1, 2.0, 5.0, 3.5), (3, 4.0, 4.0, 1.0)]
        );
    }

    #[test]
    fn rejects_bad_rows() {
        let code = |p: &[(u32, f64, f64, f64)]| RfmData::from_patterns(p).unwrap_err().code();
        assert_eq!(code(&[]), "empty_data");
        assert_eq!(code(&[(1, 6.0, 5.0, 1.0)]), "recency_exceeds_age");
        assert_eq!(code(&[(1, f64::NAN, 5.0, 1.0)]), "non_finite_value");
        assert_eq!(code(&[(0, 1.0, 5.0, 1.0)]), "invalid_value");
        assert_eq!(code(&[(1, 1.0, 5.0, 0.0)]), "invalid_value");
        assert_eq!(
            SpendData::from_patterns(&[(0, 0.0, 1.0)])
                .unwrap_err()
                .code(),
            "no_repeat_buyers"
        );
        assert_eq!(
            SpendData::from_patterns(&[(2, -1.0, 1.0)])
                .unwrap_err()
                .code(),
            "invalid_value"
        );
    }
}
