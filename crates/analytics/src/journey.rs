//! Customer journey stages (客户旅程): discover 发现 → engage 吸引 → purchase 购买 → use 使用
//! → retain 留存 → refer 推荐, how many persons reached each, and the conversion between
//! consecutive stages.
//!
//! Definitions:
//! - Only events within the date range count: `[start of date_from, start of the day after
//!   date_to)` in the query's time zone. Events with equal times are simultaneous.
//! - Each stage but *retain* is a list of event names; a person *reaches* it with one of
//!   them. An event name belongs to at most one list. Defaults for e-commerce
//!   ([`StageEvents::default`], Segment's e-commerce event names): discover `$pageview`,
//!   `Application Installed`; engage `Product Viewed`, `Products Searched`, `Product Added`,
//!   `Signed Up`; purchase `Order Completed`; use `Product Reviewed`, `$screen`,
//!   `Application Opened`; refer `Invite Sent`, `Referral Sent`, `Product Shared`.
//! - **Retain** is a rule: a purchase or use event at least `retain_after_days` × 24 hours
//!   (default 7) after the person's first purchase in the range.
//! - **Reached, any order**: the person did a stage's event at any time in the range (for
//!   retain: the rule holds). These counts are not nested: a person may refer without having
//!   discovered in the range.
//! - **Reached in order**: a chain of times `t1 <= t2 <= …`, where `t1` is the person's first
//!   discover event and each later stage's time is its first event at or after the previous
//!   stage's time ("at or after": simultaneous events may take either order). For retain, the
//!   first purchase or use event at or after the use time and at least `retain_after_days`
//!   after the chain's purchase time; one use event may thus count for both use and retain.
//!   These counts are nested, like a funnel's (Sensors Data's 有序漏斗 without a window).
//! - **Conversion**: a stage's in-order count over the previous stage's; absent for discover
//!   and when the previous count is 0.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};
use crate::paths::range_ms;
use crate::period::Calendar;
use crate::source::{PersonSource, run_sharded};
use crate::spec::{RangeSpec, with_range};

const DAY_MS: i64 = 86_400_000;

/// Most days `retain_after_days` may be.
pub const MAX_RETAIN_AFTER_DAYS: u32 = 3_650;

/// A journey stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JourneyStage {
    /// 发现: first contact (a page view, an app install).
    Discover,
    /// 吸引: interest (a product viewed, a sign-up).
    Engage,
    /// 购买: a purchase.
    Purchase,
    /// 使用: using what was bought (a review, app use).
    Use,
    /// 留存: active again well after the first purchase.
    Retain,
    /// 推荐: bringing others (an invitation, a referral).
    Refer,
}

impl JourneyStage {
    /// Every stage, in journey order.
    pub const ALL: [JourneyStage; 6] = [
        JourneyStage::Discover,
        JourneyStage::Engage,
        JourneyStage::Purchase,
        JourneyStage::Use,
        JourneyStage::Retain,
        JourneyStage::Refer,
    ];

    /// The English label.
    pub fn en(self) -> &'static str {
        match self {
            JourneyStage::Discover => "Discover",
            JourneyStage::Engage => "Engage",
            JourneyStage::Purchase => "Purchase",
            JourneyStage::Use => "Use",
            JourneyStage::Retain => "Retain",
            JourneyStage::Refer => "Refer",
        }
    }

    /// The Chinese label.
    pub fn zh(self) -> &'static str {
        match self {
            JourneyStage::Discover => "发现",
            JourneyStage::Engage => "吸引",
            JourneyStage::Purchase => "购买",
            JourneyStage::Use => "使用",
            JourneyStage::Retain => "留存",
            JourneyStage::Refer => "推荐",
        }
    }
}

/// The event names of each stage but retain (a rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StageEvents {
    /// 发现.
    pub discover: Vec<String>,
    /// 吸引.
    pub engage: Vec<String>,
    /// 购买; retain counts from the first of these.
    pub purchase: Vec<String>,
    /// 使用 (`use` in JSON).
    #[serde(rename = "use")]
    pub use_events: Vec<String>,
    /// 推荐.
    pub refer: Vec<String>,
}

impl Default for StageEvents {
    /// The e-commerce defaults listed in the module documentation.
    fn default() -> StageEvents {
        let list = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        StageEvents {
            discover: list(&["$pageview", "Application Installed"]),
            engage: list(&[
                "Product Viewed",
                "Products Searched",
                "Product Added",
                "Signed Up",
            ]),
            purchase: list(&["Order Completed"]),
            use_events: list(&["Product Reviewed", "$screen", "Application Opened"]),
            refer: list(&["Invite Sent", "Referral Sent", "Product Shared"]),
        }
    }
}

/// Index of the lists in [`StageEvents::lists`].
const DISCOVER: u8 = 0;
const PURCHASE: u8 = 2;
const USE: u8 = 3;
/// Position of the lists' stages in [`JourneyStage::ALL`].
const LIST_STAGE: [usize; 5] = [0, 1, 2, 3, 5];
const RETAIN: usize = 4;

impl StageEvents {
    /// The lists with their JSON keys, in journey order.
    fn lists(&self) -> [(&'static str, &[String]); 5] {
        [
            ("discover", &self.discover),
            ("engage", &self.engage),
            ("purchase", &self.purchase),
            ("use", &self.use_events),
            ("refer", &self.refer),
        ]
    }

    fn check(&self) -> Result<()> {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (key, list) in self.lists() {
            if list.is_empty() {
                return Err(AnalyticsError::invalid(
                    format!("stages.{key}"),
                    "needs at least one event name",
                ));
            }
            for (i, name) in list.iter().enumerate() {
                let field = format!("stages.{key}[{i}]");
                if name.is_empty() {
                    return Err(AnalyticsError::invalid(field, "empty event name"));
                }
                if let Some((other, _)) = seen.iter().find(|(_, n)| *n == name.as_str()) {
                    return Err(AnalyticsError::invalid(
                        field,
                        format!("{name:?} is also in stages.{other}"),
                    ));
                }
                seen.push((key, name));
            }
        }
        Ok(())
    }
}

/// A journey question.
#[derive(Debug, Clone)]
pub struct JourneyQuery {
    /// Each stage's events.
    pub stages: StageEvents,
    /// Retain: a purchase or use event at least this many days after the first purchase.
    pub retain_after_days: u32,
    /// Time zone of the dates.
    pub calendar: Calendar,
    /// First date.
    pub from: Date,
    /// Last date, included.
    pub to: Date,
    /// Threads to use.
    pub threads: usize,
}

/// One stage's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneyStageCount {
    /// The stage.
    pub stage: JourneyStage,
    /// English label.
    pub label_en: String,
    /// Chinese label.
    pub label_zh: String,
    /// Persons who reached it, in any order.
    pub reached: u64,
    /// Persons who reached it after every earlier stage, in order.
    pub reached_in_order: u64,
    /// `reached_in_order` over the previous stage's; absent for the first stage and when the
    /// previous is 0.
    pub conversion: Option<f64>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneyResult {
    /// Persons with an event in the range.
    pub persons: u64,
    /// Per stage, in journey order.
    pub stages: Vec<JourneyStageCount>,
}

/// Runs the journey analysis.
pub fn journey(source: &dyn PersonSource, q: &JourneyQuery) -> Result<JourneyResult> {
    q.stages.check()?;
    if q.retain_after_days == 0 || q.retain_after_days > MAX_RETAIN_AFTER_DAYS {
        return Err(AnalyticsError::invalid(
            "retain_after_days",
            format!(
                "must be 1 to {MAX_RETAIN_AFTER_DAYS}, not {}",
                q.retain_after_days
            ),
        ));
    }
    if q.to < q.from {
        return Err(AnalyticsError::invalid(
            "date_to",
            format!("{} is before date_from {}", q.to, q.from),
        ));
    }
    let (from_ms, to_ms) = range_ms(&q.calendar, q.from, q.to)?;
    let retain_ms = q.retain_after_days as i64 * DAY_MS;
    // The list of each name id, if any.
    let lists = q.stages.lists();
    let list_of: Vec<Option<u8>> = source
        .names()
        .iter()
        .map(|n| {
            lists
                .iter()
                .position(|(_, l)| l.contains(n))
                .map(|i| i as u8)
        })
        .collect();
    let partials = run_sharded(source, q.threads, |src, shard, shards| {
        let mut persons = 0u64;
        let mut any = [0u64; 6];
        let mut ordered = [0u64; 6];
        src.for_each_person(shard, shards, &mut |_, ev| {
            let ev = ev.within(from_ms, to_ms);
            if ev.is_empty() {
                return;
            }
            persons += 1;
            let mut reached = [false; 6];
            let mut first_purchase: Option<i64> = None;
            // In order: the next stage to reach, and the times of those reached.
            let mut next = 0usize;
            let mut times = [0i64; 6];
            let mut i = 0usize;
            while i < ev.len() {
                // Simultaneous events: any may come first, so try them until none advances.
                let t = ev.ts[i];
                let j = i + ev.ts[i..].partition_point(|&u| u == t);
                for k in i..j {
                    let Some(list) = list_of[ev.names[k] as usize] else {
                        continue;
                    };
                    reached[LIST_STAGE[list as usize]] = true;
                    if list == PURCHASE && first_purchase.is_none() {
                        first_purchase = Some(t);
                    }
                    if (list == PURCHASE || list == USE)
                        && first_purchase.is_some_and(|p| t - p >= retain_ms)
                    {
                        reached[RETAIN] = true;
                    }
                }
                loop {
                    let before = next;
                    for k in i..j {
                        let Some(list) = list_of[ev.names[k] as usize] else {
                            continue;
                        };
                        let fits = if next == RETAIN {
                            (list == PURCHASE || list == USE)
                                && t - times[LIST_STAGE[PURCHASE as usize]] >= retain_ms
                        } else {
                            next < 6 && LIST_STAGE[list as usize] == next
                        };
                        if fits {
                            times[next] = t;
                            next += 1;
                        }
                    }
                    if next == before || next == 6 {
                        break;
                    }
                }
                i = j;
            }
            debug_assert!(next == 0 || reached[DISCOVER as usize]);
            for s in 0..6 {
                any[s] += reached[s] as u64;
                ordered[s] += (s < next) as u64;
            }
        });
        (persons, any, ordered)
    });
    let mut persons = 0u64;
    let mut any = [0u64; 6];
    let mut ordered = [0u64; 6];
    for (p, a, o) in partials {
        persons += p;
        for s in 0..6 {
            any[s] += a[s];
            ordered[s] += o[s];
        }
    }
    Ok(JourneyResult {
        persons,
        stages: JourneyStage::ALL
            .iter()
            .enumerate()
            .map(|(s, &stage)| JourneyStageCount {
                stage,
                label_en: stage.en().to_string(),
                label_zh: stage.zh().to_string(),
                reached: any[s],
                reached_in_order: ordered[s],
                conversion: (s > 0 && ordered[s - 1] > 0)
                    .then(|| ordered[s] as f64 / ordered[s - 1] as f64),
            })
            .collect(),
    })
}

/// Journey stages, as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JourneySpec {
    /// Each stage's event names; the e-commerce defaults for the stages left out.
    #[serde(default)]
    pub stages: StageEvents,
    /// Retain after this many days from the first purchase; default 7.
    #[serde(default)]
    pub retain_after_days: Option<u32>,
    /// First date (`YYYY-MM-DD`).
    pub date_from: String,
    /// Last date, included.
    pub date_to: String,
    /// IANA zone name; `UTC` when absent.
    #[serde(default)]
    pub timezone: Option<String>,
}

with_range!(JourneySpec);

impl JourneySpec {
    /// The checked query.
    pub fn query(&self, threads: usize) -> Result<JourneyQuery> {
        let range: RangeSpec<'_> = self.range();
        let (from, to) = range.dates()?;
        self.stages.check()?;
        let retain_after_days = self.retain_after_days.unwrap_or(7);
        if retain_after_days == 0 || retain_after_days > MAX_RETAIN_AFTER_DAYS {
            return Err(AnalyticsError::invalid(
                "retain_after_days",
                format!("must be 1 to {MAX_RETAIN_AFTER_DAYS}, not {retain_after_days}"),
            ));
        }
        Ok(JourneyQuery {
            stages: self.stages.clone(),
            retain_after_days,
            calendar: range.calendar()?,
            from,
            to,
            threads,
        })
    }
}
