//! `lodestar report …`: the analyses on the command line, as readable tables or as JSON
//! (`--json`, the same document the HTTP API answers).

use std::process::ExitCode;

use anyhow::Context;
use lodestar_analytics::rfm::{RfmResult, RfmSpec, rfm};
use lodestar_analytics::spec::{FunnelSpec, LifecycleSpec, RetentionSpec, StagesSpec};
use lodestar_analytics::{
    FunnelOrder, FunnelResult, LifecycleResult, RetentionResult, SnapshotSource, StagesResult,
    retention::RetentionKind,
};
use lodestar_store::EventStore;

use crate::commands::open_store;
use crate::config::Config;

/// Options every report takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Project. 项目
    #[arg(long)]
    pub project: String,
    /// First date (YYYY-MM-DD). 开始日期
    #[arg(long)]
    pub from: String,
    /// Last date, included. 结束日期（含）
    #[arg(long)]
    pub to: String,
    /// IANA time zone, e.g. Asia/Shanghai. 时区 [default: UTC]
    #[arg(long)]
    pub tz: Option<String>,
    /// Print JSON instead of a table. 输出 JSON
    #[arg(long)]
    pub json: bool,
    /// Threads. 线程数 [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Which report.
#[derive(clap::Subcommand, Debug)]
pub enum Report {
    /// Funnel: persons through ordered steps within a window. 漏斗分析
    Funnel {
        #[command(flatten)]
        common: Common,
        /// Step events, comma-separated. 步骤事件（逗号分隔）
        #[arg(long, value_delimiter = ',', required = true)]
        steps: Vec<String>,
        /// Conversion window (30m, 24h, 7d, 2w). 转化窗口 [default: 14d]
        #[arg(long)]
        window: Option<String>,
        /// ordered, strict or any. 步骤顺序 [default: ordered]
        #[arg(long)]
        order: Option<String>,
    },
    /// Cohort retention. 留存分析
    Retention {
        #[command(flatten)]
        common: Common,
        /// Event that puts a person in a cohort. 起始事件
        #[arg(long)]
        start_event: String,
        /// Event that counts as a return [default: the start event]. 回访事件
        #[arg(long)]
        return_event: Option<String>,
        /// day, week or month. 周期 [default: week]
        #[arg(long)]
        interval: Option<String>,
        /// Periods after each cohort. 周期数 [default: 8]
        #[arg(long)]
        periods: Option<usize>,
        /// Every period with the start event is a cohort entry (else the first time only). 循环留存
        #[arg(long)]
        recurring: bool,
        /// Count "on or after" instead of "on". 累计（当期或之后）
        #[arg(long)]
        cumulative: bool,
    },
    /// New / returning / resurrecting / dormant persons per period. 用户生命周期（新增/留存/回流/沉睡）
    Lifecycle {
        #[command(flatten)]
        common: Common,
        /// Event that counts as activity [default: any]. 活跃事件
        #[arg(long)]
        event: Option<String>,
        /// day, week or month. 周期 [default: week]
        #[arg(long)]
        interval: Option<String>,
    },
    /// RFM: recency, frequency, monetary scores and layers of buyers. RFM 分层
    Rfm {
        #[command(flatten)]
        common: Common,
        /// Purchase events, comma-separated; "" for every event with a value. 购买事件 [default: Order Completed]
        #[arg(long, value_delimiter = ',')]
        purchase_events: Option<Vec<String>>,
        /// segments (eleven named layers) or eight (重要价值客户 …). 分层方案 [default: segments]
        #[arg(long)]
        scheme: Option<String>,
        /// Also list this many buyers, highest monetary first. 列出前 N 名客户
        #[arg(long)]
        list: Option<usize>,
    },
    /// Any analysis by name with JSON parameters (see docs/analytics.md), as tables or JSON. 按名称运行任意分析
    Run {
        /// Analysis name: funnel, retention, lifecycle, stages, rfm, paths, stickiness, journey, winback, trends, north_star, nps, kfactor. 分析名称
        kind: String,
        /// Project. 项目
        #[arg(long)]
        project: String,
        /// Parameters as JSON, or @FILE to read them from a file. 参数（JSON 或 @文件）
        #[arg(long)]
        params: String,
        /// Threads. 线程数 [default: all cores]
        #[arg(long)]
        threads: Option<usize>,
        /// Print JSON instead of tables. 输出 JSON
        #[arg(long)]
        json: bool,
    },
    /// Lifecycle stages: onboarding, growth, maturity, dormant, churned, resurrected; flows. 生命周期阶段分布与流转
    Stages {
        #[command(flatten)]
        common: Common,
        /// Rules preset: ecommerce, saas or education. 规则预设 [default: ecommerce]
        #[arg(long)]
        preset: Option<String>,
        /// Distribution at the end of each day, week or month. 周期 [default: week]
        #[arg(long)]
        interval: Option<String>,
    },
}

/// Runs a report.
pub fn run(config: Config, report: Report) -> anyhow::Result<ExitCode> {
    let common = match &report {
        Report::Funnel { common, .. }
        | Report::Retention { common, .. }
        | Report::Lifecycle { common, .. }
        | Report::Rfm { common, .. }
        | Report::Stages { common, .. } => common.clone(),
        Report::Run {
            kind,
            project,
            params,
            threads,
            json,
        } => return run_named(&config, kind, project, params, *threads, *json),
    };
    let threads = common
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let store = open_store(&config)?;
    let project = store.project(&common.project)?;
    let snapshot = store.snapshot(project.id)?;
    let source = SnapshotSource::new(&snapshot);
    let (from, to, tz) = (common.from.clone(), common.to.clone(), common.tz.clone());
    match report {
        Report::Funnel {
            steps,
            window,
            order,
            ..
        } => {
            let order = match order.as_deref() {
                None | Some("ordered") => FunnelOrder::Ordered,
                Some("strict") => FunnelOrder::Strict,
                Some("any") => FunnelOrder::Any,
                Some(other) => {
                    anyhow::bail!("--order: {other:?} is not one of ordered, strict, any")
                }
            };
            let spec = FunnelSpec {
                steps,
                order: Some(order),
                window,
                dropped_at: None,
                max_persons: None,
                exclusions: Vec::new(),
                date_from: from,
                date_to: to,
                timezone: tz,
            };
            let result = lodestar_analytics::funnel(&source, &spec.query(threads)?)?;
            print(common.json, &result, print_funnel)
        }
        Report::Retention {
            start_event,
            return_event,
            interval,
            periods,
            recurring,
            cumulative,
            ..
        } => {
            let spec = RetentionSpec {
                start_event,
                return_event,
                kind: Some(if recurring {
                    RetentionKind::Recurring
                } else {
                    RetentionKind::FirstTime
                }),
                interval,
                periods,
                cumulative: Some(cumulative),
                date_from: from,
                date_to: to,
                timezone: tz,
            };
            let result = lodestar_analytics::retention(&source, &spec.query(threads)?)?;
            print(common.json, &result, print_retention)
        }
        Report::Lifecycle {
            event, interval, ..
        } => {
            let spec = LifecycleSpec {
                event,
                interval,
                date_from: from,
                date_to: to,
                timezone: tz,
            };
            let result = lodestar_analytics::lifecycle(&source, &spec.query(threads)?)?;
            print(common.json, &result, print_lifecycle)
        }
        Report::Stages {
            preset, interval, ..
        } => {
            let spec = StagesSpec {
                preset,
                rules: None,
                interval,
                members: None,
                members_limit: None,
                date_from: from,
                date_to: to,
                timezone: tz,
            };
            let result = lodestar_analytics::stages(&source, &spec.query(threads)?)?;
            print(common.json, &result, print_stages)
        }
        Report::Rfm {
            purchase_events,
            scheme,
            list,
            ..
        } => {
            let spec = RfmSpec {
                // `--purchase-events ""` is the empty list: every event with a value.
                purchase_events: purchase_events
                    .map(|v| v.into_iter().filter(|e| !e.is_empty()).collect()),
                scheme,
                layers: None,
                list,
                date_from: from,
                date_to: to,
                timezone: tz,
            };
            let result = rfm(&source, &spec.query(threads)?)?;
            print(common.json, &result, print_rfm)
        }
        Report::Run { .. } => unreachable!("answered above"),
    }
}

/// `lodestar report run KIND --params JSON|@FILE`.
#[allow(clippy::print_stdout, reason = "the command's output")]
fn run_named(
    config: &Config,
    kind: &str,
    project: &str,
    params: &str,
    threads: Option<usize>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let params = match params.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("reading --params {path}"))?,
        None => params.as_bytes().to_vec(),
    };
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let store = open_store(config)?;
    let project = store.project(project)?;
    let value =
        lodestar_analytics::registry::run_on_store(&store, &project, kind, &params, threads)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let mut out = String::new();
        render(&value, "", &mut out);
        print!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A JSON answer as text: scalars as `key: value`, lists of records as aligned tables,
/// nested objects as indented sections.
fn render(value: &serde_json::Value, indent: &str, out: &mut String) {
    use serde_json::Value;
    let Value::Object(map) = value else {
        out.push_str(&format!("{indent}{}\n", cell(value)));
        return;
    };
    for (key, v) in map {
        match v {
            Value::Object(_) => {
                out.push_str(&format!("{indent}{key}:\n"));
                render(v, &format!("{indent}  "), out);
            }
            Value::Array(items) if items.iter().any(Value::is_object) => {
                out.push_str(&format!("{indent}{key}:\n"));
                table(items, &format!("{indent}  "), out);
            }
            _ => out.push_str(&format!("{indent}{key}: {}\n", cell(v))),
        }
    }
}

/// One value in a cell: numbers to at most 4 decimals, short lists inline.
fn cell(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => {
                let s = format!("{f:.4}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            }
            _ => n.to_string(),
        },
        Value::Array(items) if items.len() <= 16 && !items.iter().any(Value::is_object) => {
            items.iter().map(cell).collect::<Vec<_>>().join(" ")
        }
        Value::Array(items) => format!("[{} items]", items.len()),
        Value::Object(_) | Value::Bool(_) => v.to_string(),
    }
}

/// Records as an aligned table over their keys (in first-seen order); nested records are
/// rendered after the table.
fn table(items: &[serde_json::Value], indent: &str, out: &mut String) {
    let mut columns: Vec<&str> = Vec::new();
    for item in items {
        if let Some(map) = item.as_object() {
            for (k, v) in map {
                if !v.is_object() && !columns.contains(&k.as_str()) {
                    columns.push(k);
                }
            }
        }
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| item.get(c).map_or(String::new(), cell))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{indent}{}\n", padded.join("  ").trim_end())
    };
    out.push_str(&line(columns.iter().map(|c| c.to_string()).collect()));
    for r in rows {
        out.push_str(&line(r));
    }
    for (i, item) in items.iter().enumerate() {
        if let Some(map) = item.as_object() {
            for (k, v) in map {
                if v.is_object() {
                    out.push_str(&format!("{indent}[{i}] {k}:\n"));
                    render(v, &format!("{indent}  "), out);
                }
            }
        }
    }
}

#[allow(clippy::print_stdout, reason = "the command's output")]
fn print_rfm(r: &RfmResult) {
    println!(
        "{} buyers 购买客户, monetary 消费额 {:.2}",
        r.persons, r.monetary
    );
    println!(
        "{:<22} {:<14} {:>9} {:>7} {:>14} {:>10} {:>8} {:>12}",
        "layer", "分层", "persons", "share", "monetary", "recency d", "freq", "avg value"
    );
    for l in &r.layers {
        println!(
            "{:<22} {:<14} {:>9} {:>7} {:>14.2} {:>10.1} {:>8.2} {:>12.2}",
            l.name,
            l.name_zh,
            l.persons,
            pct(l.share),
            l.monetary,
            l.avg_recency_days,
            l.avg_frequency,
            l.avg_monetary
        );
    }
    println!("R x F grid 网格 (persons 人数; rows R 5→1, columns F 1→5):");
    for r_score in (1..=5).rev() {
        let row = &r.grid_persons[r_score - 1];
        println!(
            "  R{r_score} {}",
            row.iter()
                .map(|n| format!("{n:>9}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if !r.list.is_empty() {
        println!(
            "{:>12} {:>9} {:>6} {:>12} {:>3} {:>3} {:>3}  layer",
            "person", "recency", "freq", "monetary", "R", "F", "M"
        );
        for p in &r.list {
            println!(
                "{:>12} {:>9} {:>6} {:>12.2} {:>3} {:>3} {:>3}  {}",
                p.person, p.recency_days, p.frequency, p.monetary, p.r, p.f, p.m, p.layer
            );
        }
    }
}

#[allow(clippy::print_stdout, reason = "the command's output")]
fn print_stages(r: &StagesResult) {
    let mut head = format!("{:<12}", "date 日期");
    for (stage, zh) in &r.stages {
        head.push_str(&format!(" {:>16}", format!("{stage:?} {zh}")));
    }
    println!("{head}");
    for p in &r.points {
        let mut line = format!("{:<12}", p.date);
        for c in &p.counts {
            line.push_str(&format!(" {c:>16}"));
        }
        println!("{line}");
    }
    println!("flows 流转 (first date → last date):");
    for f in &r.flows {
        let from = f
            .from
            .map_or("(new 新)".to_string(), |s| format!("{s:?} {}", s.zh()));
        println!(
            "  {from:<20} → {:<20} {:>10}",
            format!("{:?} {}", f.to, f.to.zh()),
            f.persons
        );
    }
}

#[allow(clippy::print_stdout, reason = "the command's output")]
fn print<T: serde::Serialize>(json: bool, value: &T, table: fn(&T)) -> anyhow::Result<ExitCode> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).context("encoding the report")?
        );
    } else {
        table(value);
    }
    Ok(ExitCode::SUCCESS)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

#[allow(clippy::print_stdout, reason = "the command's output")]
fn print_funnel(r: &FunnelResult) {
    println!(
        "{:<4} {:<28} {:>10} {:>10} {:>10} {:>10}",
        "step", "event 事件", "persons", "of first", "of prev", "dropped"
    );
    for (i, s) in r.steps.iter().enumerate() {
        println!(
            "{:<4} {:<28} {:>10} {:>10} {:>10} {:>10}",
            i + 1,
            s.event,
            s.persons,
            pct(s.conversion_from_first),
            pct(s.conversion_from_previous),
            s.dropped
        );
    }
    if let Some(t) = &r.time_to_convert
        && t.persons > 0
    {
        println!(
            "time to convert 转化用时: median {}, mean {}, p90 {} ({} persons)",
            human(t.median_ms as f64),
            human(t.mean_ms),
            human(t.p90_ms as f64),
            t.persons
        );
    }
}

fn human(ms: f64) -> String {
    let s = ms / 1000.0;
    if s < 120.0 {
        format!("{s:.0}s")
    } else if s < 7200.0 {
        format!("{:.1}m", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86_400.0)
    }
}

#[allow(clippy::print_stdout, reason = "the command's output")]
fn print_retention(r: &RetentionResult) {
    let n = r.cohorts.first().map_or(0, |c| c.values.len());
    let mut head = format!("{:<12} {:>9}", "cohort 批次", "persons");
    for k in 1..n {
        head.push_str(&format!(" {:>7}", format!("+{k}")));
    }
    println!("{head}");
    for c in &r.cohorts {
        let mut line = format!("{:<12} {:>9}", c.date, c.values[0]);
        for v in &c.values[1..] {
            let share = if c.values[0] == 0 {
                0.0
            } else {
                *v as f64 / c.values[0] as f64
            };
            line.push_str(&format!(" {:>7}", pct(share)));
        }
        println!("{line}");
    }
}

#[allow(clippy::print_stdout, reason = "the command's output")]
fn print_lifecycle(r: &LifecycleResult) {
    println!(
        "{:<12} {:>10} {:>10} {:>13} {:>10}",
        "period 周期", "new 新增", "returning", "resurrecting", "dormant"
    );
    for p in &r.periods {
        println!(
            "{:<12} {:>10} {:>10} {:>13} {:>10}",
            p.date, p.new, p.returning, p.resurrecting, p.dormant
        );
    }
}
