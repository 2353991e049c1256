//! RFM: recency, frequency and monetary value per buyer; quintile scores; named layers; the
//! R × F grid.
//!
//! Over the purchases made in the date range (events named in `purchase_events`, or, when
//! that list is empty, every event with a value):
//! - **recency** is the time from a buyer's last purchase to the end of the range (reported
//!   in whole days, ranked in milliseconds);
//! - **frequency** is the number of purchases;
//! - **monetary** is the sum of their values (a purchase without a value adds 0).
//!
//! Persons without a purchase in the range are not scored.
//!
//! **Scores** are quintiles 1–5 by rank, ties sharing a score: a buyer whose value is above
//! those of `k` of the `n` buyers scores `1 + ⌊5k / n⌋`, so 5 is the best fifth (the most
//! recent, most frequent, highest spending). Ranking on the last purchase's time makes the
//! most recent buyers score 5 in R.
//!
//! **Layers** come from one of two schemes:
//! - `segments` (default): the common eleven named cells of the R × F score grid, first
//!   matching rule wins: Champions 冠军客户 (R 5, F 4–5), Loyal 忠诚客户 (R 3–4, F 4–5),
//!   Potential loyalist 潜力客户 (R 4–5, F 2–3), New 新客户 (R 5, F 1), Promising 有潜力的新客
//!   (R 4, F 1), Need attention 需要关注 (R 3, F 3), About to sleep 即将沉睡 (R 3, F 1–2), Can't
//!   lose 不能失去 (R 1–2, F 5), At risk 流失风险 (R 1–2, F 3–4), Hibernating 沉睡客户 (R 2,
//!   F 1–2), Lost 已流失 (R 1, F 1–2). A project may give its own rules instead.
//! - `eight`: the eight classes Chinese operations teams use, each of R, F, M "high" or "low"
//!   against the buyers' mean (R high: last purchase later than the mean last purchase; F and
//!   M high: above their means): 重要价值 (high, high, high), 重要发展 (high, low, high), 重要保持
//!   (low, high, high), 重要挽留 (low, low, high), and the 一般 (general) four with low M.

use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};
use crate::source::{Events, PersonSource, run_sharded};
use crate::spec::{RangeSpec, with_range};

const DAY_MS: i64 = 86_400_000;

/// A layer rule of the `segments` scheme: a rectangle of the R × F score grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerRule {
    /// Stable key (`champions`).
    pub key: String,
    /// English name.
    pub name: String,
    /// Chinese name.
    pub name_zh: String,
    /// Lowest and highest R score, inclusive.
    pub r: [u8; 2],
    /// Lowest and highest F score, inclusive.
    pub f: [u8; 2],
}

impl LayerRule {
    fn new(key: &str, name: &str, name_zh: &str, r: [u8; 2], f: [u8; 2]) -> LayerRule {
        LayerRule {
            key: key.to_string(),
            name: name.to_string(),
            name_zh: name_zh.to_string(),
            r,
            f,
        }
    }

    fn holds(&self, r: u8, f: u8) -> bool {
        (self.r[0]..=self.r[1]).contains(&r) && (self.f[0]..=self.f[1]).contains(&f)
    }

    /// The default eleven layers; together they cover every cell of the grid.
    pub fn defaults() -> Vec<LayerRule> {
        vec![
            LayerRule::new("champions", "Champions", "冠军客户", [5, 5], [4, 5]),
            LayerRule::new("loyal", "Loyal", "忠诚客户", [3, 4], [4, 5]),
            LayerRule::new(
                "potential_loyalist",
                "Potential loyalist",
                "潜力客户",
                [4, 5],
                [2, 3],
            ),
            LayerRule::new("new", "New", "新客户", [5, 5], [1, 1]),
            LayerRule::new("promising", "Promising", "有潜力的新客", [4, 4], [1, 1]),
            LayerRule::new(
                "need_attention",
                "Need attention",
                "需要关注",
                [3, 3],
                [3, 3],
            ),
            LayerRule::new(
                "about_to_sleep",
                "About to sleep",
                "即将沉睡",
                [3, 3],
                [1, 2],
            ),
            LayerRule::new("cant_lose", "Can't lose", "不能失去", [1, 2], [5, 5]),
            LayerRule::new("at_risk", "At risk", "流失风险", [1, 2], [3, 4]),
            LayerRule::new("hibernating", "Hibernating", "沉睡客户", [2, 2], [1, 2]),
            LayerRule::new("lost", "Lost", "已流失", [1, 1], [1, 2]),
        ]
    }
}

/// The eight classes of the `eight` scheme, indexed by `r_high << 2 | f_high << 1 | m_high`.
const EIGHT: [(&str, &str, &str); 8] = [
    ("general_win_back", "General win-back", "一般挽留客户"),
    ("important_win_back", "Important win-back", "重要挽留客户"),
    ("general_retention", "General retention", "一般保持客户"),
    ("important_retention", "Important retention", "重要保持客户"),
    ("general_development", "General development", "一般发展客户"),
    (
        "important_development",
        "Important development",
        "重要发展客户",
    ),
    ("general_value", "General value", "一般价值客户"),
    ("important_value", "Important value", "重要价值客户"),
];

/// How buyers are put in layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Rules over the R × F score grid, first match wins (unmatched buyers go to `other`).
    Segments(Vec<LayerRule>),
    /// High/low against the mean in each of R, F and M.
    Eight,
}

impl Scheme {
    /// The layers (key, English name, Chinese name) in scheme order, without `other`.
    pub fn layers(&self) -> Vec<(String, String, String)> {
        match self {
            Scheme::Segments(rules) => rules
                .iter()
                .map(|r| (r.key.clone(), r.name.clone(), r.name_zh.clone()))
                .collect(),
            Scheme::Eight => EIGHT
                .iter()
                .rev()
                .map(|(k, e, z)| (k.to_string(), e.to_string(), z.to_string()))
                .collect(),
        }
    }
}

/// An RFM question.
#[derive(Debug, Clone)]
pub struct RfmQuery {
    /// Events that are purchases; every event with a value when empty.
    pub purchase_events: Vec<String>,
    /// Start of the range (ms, inclusive).
    pub from_ms: i64,
    /// End of the range (ms, exclusive); recency is measured to here.
    pub to_ms: i64,
    /// Layer scheme.
    pub scheme: Scheme,
    /// List up to this many buyers with their scores (0: none), highest monetary first.
    pub list: usize,
    /// Threads to use.
    pub threads: usize,
}

/// One buyer's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Buyer {
    person: u64,
    last_ts: i64,
    frequency: u64,
    monetary: f64,
}

/// One layer's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Stable key.
    pub key: String,
    /// English name.
    pub name: String,
    /// Chinese name.
    pub name_zh: String,
    /// Buyers in it.
    pub persons: u64,
    /// Their share of all buyers.
    pub share: f64,
    /// Their summed monetary value.
    pub monetary: f64,
    /// Mean recency, days.
    pub avg_recency_days: f64,
    /// Mean purchases.
    pub avg_frequency: f64,
    /// Mean monetary value.
    pub avg_monetary: f64,
}

/// A listed buyer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredPerson {
    /// Canonical person id.
    pub person: u64,
    /// Whole days from the last purchase to the end of the range.
    pub recency_days: i64,
    /// Purchases.
    pub frequency: u64,
    /// Summed value.
    pub monetary: f64,
    /// Scores 1–5.
    pub r: u8,
    /// Scores 1–5.
    pub f: u8,
    /// Scores 1–5.
    pub m: u8,
    /// Layer key.
    pub layer: String,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfmResult {
    /// Buyers scored.
    pub persons: u64,
    /// Summed monetary value of all buyers.
    pub monetary: f64,
    /// Score boundaries per dimension: a buyer scores `s` (2–5) or more when their value is
    /// above `thresholds[s - 2]` (R: last purchase time in ms; F: purchases; M: value).
    pub thresholds: Thresholds,
    /// The layers, in scheme order, with `other` last when some buyer matched no rule.
    pub layers: Vec<Layer>,
    /// `grid[r - 1][f - 1]`: buyers with R score r and F score f.
    pub grid_persons: [[u64; 5]; 5],
    /// `grid[r - 1][f - 1]`: their summed monetary value.
    pub grid_monetary: [[f64; 5]; 5],
    /// Listed buyers (see [`RfmQuery::list`]).
    pub list: Vec<ScoredPerson>,
}

/// Score boundaries (see [`RfmResult::thresholds`]); empty when there are no buyers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Last purchase time, ms.
    pub r: Vec<i64>,
    /// Purchases.
    pub f: Vec<u64>,
    /// Value.
    pub m: Vec<f64>,
}

impl RfmQuery {
    fn check(&self) -> Result<()> {
        if self.to_ms <= self.from_ms {
            return Err(AnalyticsError::invalid("date_to", "the range is empty"));
        }
        if let Some(i) = self.purchase_events.iter().position(String::is_empty) {
            return Err(AnalyticsError::invalid(
                format!("purchase_events[{i}]"),
                "empty event name",
            ));
        }
        if let Scheme::Segments(rules) = &self.scheme {
            if rules.is_empty() {
                return Err(AnalyticsError::invalid("layers", "no layer rules"));
            }
            for (i, rule) in rules.iter().enumerate() {
                for (axis, [lo, hi]) in [("r", rule.r), ("f", rule.f)] {
                    if !(1..=5).contains(&lo) || !(1..=5).contains(&hi) || lo > hi {
                        return Err(AnalyticsError::invalid(
                            format!("layers[{i}].{axis}"),
                            format!("[{lo}, {hi}] is not a score range within 1..5"),
                        ));
                    }
                }
                if rule.key.is_empty() {
                    return Err(AnalyticsError::invalid(format!("layers[{i}].key"), "empty"));
                }
            }
        }
        Ok(())
    }
}

/// The boundaries that split `n` sorted-by-`cmp` values into score quintiles: the value of
/// rank `⌈(s − 1)·n / 5⌉ − 1` for s = 2..5 (a value scores s or more when above it).
fn thresholds<T: Copy>(values: &mut [T], cmp: impl Fn(&T, &T) -> std::cmp::Ordering) -> Vec<T> {
    let n = values.len();
    if n == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(4);
    // From the top down: each selection leaves everything below its rank in front of it, so
    // the next one searches only that prefix; equal ranks reuse the element in place.
    let mut end = n;
    for s in (2..=5usize).rev() {
        // ≥ 1 because s ≥ 2 and n ≥ 1.
        let idx = ((s - 1) * n).div_ceil(5) - 1;
        if idx < end {
            values[..end].select_nth_unstable_by(idx, &cmp);
        }
        out.push(values[idx]);
        end = idx;
    }
    out.reverse();
    out
}

/// The score of `x` given [`thresholds`]: 1 plus the boundaries it is above.
fn score<T>(x: &T, bounds: &[T], above: impl Fn(&T, &T) -> bool) -> u8 {
    1 + bounds.iter().filter(|b| above(x, b)).count() as u8
}

/// Runs RFM over `source`.
pub fn rfm(source: &dyn PersonSource, q: &RfmQuery) -> Result<RfmResult> {
    q.check()?;
    let names = source.names();
    let wanted: Vec<bool> = names
        .iter()
        .map(|n| q.purchase_events.is_empty() || q.purchase_events.contains(n))
        .collect();
    let any_valued = q.purchase_events.is_empty();
    let parts = run_sharded(source, q.threads, |src, shard, shards| {
        let mut buyers = Vec::new();
        let mut hits: Vec<u32> = Vec::new();
        // Sums, counts and a maximum need no order: a person's slices may come one call
        // each (consecutively), sparing the source from merging them.
        let mut current: Option<Buyer> = None;
        src.for_each_person_unordered(shard, shards, &mut |person, ev: Events<'_>| {
            // Two passes: the names alone pick the candidate purchases without a branch per
            // event (most events are none, and a mispredicted branch costs more than the
            // work); only those are read further. Reading every event's time and value too
            // would triple the memory traffic of a scan this light.
            // Grown, never cleared: every slot read below was written for this person first.
            if hits.len() <= ev.len() {
                hits.resize(ev.len() + 1, 0);
            }
            let mut found = 0usize;
            if any_valued {
                for (i, v) in ev.values.iter().enumerate() {
                    hits[found] = i as u32;
                    found += usize::from(!v.is_nan());
                }
            } else {
                for (i, &name) in ev.names.iter().enumerate() {
                    hits[found] = i as u32;
                    found += usize::from(wanted[name as usize]);
                }
            }
            if current.is_some_and(|b| b.person != person.0) {
                let done = current.take().expect("checked");
                if done.frequency > 0 {
                    buyers.push(done);
                }
            }
            let b = current.get_or_insert(Buyer {
                person: person.0,
                last_ts: i64::MIN,
                frequency: 0,
                monetary: 0.0,
            });
            for &i in &hits[..found] {
                let (ts, v) = (ev.ts[i as usize], ev.values[i as usize]);
                if ts < q.from_ms || ts >= q.to_ms {
                    continue;
                }
                b.last_ts = b.last_ts.max(ts);
                b.frequency += 1;
                if !v.is_nan() {
                    b.monetary += v;
                }
            }
        });
        if let Some(done) = current.filter(|b| b.frequency > 0) {
            buyers.push(done);
        }
        buyers
    });
    let buyers: Vec<Buyer> = parts.into_iter().flatten().collect();
    Ok(summarise(&buyers, q))
}

fn summarise(buyers: &[Buyer], q: &RfmQuery) -> RfmResult {
    let n = buyers.len();
    let mut r: Vec<i64> = buyers.iter().map(|b| b.last_ts).collect();
    let mut f: Vec<u64> = buyers.iter().map(|b| b.frequency).collect();
    let mut m: Vec<f64> = buyers.iter().map(|b| b.monetary).collect();
    let t = Thresholds {
        r: thresholds(&mut r, i64::cmp),
        f: thresholds(&mut f, u64::cmp),
        m: thresholds(&mut m, f64::total_cmp),
    };
    let rules = q.scheme.layers();
    let eight = matches!(q.scheme, Scheme::Eight);
    let nf = n.max(1) as f64;
    let mean_last = buyers.iter().map(|b| b.last_ts as f64).sum::<f64>() / nf;
    let mean_f = buyers.iter().map(|b| b.frequency as f64).sum::<f64>() / nf;
    let mean_m = buyers.iter().map(|b| b.monetary).sum::<f64>() / nf;
    // Per layer (the rules', then `other`): persons, monetary, recency ms, frequency.
    let mut sums = vec![(0u64, 0.0f64, 0.0f64, 0u64); rules.len() + 1];
    let mut grid_persons = [[0u64; 5]; 5];
    let mut grid_monetary = [[0.0f64; 5]; 5];
    let mut listed: Vec<ScoredPerson> = Vec::new();
    for b in buyers {
        let rs = score(&b.last_ts, &t.r, |x, y| x > y);
        let fs = score(&b.frequency, &t.f, |x, y| x > y);
        let ms = score(&b.monetary, &t.m, |x, y| x.total_cmp(y).is_gt());
        let layer = if eight {
            let idx = usize::from(b.last_ts as f64 > mean_last) << 2
                | usize::from(b.frequency as f64 > mean_f) << 1
                | usize::from(b.monetary > mean_m);
            // `rules` lists EIGHT reversed.
            7 - idx
        } else {
            match &q.scheme {
                Scheme::Segments(rules) => rules
                    .iter()
                    .position(|rule| rule.holds(rs, fs))
                    .unwrap_or(rules.len()),
                Scheme::Eight => unreachable!("handled above"),
            }
        };
        let s = &mut sums[layer];
        s.0 += 1;
        s.1 += b.monetary;
        s.2 += (q.to_ms - b.last_ts) as f64;
        s.3 += b.frequency;
        grid_persons[rs as usize - 1][fs as usize - 1] += 1;
        grid_monetary[rs as usize - 1][fs as usize - 1] += b.monetary;
        if q.list > 0 {
            listed.push(ScoredPerson {
                person: b.person,
                recency_days: (q.to_ms - b.last_ts).div_euclid(DAY_MS),
                frequency: b.frequency,
                monetary: b.monetary,
                r: rs,
                f: fs,
                m: ms,
                layer: rules
                    .get(layer)
                    .map_or("other", |l| l.0.as_str())
                    .to_string(),
            });
        }
    }
    let mut layers: Vec<Layer> = Vec::with_capacity(rules.len() + 1);
    for (i, s) in sums.iter().enumerate() {
        let (key, name, name_zh) = match rules.get(i) {
            Some(l) => l.clone(),
            None if s.0 == 0 => continue,
            None => ("other".into(), "Other".into(), "其他".into()),
        };
        let p = s.0.max(1) as f64;
        layers.push(Layer {
            key,
            name,
            name_zh,
            persons: s.0,
            share: s.0 as f64 / nf,
            monetary: s.1,
            avg_recency_days: s.2 / p / DAY_MS as f64,
            avg_frequency: s.3 as f64 / p,
            avg_monetary: s.1 / p,
        });
    }
    if q.list > 0 {
        listed.sort_by(|a, b| {
            b.monetary
                .total_cmp(&a.monetary)
                .then(a.person.cmp(&b.person))
        });
        listed.truncate(q.list);
    }
    RfmResult {
        persons: n as u64,
        monetary: buyers.iter().map(|b| b.monetary).sum(),
        thresholds: t,
        layers,
        grid_persons,
        grid_monetary,
        list: listed,
    }
}

/// RFM, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RfmSpec {
    /// Purchase events; default `["Order Completed"]`. An empty list means every event with
    /// a value.
    #[serde(default)]
    pub purchase_events: Option<Vec<String>>,
    /// `segments` (default) or `eight`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// The project's own layer rules for the `segments` scheme.
    #[serde(default)]
    pub layers: Option<Vec<LayerRule>>,
    /// List this many buyers, highest monetary first; default 0.
    #[serde(default)]
    pub list: Option<usize>,
    /// First date (`YYYY-MM-DD`).
    pub date_from: String,
    /// Last date, included; recency is measured to its end.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

with_range!(RfmSpec);

/// Most buyers a query may list.
pub const MAX_LIST: usize = 100_000;

impl RfmSpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<RfmQuery> {
        let (from_ms, to_ms) = self.range().bounds_ms()?;
        let scheme = match self.scheme.as_deref() {
            None | Some("segments") => {
                Scheme::Segments(self.layers.clone().unwrap_or_else(LayerRule::defaults))
            }
            Some("eight") => {
                if self.layers.is_some() {
                    return Err(AnalyticsError::invalid(
                        "layers",
                        "layer rules apply to the segments scheme only",
                    ));
                }
                Scheme::Eight
            }
            Some(other) => {
                return Err(AnalyticsError::invalid(
                    "scheme",
                    format!("{other:?} is not one of segments, eight"),
                ));
            }
        };
        let list = self.list.unwrap_or(0);
        if list > MAX_LIST {
            return Err(AnalyticsError::invalid(
                "list",
                format!("at most {MAX_LIST} buyers can be listed"),
            ));
        }
        let q = RfmQuery {
            purchase_events: self
                .purchase_events
                .clone()
                .unwrap_or_else(|| vec!["Order Completed".to_string()]),
            from_ms,
            to_ms,
            scheme,
            list,
            threads,
        };
        q.check()?;
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layers_cover_the_grid_once_each_cell() {
        let rules = LayerRule::defaults();
        for r in 1..=5 {
            for f in 1..=5 {
                let n = rules.iter().filter(|l| l.holds(r, f)).count();
                assert_eq!(n, 1, "cell R{r} F{f} is in {n} layers");
            }
        }
    }

    #[test]
    fn thresholds_give_ties_one_score() {
        // 10 values: each fifth has 2; ties straddle the boundaries.
        let vals = [1u64, 1, 1, 2, 3, 3, 3, 3, 9, 9];
        let mut v = vals.to_vec();
        let t = thresholds(&mut v, u64::cmp);
        let scores: Vec<u8> = vals.iter().map(|x| score(x, &t, |a, b| a > b)).collect();
        // 1 + ⌊5k/n⌋ with k = values strictly below.
        let naive: Vec<u8> = vals
            .iter()
            .map(|x| 1 + (5 * vals.iter().filter(|y| *y < x).count() / vals.len()) as u8)
            .collect();
        assert_eq!(scores, naive);
        assert_eq!(scores, vec![1, 1, 1, 2, 3, 3, 3, 3, 5, 5]);
    }
}
