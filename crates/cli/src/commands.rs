//! The subcommands other than `demo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use lodestar_core::{Clock, SystemClock};
use lodestar_server::AppState;
use lodestar_store::{EventStore, Store};

use crate::config::{Config, LogConfig};
use crate::{ExportWhat, FileFormat};

/// Sets up `tracing` output on stderr.
pub fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

pub fn open_store(config: &Config) -> anyhow::Result<Arc<Store>> {
    Store::open(config.store.clone(), clock()).with_context(|| {
        format!(
            "opening the data folder {}",
            config.store.data_dir.display()
        )
    })
}

/// `lodestar serve`
pub fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let store = open_store(&config)?;
    serve_store(config, store, None)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the HTTP server on an open store until SIGINT or SIGTERM. `banner` is printed once
/// the server listens.
pub fn serve_store(
    config: Config,
    store: Arc<Store>,
    banner: Option<String>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("listening on {}", config.server.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, data_dir = %config.store.data_dir.display(), "lodestar listening");
        if let Some(banner) = banner {
            println!("{banner}");
        }
        println!("Lodestar is listening on http://{addr}  (Ctrl-C to stop / 按 Ctrl-C 停止)");
        let state = AppState::new(store.clone(), clock(), &config.server);
        lodestar_server::serve(listener, state, shutdown_signal()).await?;
        tracing::info!("shutting down");
        store.shutdown();
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `lodestar projects create NAME`
pub fn create_project(config: Config, name: &str) -> anyhow::Result<ExitCode> {
    let (info, key) = Store::create_project_in(&config.store.data_dir, name, clock().now())?;
    eprintln!(
        "created project {} (id {}) / 已创建项目",
        info.name, info.id
    );
    eprintln!("write key (shown only once; keep it) / 写入密钥（仅显示一次，请妥善保存）:");
    println!("{key}");
    Ok(ExitCode::SUCCESS)
}

/// `lodestar projects rotate-key NAME`: the new key alone on stdout, like `create`.
pub fn rotate_key(config: Config, name: &str) -> anyhow::Result<ExitCode> {
    let (info, key) = Store::rotate_key_in(&config.store.data_dir, name)?;
    eprintln!(
        "new write key for project {} (the old one no longer works) / 已为项目生成新的写入密钥（旧密钥已失效）",
        info.name
    );
    eprintln!("write key (shown only once; keep it) / 写入密钥（仅显示一次，请妥善保存）:");
    println!("{key}");
    Ok(ExitCode::SUCCESS)
}

/// `lodestar projects list`
pub fn list_projects(config: Config) -> anyhow::Result<ExitCode> {
    let projects = Store::projects_in(&config.store.data_dir)?;
    println!(
        "{:<6} {:<24} {:<12} {:<26} time zone",
        "id", "name", "key", "created"
    );
    for p in projects {
        println!(
            "{:<6} {:<24} {:<12} {:<26} {}",
            p.id,
            p.name,
            format!("{}…", p.key_hint),
            p.created_at,
            p.time_zone
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `lodestar projects settings NAME [--timezone TZ] [--defaults JSON|@FILE]`
pub fn project_settings(
    config: Config,
    name: &str,
    timezone: Option<String>,
    defaults: Option<String>,
) -> anyhow::Result<ExitCode> {
    let dir = &config.store.data_dir;
    let mut settings = Store::project_settings_in(dir, name)?;
    if timezone.is_some() || defaults.is_some() {
        if let Some(tz) = timezone {
            settings.timezone = tz;
        }
        if let Some(d) = defaults {
            let text = match d.strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
                }
                None => d,
            };
            settings.defaults =
                serde_json::from_str(&text).context("--defaults: not a JSON object")?;
        }
        lodestar_analytics::registry::check_settings(&settings)?;
        Store::set_project_settings_in(dir, name, &settings)?;
        eprintln!("settings saved / 设置已保存");
    }
    println!("{}", serde_json::to_string_pretty(&settings)?);
    Ok(ExitCode::SUCCESS)
}

/// `lodestar person --project P --user-id X | --anonymous-id X | --id N`
pub fn person(
    config: Config,
    project: &str,
    user_id: Option<String>,
    anonymous_id: Option<String>,
    id: Option<u64>,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        user_id.is_some() || anonymous_id.is_some() || id.is_some(),
        "give --user-id, --anonymous-id or --id / 请给出一个 ID"
    );
    let store = open_store(&config)?;
    let info = store.project(project)?;
    let view = lodestar_analytics::jobs::person_view(
        &store,
        &info,
        user_id.as_deref(),
        anonymous_id.as_deref(),
        id,
        clock().now(),
        limit,
    )?
    .context("no person has that id / 没有找到该用户")?;
    println!("{}", serde_json::to_string_pretty(&view)?);
    Ok(ExitCode::SUCCESS)
}

/// `lodestar segments create --project P --name N (--condition JSON|@FILE | --csv FILE)`
pub fn create_segment(
    config: Config,
    project: &str,
    name: &str,
    condition: Option<String>,
    csv: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let params = match (condition, csv) {
        (Some(c), None) => {
            let text = match c.strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
                }
                None => c,
            };
            let tree: serde_json::Value =
                serde_json::from_str(&text).context("--condition: not JSON")?;
            serde_json::json!({"name": name, "condition": tree})
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut ids: Vec<String> = Vec::new();
            for (i, line) in text.lines().enumerate() {
                let first = line
                    .split(',')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"');
                let header =
                    i == 0 && matches!(first.to_ascii_lowercase().as_str(), "user_id" | "userid");
                if !first.is_empty() && !header {
                    ids.push(first.to_string());
                }
            }
            serde_json::json!({"name": name, "user_ids": ids})
        }
        _ => anyhow::bail!("give --condition or --csv / 请给出 --condition 或 --csv"),
    };
    let store = open_store(&config)?;
    let info = store.project(project)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let created = lodestar_analytics::jobs::create_segment(
        &store,
        &info,
        &Default::default(),
        params.to_string().as_bytes(),
        clock().now(),
        threads,
    )?;
    println!("{}", serde_json::to_string_pretty(&created)?);
    Ok(ExitCode::SUCCESS)
}

/// `lodestar segments list --project P`
pub fn list_segments(config: Config, project: &str) -> anyhow::Result<ExitCode> {
    let store = open_store(&config)?;
    let info = store.project(project)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&store.segments(info.id)?)?
    );
    Ok(ExitCode::SUCCESS)
}

/// `lodestar models fit --project P --params JSON|@FILE`
pub fn fit_models(config: Config, project: &str, params: &str) -> anyhow::Result<ExitCode> {
    let params = match params.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("reading --params {path}"))?,
        None => params.as_bytes().to_vec(),
    };
    let store = open_store(&config)?;
    let info = store.project(project)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = std::time::Instant::now();
    let progress = |step: &str| eprintln!("[{:6.1} s] {step}", started.elapsed().as_secs_f64());
    progress("reading the store / 正在读取数据");
    let (id, summary) = lodestar_analytics::jobs::fit_models(
        &store,
        &info,
        &params,
        clock().now(),
        threads,
        &progress,
    )?;
    eprintln!("model version {id} saved / 已保存模型版本 {id}");
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(ExitCode::SUCCESS)
}

/// `lodestar models report --project P [--id N]`
pub fn model_report(config: Config, project: &str, id: Option<i64>) -> anyhow::Result<ExitCode> {
    let store = open_store(&config)?;
    let info = store.project(project)?;
    let fits = store.model_fits(info.id)?;
    match id {
        Some(id) => {
            let fit = fits
                .iter()
                .find(|f| f.id == id)
                .with_context(|| format!("--id: no model version {id} / 无此模型版本"))?;
            println!("{}", serde_json::to_string_pretty(fit)?);
        }
        None => {
            println!(
                "{:<6} {:<22} {:<10} {:<24} {:>10} {:>12}",
                "id", "fitted", "model", "window", "buyers", "LL"
            );
            for f in &fits {
                println!(
                    "{:<6} {:<22} {:<10} {:<24} {:>10} {:>12.1}",
                    f.id,
                    f.created_at.to_string(),
                    f.model,
                    format!("{}..{}", f.window_from, f.window_to),
                    f.summary["customers"],
                    f.summary["purchase_model"]["report"]["log_likelihood"]
                        .as_f64()
                        .unwrap_or(f64::NAN)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lodestar models score --project P --person ID`
pub fn person_scores(config: Config, project: &str, person: u64) -> anyhow::Result<ExitCode> {
    let store = open_store(&config)?;
    let info = store.project(project)?;
    let scores = store.person_scores(info.id, person)?;
    println!("{}", serde_json::to_string_pretty(&scores)?);
    Ok(ExitCode::SUCCESS)
}

/// `lodestar warnings --project NAME`
pub fn warnings(config: Config, project: &str, limit: usize) -> anyhow::Result<ExitCode> {
    let store = open_store(&config)?;
    let info = store.project(project)?;
    let rows = store.warnings(info.id, limit, None)?;
    if rows.is_empty() {
        println!("no ingestion warnings / 无采集告警");
    }
    for w in rows {
        println!(
            "{}  {:<8} {:<28} {:<24} {}",
            w.at, w.severity, w.code, w.field, w.message
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `lodestar import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Project to import into. 目标项目
    #[arg(long)]
    pub project: String,
    /// Files to import. 要导入的文件
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// File format (default: from the extension). 文件格式
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
    /// Column holding the customer id (CSV/Parquet). 客户 ID 列
    #[arg(long)]
    pub customer_id: Option<String>,
    /// Column holding the order time. 下单时间列
    #[arg(long)]
    pub timestamp: Option<String>,
    /// Column holding the order amount. 金额列
    #[arg(long)]
    pub amount: Option<String>,
    /// Column holding the order id. 订单号列
    #[arg(long)]
    pub order_id: Option<String>,
    /// Event name given to each row. 事件名
    #[arg(long, default_value = "Order Completed")]
    pub event: String,
    /// Currency of the amounts (e.g. CNY). 币种
    #[arg(long)]
    pub currency: Option<String>,
    /// Field delimiter (CSV), e.g. ',' or '\t' or ' '. 分隔符
    #[arg(long)]
    pub delimiter: Option<String>,
    /// The CSV has no header row; name columns by number (1, 2, …). 无表头
    #[arg(long)]
    pub no_header: bool,
    /// No progress bar. 不显示进度条
    #[arg(long)]
    pub quiet: bool,
}

fn io_format(f: FileFormat) -> lodestar_io::Format {
    match f {
        FileFormat::Csv => lodestar_io::Format::Csv,
        FileFormat::Jsonl => lodestar_io::Format::Jsonl,
        FileFormat::Parquet => lodestar_io::Format::Parquet,
    }
}

/// `lodestar import`
pub fn import(config: Config, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&config)?;
    let project = store.project(&args.project)?;
    let mut options = lodestar_io::ImportOptions {
        format: args.format.map(io_format),
        event: args.event.clone(),
        currency: args.currency.clone(),
        has_header: !args.no_header,
        ..lodestar_io::ImportOptions::default()
    };
    options.columns.customer_id = args.customer_id.clone();
    options.columns.timestamp = args.timestamp.clone();
    options.columns.amount = args.amount.clone();
    options.columns.order_id = args.order_id.clone();
    if let Some(d) = &args.delimiter {
        options.delimiter = Some(lodestar_io::Delimiter::parse(d)?);
    }
    let mut failed = false;
    for file in &args.files {
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({eta}) {prefix}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(file.display().to_string());
        let result = lodestar_io::import_file(&*store, project.id, file, &options, &mut |p| {
            bar.set_length(p.bytes_total);
            bar.set_position(p.bytes_read);
            bar.set_prefix(format!("{} rows, {} rejected", p.rows, p.rejected));
        });
        bar.finish_and_clear();
        match result {
            Ok(summary) => println!("{summary}"),
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                failed = true;
            }
        }
    }
    store.flush(project.id)?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Arguments of `lodestar export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// What to export. 导出内容
    #[arg(value_enum)]
    pub what: ExportWhat,
    /// Project. 项目
    #[arg(long)]
    pub project: String,
    /// Output format. 输出格式
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: FileFormat,
    /// Output file (or --webhook for a segment). 输出文件
    #[arg(long, required_unless_present = "webhook")]
    pub out: Option<PathBuf>,
    /// `segment` only: the segment's id. 分群编号
    #[arg(long)]
    pub segment: Option<i64>,
    /// `segment` only: traits or scores (clv, p_alive, churn_risk …) to add as columns, comma-separated. 导出属性
    #[arg(long, value_delimiter = ',')]
    pub attributes: Vec<String>,
    /// `segment` only: POST the members to this http:// URL in batches instead of writing a file. 以 Webhook 分批推送
    #[arg(long, conflicts_with = "out")]
    pub webhook: Option<String>,
    /// With --webhook: members per batch (1 to 10000). 每批人数
    #[arg(long, default_value_t = lodestar_server::webhook::DEFAULT_BATCH_SIZE, requires = "webhook")]
    pub batch_size: usize,
    /// With --webhook: key of the X-Lodestar-Signature HMAC-SHA256. 签名密钥
    #[arg(
        long,
        env = "LODESTAR_WEBHOOK_SECRET",
        hide_env_values = true,
        requires = "webhook"
    )]
    pub secret: Option<String>,
}

/// `lodestar export`
pub fn export(config: Config, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let what = args.what;
    anyhow::ensure!(
        (what == ExportWhat::Segment) == args.segment.is_some(),
        "--segment goes with `export segment`, and only there / --segment 仅用于 export segment"
    );
    let store = open_store(&config)?;
    let info = store.project(&args.project)?;
    if let Some(url) = args.webhook {
        let segment = args
            .segment
            .context("--webhook goes with `export segment`")?;
        let request = lodestar_server::webhook::WebhookRequest {
            url,
            attributes: args.attributes,
            batch_size: args.batch_size,
            secret: args.secret,
            headers: Default::default(),
        };
        return export_webhook(store, info, segment, request);
    }
    let out = args
        .out
        .context("give --out FILE (or --webhook URL for a segment)")?;
    let format = io_format(args.format);
    let tmp = out.with_extension("partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let summary = match what {
        ExportWhat::Events => lodestar_io::export_events(&*store, info.id, format, &mut writer)?,
        ExportWhat::Profiles => {
            lodestar_io::export_profiles(&*store, info.id, format, &mut writer)?
        }
        ExportWhat::Warnings => {
            lodestar_io::export_warnings(&*store, info.id, format, &mut writer)?
        }
        ExportWhat::Segment => {
            let id = args.segment.context("--segment is required")?;
            let source = lodestar_server::webhook::load_segment(&store, &info, id)?;
            let export = source.export(&args.attributes);
            lodestar_io::export_segment(&*store, info.id, &export, format, &mut writer)?
        }
    };
    let file = writer
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all()?;
    std::fs::rename(&tmp, &out).with_context(|| format!("renaming to {}", out.display()))?;
    eprintln!(
        "exported {} {} rows to {} in {:.1} s / 导出完成",
        summary.rows,
        format!("{what:?}").to_lowercase(),
        out.display(),
        summary.elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// `lodestar export segment --webhook URL`: the server's sender, run here; prints the
/// delivery report (JSON) on stdout.
fn export_webhook(
    store: Arc<Store>,
    project: lodestar_store::ProjectInfo,
    segment: i64,
    request: lodestar_server::webhook::WebhookRequest,
) -> anyhow::Result<ExitCode> {
    use lodestar_server::webhook;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let export_id = format!("cli{}", clock().now().millis());
    let report = runtime.block_on(webhook::export_segment(
        store,
        clock(),
        project,
        segment,
        request,
        export_id,
        webhook::RetryPolicy::default(),
    ))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!("{}", report.summary());
    Ok(if report.failed.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
