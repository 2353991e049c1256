//! `lodestar demo`: generate a realistic synthetic shop and serve it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use lodestar_core::Timestamp;
use lodestar_store::{AppendBatch, AppendPipeline, EventStore};
use lodestar_synth::SynthConfig;

use crate::commands::{clock, open_store, serve_store};
use crate::config::Config;

/// The folder the demo uses unless `--data-dir` (or `LODESTAR_DATA_DIR`) says otherwise.
pub const DEMO_DATA_DIR: &str = "lodestar-demo-data";
const PROJECT: &str = "demo";
const BATCH: usize = 10_000;

/// Options of `lodestar demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Users arriving over the period. 用户数
    #[arg(long, default_value_t = 20_000)]
    pub users: u64,
    /// Length of the period in days, ending today. 天数（截至今天）
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Random seed: the same seed gives the same data. 随机种子
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Address to serve on. 监听地址 [default: 127.0.0.1:8080]
    #[arg(long, env = "LODESTAR_LISTEN")]
    pub listen: Option<String>,
    /// Generate only; do not start the server. 只生成数据，不启动服务
    #[arg(long)]
    pub no_serve: bool,
    /// Delete the demo data folder first and generate anew. 清空后重新生成
    #[arg(long)]
    pub reset: bool,
    #[arg(skip = PathBuf::from(DEMO_DATA_DIR))]
    pub data_dir: PathBuf,
}

/// Generates (unless the demo project already holds data) and serves.
pub fn run(config: Config, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = config.store.data_dir.clone();
    if args.reset && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let store = open_store(&config)?;
    let key_file = dir.join("demo-write-key.txt");
    let project = match store.project(PROJECT) {
        Ok(p) => p,
        Err(_) => {
            let (p, key) = store.create_project(PROJECT)?;
            std::fs::write(&key_file, format!("{key}\n"))
                .with_context(|| format!("writing {}", key_file.display()))?;
            p
        }
    };
    let existing = store.snapshot(project.id)?.events();
    if existing > 0 {
        eprintln!(
            "the demo project already holds {existing} events; use --reset to generate anew / 演示项目已有数据，--reset 可重新生成"
        );
    } else {
        let now = clock().now();
        let start = Timestamp(now.millis() - args.days as i64 * Timestamp::DAY);
        let synth = SynthConfig {
            seed: args.seed,
            users: args.users,
            days: args.days,
            start,
            ..SynthConfig::default()
        };
        let started = Instant::now();
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} generating demo data / 生成演示数据: {pos} events, {per_sec}",
            )
            .expect("valid template"),
        );
        let mut pipeline = AppendPipeline::new(&*store, project.id, 4);
        let mut batch = Vec::with_capacity(BATCH);
        let mut events = 0u64;
        for message in lodestar_synth::generate(&synth) {
            events += 1;
            batch.push(message);
            if batch.len() == BATCH {
                pipeline.push(AppendBatch {
                    messages: std::mem::take(&mut batch),
                    ..Default::default()
                })?;
                bar.set_position(events);
            }
        }
        pipeline.push(AppendBatch {
            messages: batch,
            ..Default::default()
        })?;
        let stored = pipeline.finish()?.stored;
        bar.finish_and_clear();
        store.seal_now(project.id)?;
        eprintln!(
            "generated {events} events for {} users in {:.1} s ({} stored) / 已生成演示数据",
            args.users,
            started.elapsed().as_secs_f64(),
            stored
        );
        operations(&store, &project, start, now)?;
    }
    let key = std::fs::read_to_string(&key_file).unwrap_or_default();
    let banner = format!(
        "Demo project / 演示项目: {PROJECT}\nWrite key / 写入密钥: {}\nData folder / 数据目录: {}",
        key.trim(),
        dir.display()
    );
    if args.no_serve {
        println!("{banner}");
        return Ok(ExitCode::SUCCESS);
    }
    serve_store(config, store, Some(banner))?;
    Ok(ExitCode::SUCCESS)
}

/// What an operations team would set up first: computed attributes, a CLV fit, and the
/// usual segments (rule-based tags among them).
fn operations(
    store: &lodestar_store::Store,
    project: &lodestar_store::ProjectInfo,
    start: Timestamp,
    now: Timestamp,
) -> anyhow::Result<()> {
    use lodestar_analytics::jobs;
    let mut settings = store.project_settings(project.id)?;
    settings.defaults.insert(
        "computed".into(),
        serde_json::json!([
            {"name": "spend_90d", "event": "Order Completed", "agg": "sum", "days": 90},
            {"name": "orders", "event": "Order Completed", "agg": "count"},
            {"name": "last_order", "event": "Order Completed", "agg": "last_time"},
            {"name": "favourite_category", "event": "Product Viewed", "property": "category",
             "agg": "most_frequent", "days": 90}
        ]),
    );
    // North Star: weekly buyers, with the steps before a purchase as drivers.
    settings.defaults.insert(
        "north_star".into(),
        serde_json::json!({
            "metric": {"name": "weekly buyers / 每周购买人数", "event": "Order Completed", "math": "unique"},
            "drivers": [
                {"name": "viewers / 浏览人数", "event": "Product Viewed", "math": "unique"},
                {"name": "add to cart / 加购人数", "event": "Product Added", "math": "unique"},
                {"name": "sign-ups / 注册人数", "event": "Signed Up", "math": "total"}
            ]
        }),
    );
    // The synthetic shop's NPS survey event.
    settings.defaults.insert(
        "nps".into(),
        serde_json::json!({"event": "Survey Answered"}),
    );
    store.set_project_settings(project.id, &settings)?;
    let day = |t: Timestamp| t.to_rfc3339()[..10].to_string();
    let yesterday = Timestamp(now.millis() - Timestamp::DAY);
    let fit = serde_json::json!({"date_from": day(start), "date_to": day(yesterday)});
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    match jobs::fit_models(
        store,
        project,
        fit.to_string().as_bytes(),
        now,
        threads,
        &|_| {},
    ) {
        Ok((version, _)) => eprintln!("CLV model fitted (version {version}) / 已拟合客户价值模型"),
        Err(e) => eprintln!("CLV model not fitted: {e} / 未能拟合客户价值模型"),
    }
    // The churn-risk model too, so that profiles show a risk and its main factors.
    let mut churn = fit.clone();
    churn["kind"] = "churn".into();
    match jobs::fit_models(
        store,
        project,
        churn.to_string().as_bytes(),
        now,
        threads,
        &|_| {},
    ) {
        Ok((version, _)) => {
            eprintln!("churn model fitted (version {version}) / 已拟合流失预警模型")
        }
        Err(e) => eprintln!("churn model not fitted: {e} / 未能拟合流失预警模型"),
    }
    let cache = lodestar_analytics::profiles::ProfileCache::default();
    let segments = [
        serde_json::json!({"name": "高价值用户 High value", "tag": true,
            "condition": {"type": "rfm", "in": ["champions", "loyal"]}}),
        serde_json::json!({"name": "潜力用户 Potential", "tag": true,
            "condition": {"type": "rfm", "in": ["potential_loyalist", "promising", "new"]}}),
        serde_json::json!({"name": "流失风险用户 At risk", "tag": true,
            "condition": {"type": "or", "any": [
                {"type": "rfm", "in": ["at_risk", "cant_lose", "about_to_sleep"]},
                {"type": "and", "all": [
                    {"type": "stage", "in": ["dormant"]},
                    {"type": "did", "event": "Order Completed", "min": 2}]}]}}),
        serde_json::json!({"name": "复购但60天未购 Repeat buyers gone quiet",
            "condition": {"type": "and", "all": [
                {"type": "did", "event": "Order Completed", "min": 2},
                {"type": "did", "event": "Order Completed", "max": 0, "days": 60}]}}),
    ];
    for s in segments {
        let created = jobs::create_segment(
            store,
            project,
            &cache,
            s.to_string().as_bytes(),
            now,
            threads,
        )?;
        eprintln!(
            "segment {} saved: {} members / 已保存分群",
            s["name"], created.size
        );
    }
    Ok(())
}
