//! From a transaction log to the per-customer statistics the models take: frequency, recency,
//! age, mean repeat spend and (optionally) holdout repeat counts.
//!
//! Time is measured in days since an epoch the caller chooses; a transaction at time `t`
//! belongs to day ⌊t⌋ and purchases on the same day are merged into one (their amounts summed).
//! The summary is expressed in a [`TimeUnit`] (days or weeks). Nothing here reads a clock.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// The unit of recency, age and prediction horizons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// One day.
    Days,
    /// Seven days.
    Weeks,
}

impl TimeUnit {
    /// Length of one unit in days.
    pub fn days(self) -> f64 {
        match self {
            Self::Days => 1.0,
            Self::Weeks => 7.0,
        }
    }

    /// Length of one month (30.4375 days, a Gregorian year / 12) in this unit:
    /// 30.4375 days or about 4.348 weeks.
    pub fn month(self) -> f64 {
        crate::clv::MONTH_IN_DAYS / self.days()
    }
}

/// One purchase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction<K> {
    /// Who bought.
    pub customer: K,
    /// When, in days since the caller's epoch (fractions are times of day; the day is ⌊t⌋).
    pub time_days: f64,
    /// How much was spent.
    pub amount: f64,
}

impl<K> Transaction<K> {
    /// A purchase on a whole day (days since the epoch).
    pub fn on_day(customer: K, day: i64, amount: f64) -> Self {
        Self {
            customer,
            time_days: day as f64,
            amount,
        }
    }
}

/// Where the calibration (and optional holdout) periods end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SummaryOptions {
    /// Last day of the calibration period, in days since the epoch (inclusive: a purchase on
    /// this day counts). The age of a customer is `calibration_end_day − first purchase day`.
    pub calibration_end_day: f64,
    /// Last day of the holdout period (inclusive), when a calibration/holdout split is wanted:
    /// purchase days after `calibration_end_day` and up to this day are counted as
    /// [`CustomerSummary::holdout_frequency`]; later ones are ignored.
    pub holdout_end_day: Option<f64>,
    /// Unit of recency and age.
    pub unit: TimeUnit,
}

/// One customer's calibration-period statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerSummary<K> {
    /// The customer.
    pub customer: K,
    /// x: number of purchase days after the first one (repeat purchases).
    pub frequency: u32,
    /// tₓ: last purchase day − first purchase day, in the unit; 0 when x = 0.
    pub recency: f64,
    /// T: calibration end − first purchase day, in the unit.
    pub age: f64,
    /// Mean of the day totals after the first purchase day; 0 when x = 0.
    pub mean_repeat_spend: f64,
    /// Total spent on the first purchase day (not part of the spend model's input).
    pub first_day_spend: f64,
    /// Purchase days in the holdout period, when a holdout end was given.
    pub holdout_frequency: Option<u32>,
    /// Length of the holdout period in the unit (holdout end − calibration end), when given.
    pub holdout_length: Option<f64>,
}

/// Summarises a transaction log per customer, in ascending customer order.
///
/// Customers whose first purchase is after the calibration end are left out (they do not exist
/// yet in the calibration period). Transactions may come in any order.
///
/// # Errors
/// [`ModelError::EmptyData`] if no customer has a purchase in the calibration period,
/// [`ModelError::NonFinite`] for a NaN or infinite time or amount (or option),
/// [`ModelError::InvalidValue`] for a holdout end before the calibration end.
pub fn summarize<K: Ord + Clone>(
    transactions: &[Transaction<K>],
    options: &SummaryOptions,
) -> Result<Vec<CustomerSummary<K>>, ModelError> {
    let end = options.calibration_end_day;
    if !end.is_finite() {
        return Err(ModelError::NonFinite {
            field: "calibration_end_day",
            index: 0,
        });
    }
    if let Some(h) = options.holdout_end_day {
        if !h.is_finite() {
            return Err(ModelError::NonFinite {
                field: "holdout_end_day",
                index: 0,
            });
        }
        if h < end {
            return Err(ModelError::InvalidValue {
                field: "holdout_end_day",
                index: 0,
                value: h,
                reason: "must not be before the calibration end",
            });
        }
    }
    for (index, t) in transactions.iter().enumerate() {
        if !t.time_days.is_finite() {
            return Err(ModelError::NonFinite {
                field: "time_days",
                index,
            });
        }
        if !t.amount.is_finite() {
            return Err(ModelError::NonFinite {
                field: "amount",
                index,
            });
        }
    }

    let mut order: Vec<(f64, usize)> = transactions
        .iter()
        .enumerate()
        .map(|(i, t)| (t.time_days.floor(), i))
        .collect();
    order.sort_by(|a, b| {
        transactions[a.1]
            .customer
            .cmp(&transactions[b.1].customer)
            .then(a.0.total_cmp(&b.0))
    });

    let unit = options.unit.days();
    let mut out = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let customer = &transactions[order[start].1].customer;
        let mut stop = start;
        while stop < order.len() && transactions[order[stop].1].customer == *customer {
            stop += 1;
        }
        if let Some(s) = summarize_one(&order[start..stop], transactions, options, unit) {
            out.push(CustomerSummary {
                customer: customer.clone(),
                ..s
            });
        }
        start = stop;
    }
    if out.is_empty() {
        return Err(ModelError::EmptyData);
    }
    Ok(out)
}

/// One customer's rows, sorted by day. `customer` in the result is filled by the caller.
fn summarize_one<K: Clone>(
    rows: &[(f64, usize)],
    transactions: &[Transaction<K>],
    options: &SummaryOptions,
    unit: f64,
) -> Option<CustomerSummary<K>> {
    let end = options.calibration_end_day;
    let first_day = rows[0].0;
    if first_day > end {
        return None;
    }
    let mut frequency = 0u32;
    let mut last_day = first_day;
    let mut first_day_spend = 0.0;
    let mut repeat_spend = 0.0;
    let mut holdout = 0u32;
    let mut previous_day = f64::NEG_INFINITY;
    for &(day, i) in rows {
        let amount = transactions[i].amount;
        let new_day = day != previous_day;
        previous_day = day;
        if day <= end {
            if day == first_day {
                first_day_spend += amount;
            } else {
                if new_day {
                    frequency += 1;
                    last_day = day;
                }
                repeat_spend += amount;
            }
        } else if options.holdout_end_day.is_some_and(|h| day <= h) && new_day {
            holdout += 1;
        }
    }
    Some(CustomerSummary {
        customer: transactions[rows[0].1].customer.clone(),
        frequency,
        recency: if frequency == 0 {
            0.0
        } else {
            (last_day - first_day) / unit
        },
        age: (end - first_day) / unit,
        mean_repeat_spend: if frequency == 0 {
            0.0
        } else {
            repeat_spend / f64::from(frequency)
        },
        first_day_spend,
        holdout_frequency: options.holdout_end_day.map(|_| holdout),
        holdout_length: options.holdout_end_day.map(|h| (h - end) / unit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_same_day_and_measures_in_weeks() {
        let tx = vec![
            Transaction {
                customer: "b",
                time_days: 14.9,
                amount: 5.0,
            },
            Transaction::on_day("a", 0, 10.0),
            Transaction {
                customer: "a",
                time_days: 7.2,
                amount: 4.0,
            },
            Transaction {
                customer: "a",
                time_days: 7.8,
                amount: 6.0,
            },
            Transaction::on_day("a", 21, 20.0),
            Transaction::on_day("a", 30, 99.0),
            Transaction::on_day("c", 29, 1.0),
        ];
        let opts = SummaryOptions {
            calibration_end_day: 28.0,
            holdout_end_day: Some(35.0),
            unit: TimeUnit::Weeks,
        };
        let s = summarize(&tx, &opts).unwrap();
        assert_eq!(s.len(), 2, "c first buys after the calibration end");
        assert_eq!(s[0].customer, "a");
        assert_eq!(s[0].frequency, 2);
        assert_eq!(s[0].recency, 3.0);
        assert_eq!(s[0].age, 4.0);
        assert_eq!(s[0].mean_repeat_spend, 15.0);
        assert_eq!(s[0].first_day_spend, 10.0);
        assert_eq!(s[0].holdout_frequency, Some(1));
        assert_eq!(s[0].holdout_length, Some(1.0));
        assert_eq!(
            (
                s[1].frequency,
                s[1].recency,
                s[1].age,
                s[1].mean_repeat_spend
            ),
            (0, 0.0, 2.0, 0.0)
        );
    }

    #[test]
    fn errors() {
        let opts = SummaryOptions {
            calibration_end_day: 10.0,
            holdout_end_day: None,
            unit: TimeUnit::Days,
        };
        assert_eq!(summarize::<u32>(&[], &opts), Err(ModelError::EmptyData));
        let bad = [Transaction {
            customer: 1,
            time_days: f64::NAN,
            amount: 1.0,
        }];
        assert_eq!(
            summarize(&bad, &opts).unwrap_err().code(),
            "non_finite_value"
        );
        let late = [Transaction::on_day(1, 11, 1.0)];
        assert_eq!(summarize(&late, &opts), Err(ModelError::EmptyData));
        let opts = SummaryOptions {
            holdout_end_day: Some(9.0),
            ..opts
        };
        assert_eq!(summarize(&late, &opts).unwrap_err().code(), "invalid_value");
    }
}
