//! `lodestar`: the command line of the Lodestar customer lifecycle platform.
//! `lodestar`：Lodestar 客户生命周期管理平台的命令行。
//!
//! This binary wires the crates together; it is the only place that reads the environment
//! and the wall clock, and the only place `anyhow` is used.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line talks to its user on stdout and stderr"
)]

mod commands;
mod config;
mod demo;
mod privacy;
mod report;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, Overrides};

/// mimalloc: the ingestion path allocates and frees many small JSON values; glibc's
/// allocator spent a fifth of the server's CPU on it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "lodestar",
    version,
    about = "Customer lifecycle platform: ingest events, resolve identities, analyze and act\n客户生命周期管理平台：采集事件、识别用户、分析与自动化运营",
    long_about = None
)]
struct Cli {
    /// Configuration file (TOML). Default: ./lodestar.toml if present. 配置文件
    #[arg(long, global = true, env = "LODESTAR_CONFIG")]
    config: Option<PathBuf>,
    /// Data folder. 数据目录 [default: lodestar-data]
    #[arg(long, global = true, env = "LODESTAR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log format: text or json. 日志格式
    #[arg(long, global = true, env = "LODESTAR_LOG_FORMAT")]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the HTTP server (Segment-compatible ingestion, admin API, metrics). 启动服务
    Serve {
        /// Address to listen on. 监听地址 [default: 127.0.0.1:8080]
        #[arg(long, env = "LODESTAR_LISTEN")]
        listen: Option<String>,
        /// Token the admin API requires. 管理接口令牌
        #[arg(long, env = "LODESTAR_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
    /// Manage projects and their write keys. 管理项目与写入密钥
    Projects {
        #[command(subcommand)]
        action: ProjectsAction,
    },
    /// Import historical data (CSV, JSONL, Parquet). 导入历史数据
    Import(commands::ImportArgs),
    /// Export a project's data: the user's data is theirs. 导出项目数据
    Export(commands::ExportArgs),
    /// Show a project's ingestion warnings and quarantined events. 查看采集告警与隔离事件
    Warnings {
        /// Project. 项目
        #[arg(long)]
        project: String,
        /// How many, newest first. 条数
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Generate a realistic demo data set and serve it. 生成演示数据并启动服务
    Demo(demo::DemoArgs),
    /// Look a person up by any of their ids: profile, stage, scores, latest events (JSON). 查询用户画像
    Person {
        /// Project. 项目
        #[arg(long)]
        project: String,
        /// A user id. 用户 ID
        #[arg(long, group = "which")]
        user_id: Option<String>,
        /// An anonymous id. 匿名 ID
        #[arg(long, group = "which")]
        anonymous_id: Option<String>,
        /// A person id. 人员编号
        #[arg(long, group = "which")]
        id: Option<u64>,
        /// Timeline events to show. 显示的最近事件数
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Segments: save one (a condition, or a CSV list of user ids), list them. 用户分群
    Segments {
        #[command(subcommand)]
        action: SegmentsAction,
    },
    /// Customer-value models: fit (a new version), report, a person's scores. 客户价值模型（CLV、存活概率）
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Analyses: funnel, retention, lifecycle, stages, RFM, … (tables, or --json). 分析报告
    Report {
        #[command(subcommand)]
        report: report::Report,
    },
    /// Persons: edit tags and consent; delete one with all their data and suppress their ids, or unsuppress an id. 编辑标签与授权；删除用户数据（个人信息保护）
    Persons {
        #[command(subcommand)]
        action: privacy::PersonsAction,
    },
    /// Deletion jobs and their status. 删除任务及其状态
    Deletions {
        #[command(subcommand)]
        action: privacy::DeletionsAction,
    },
    /// The audit trail of deletions and suppressions. 删除与屏蔽的审计记录
    Audit(privacy::AuditArgs),
}

#[derive(Subcommand, Debug)]
enum SegmentsAction {
    /// Save a segment and record its first members. 创建分群
    Create {
        /// Project. 项目
        #[arg(long)]
        project: String,
        /// Unique name. 名称
        #[arg(long)]
        name: String,
        /// A condition tree as JSON, or @FILE (a dynamic segment). 条件（JSON 或 @文件）
        #[arg(long, group = "members")]
        condition: Option<String>,
        /// A CSV whose first column holds user ids (a static segment; a header named user_id is skipped). 用户 ID 列表（CSV）
        #[arg(long, group = "members")]
        csv: Option<PathBuf>,
    },
    /// The saved segments with their sizes (JSON). 分群列表
    List {
        /// Project. 项目
        #[arg(long)]
        project: String,
    },
}

#[derive(Subcommand, Debug)]
enum ModelsAction {
    /// Fit BG/NBD (or MBG/NBD, Pareto/NBD) and Gamma-Gamma on the project's purchases and score every buyer; kept as a new version. 拟合模型并为每位客户打分
    Fit {
        /// Project. 项目
        #[arg(long)]
        project: String,
        /// The clv analysis's parameters as JSON, or @FILE (date_from, date_to, holdout_to, model, purchase_events, …). 参数
        #[arg(long)]
        params: String,
    },
    /// The fitted model versions, newest first (or one with --id), as JSON. 模型版本
    Report {
        /// Project. 项目
        #[arg(long)]
        project: String,
        /// One version. 版本号
        #[arg(long)]
        id: Option<i64>,
    },
    /// A person's scores from every version, newest first. 客户评分
    Score {
        /// Project. 项目
        #[arg(long)]
        project: String,
        /// Person id. 用户 ID
        #[arg(long)]
        person: u64,
    },
}

#[derive(Subcommand, Debug)]
enum ProjectsAction {
    /// Create a project and print its write key (shown only once). 创建项目并输出写入密钥（仅显示一次）
    Create {
        /// Name: lowercase letters, digits, '_' and '-'. 名称
        name: String,
    },
    /// List projects. 列出项目
    List,
    /// Give a project a new write key and print it (shown only once); the old key stops
    /// working at once, also in a running server. 轮换写入密钥（新密钥仅显示一次，旧密钥立即失效）
    RotateKey {
        /// Project. 项目
        name: String,
    },
    /// Show a project's settings, or change them with the options (works while a server
    /// runs). 查看或修改项目设置（时区、各分析的默认参数）
    Settings {
        /// Project. 项目
        name: String,
        /// IANA time zone for analyses, e.g. Asia/Shanghai. 时区
        #[arg(long)]
        timezone: Option<String>,
        /// Default parameters per analysis as JSON, or @FILE: {"stages": {"rules": …}, "rfm": …}. 默认参数
        #[arg(long)]
        defaults: Option<String>,
    },
}

/// A data file format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated values.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

/// What `export` writes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportWhat {
    /// Every event.
    Events,
    /// Every person's profile.
    Profiles,
    /// The ingestion warnings and quarantine.
    Warnings,
    /// A segment's members with chosen attributes (CSV, JSONL, Parquet, or a webhook in batches).
    Segment,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        log_format: cli.log_format.clone(),
        ..Overrides::default()
    };
    if let Command::Serve {
        listen,
        admin_token,
    } = &cli.command
    {
        overrides.listen = listen.clone();
        overrides.admin_token = admin_token.clone();
    }
    if let Command::Demo(args) = &cli.command {
        overrides.listen = args.listen.clone();
        if cli.data_dir.is_none() {
            overrides.data_dir = Some(args.data_dir.clone());
        }
    }
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    commands::init_logging(&config.log);
    let result = match cli.command {
        Command::Serve { .. } => commands::serve(config),
        Command::Projects {
            action: ProjectsAction::Create { name },
        } => commands::create_project(config, &name),
        Command::Projects {
            action: ProjectsAction::List,
        } => commands::list_projects(config),
        Command::Projects {
            action: ProjectsAction::RotateKey { name },
        } => commands::rotate_key(config, &name),
        Command::Projects {
            action:
                ProjectsAction::Settings {
                    name,
                    timezone,
                    defaults,
                },
        } => commands::project_settings(config, &name, timezone, defaults),
        Command::Import(args) => commands::import(config, args),
        Command::Export(args) => commands::export(config, args),
        Command::Warnings { project, limit } => commands::warnings(config, &project, limit),
        Command::Demo(args) => demo::run(config, args),
        Command::Persons { action } => privacy::persons(config, action),
        Command::Deletions { action } => privacy::deletions(config, action),
        Command::Audit(args) => privacy::audit(config, args),
        Command::Report { report } => report::run(config, report),
        Command::Person {
            project,
            user_id,
            anonymous_id,
            id,
            limit,
        } => commands::person(config, &project, user_id, anonymous_id, id, limit),
        Command::Segments { action } => match action {
            SegmentsAction::Create {
                project,
                name,
                condition,
                csv,
            } => commands::create_segment(config, &project, &name, condition, csv),
            SegmentsAction::List { project } => commands::list_segments(config, &project),
        },
        Command::Models { action } => match action {
            ModelsAction::Fit { project, params } => {
                commands::fit_models(config, &project, &params)
            }
            ModelsAction::Report { project, id } => commands::model_report(config, &project, id),
            ModelsAction::Score { project, person } => {
                commands::person_scores(config, &project, person)
            }
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
