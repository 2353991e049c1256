//! `lodestar persons delete|unsuppress|edit`, `lodestar deletions list|show`, `lodestar
//! audit`: deleting a person and suppressing their ids, the audit trail, and editing
//! profiles (manual tags, consent).

use std::process::ExitCode;

use anyhow::Context;

use lodestar_store::{DeletionRequest, DeletionStatus, EventStore, IdKind, PersonRef, Store};

use crate::commands::{clock, open_store};
use crate::config::Config;

/// Which person: one of their ids.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// A user id. 用户 ID
    #[arg(long)]
    user_id: Option<String>,
    /// An anonymous id. 匿名 ID
    #[arg(long)]
    anonymous_id: Option<String>,
    /// A person id. 人员编号
    #[arg(long)]
    person: Option<u64>,
}

impl Which {
    fn person(self) -> PersonRef {
        match (self.user_id, self.anonymous_id, self.person) {
            (Some(u), _, _) => PersonRef::UserId(u),
            (None, Some(a), _) => PersonRef::AnonymousId(a),
            (None, None, Some(p)) => PersonRef::Person(p),
            (None, None, None) => unreachable!("clap requires one of the group"),
        }
    }
}

/// `lodestar persons …`
#[derive(clap::Subcommand, Debug)]
pub enum PersonsAction {
    /// Delete a person with all their events, profile and derived data, and suppress their ids (GDPR, 个人信息保护法). 删除用户及其全部数据，并屏蔽其 ID
    Delete {
        /// Project. 项目
        #[arg(long)]
        project: String,
        #[command(flatten)]
        which: Which,
        /// Do not suppress the person's ids: later messages with them are stored as a new person. 不屏蔽其 ID
        #[arg(long)]
        no_suppress: bool,
        /// Run the removal now and wait for it (else the server does it when it next runs). 立即执行并等待完成
        #[arg(long)]
        wait: bool,
        /// Who asks, for the audit trail. 操作人
        #[arg(long, default_value = "cli")]
        actor: String,
    },
    /// Take a user id or anonymous id off the suppression list (audited). 解除对某个 ID 的屏蔽
    Unsuppress {
        /// Project. 项目
        #[arg(long)]
        project: String,
        /// A user id. 用户 ID
        #[arg(long, group = "id", required = true)]
        user_id: Option<String>,
        /// An anonymous id. 匿名 ID
        #[arg(long, group = "id")]
        anonymous_id: Option<String>,
        /// Who asks, for the audit trail. 操作人
        #[arg(long, default_value = "cli")]
        actor: String,
    },
    /// Add or remove manual tags and record consent per channel, for persons by user id (kept in the trait history). 编辑用户标签与授权
    Edit {
        /// Project. 项目
        #[arg(long)]
        project: String,
        /// User ids (repeat or comma-separate). 用户 ID
        #[arg(long = "user-id", value_delimiter = ',', required = true)]
        user_ids: Vec<String>,
        /// Tags to add. 添加标签
        #[arg(long = "add-tag", value_delimiter = ',')]
        add_tags: Vec<String>,
        /// Tags to remove. 移除标签
        #[arg(long = "remove-tag", value_delimiter = ',')]
        remove_tags: Vec<String>,
        /// Consent per channel: email=true, sms=false (channels email, sms, push, wechat, webhook). 渠道授权
        #[arg(long, value_delimiter = ',')]
        consent: Vec<String>,
    },
}

/// `lodestar deletions …`
#[derive(clap::Subcommand, Debug)]
pub enum DeletionsAction {
    /// Deletion jobs, newest first: status (pending, running, done, failed) and counts. 删除任务列表
    List {
        /// Project. 项目
        #[arg(long)]
        project: String,
    },
    /// One deletion job (JSON). 查看删除任务
    Show {
        /// Project. 项目
        #[arg(long)]
        project: String,
        /// The job's id. 任务编号
        #[arg(long)]
        id: i64,
    },
}

/// Arguments of `lodestar audit`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Project. 项目
    #[arg(long)]
    project: String,
    /// How many, newest first. 条数
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// As JSON lines. 以 JSON 输出
    #[arg(long)]
    json: bool,
}

/// Opens the store without the maintenance thread: a deletion job runs only with `--wait`
/// (or in the next server), never half-way in a command that is about to exit.
fn open_quiet(config: &Config) -> anyhow::Result<std::sync::Arc<Store>> {
    let mut config = config.clone();
    config.store.maintenance_interval_ms = 0;
    open_store(&config)
}

/// `lodestar persons …`
pub fn persons(config: Config, action: PersonsAction) -> anyhow::Result<ExitCode> {
    match action {
        PersonsAction::Delete {
            project,
            which,
            no_suppress,
            wait,
            actor,
        } => {
            let store = open_quiet(&config)?;
            let info = store.project(&project)?;
            let request = DeletionRequest {
                person: which.person(),
                actor,
                suppress: !no_suppress,
            };
            let id = store
                .request_deletion(info.id, request, clock().now())
                .context("deleting / 删除失败")?;
            eprintln!(
                "deletion {id} recorded: the person is gone from lookups, exports and analyses / 已记录删除任务 {id}"
            );
            if wait {
                store.run_deletions_now(info.id)?;
            } else {
                eprintln!(
                    "their stored events are removed when the server next runs (or use --wait) / 事件将在服务下次运行时物理删除"
                );
            }
            let job = store.deletion(info.id, id)?;
            println!("{}", serde_json::to_string_pretty(&job)?);
            if job.status == DeletionStatus::Failed {
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        PersonsAction::Edit {
            project,
            user_ids,
            add_tags,
            remove_tags,
            consent,
        } => {
            let mut channels = serde_json::Map::new();
            for c in consent {
                let (channel, granted) = c.split_once('=').with_context(|| {
                    format!("--consent {c:?}: write channel=true|false / 格式为 渠道=true|false")
                })?;
                let granted: bool = granted.parse().with_context(|| {
                    format!("--consent {c:?}: true or false / 应为 true 或 false")
                })?;
                channels.insert(channel.to_string(), serde_json::json!(granted));
            }
            let store = open_quiet(&config)?;
            let info = store.project(&project)?;
            let params = serde_json::json!({"user_ids": user_ids, "add_tags": add_tags,
                                             "remove_tags": remove_tags, "consent": channels});
            let done = lodestar_analytics::jobs::edit_profiles(
                &store,
                &info,
                params.to_string().as_bytes(),
                clock().now(),
            )?;
            println!("{}", serde_json::to_string_pretty(&done)?);
            Ok(ExitCode::SUCCESS)
        }
        PersonsAction::Unsuppress {
            project,
            user_id,
            anonymous_id,
            actor,
        } => {
            let (kind, value) = match (user_id, anonymous_id) {
                (Some(u), _) => (IdKind::User, u),
                (None, Some(a)) => (IdKind::Anonymous, a),
                (None, None) => anyhow::bail!("give --user-id or --anonymous-id / 请给出一个 ID"),
            };
            let store = open_quiet(&config)?;
            let info = store.project(&project)?;
            if store.unsuppress(info.id, kind, &value, &actor, clock().now())? {
                println!("unsuppressed / 已解除屏蔽");
            } else {
                println!("that id was not suppressed / 该 ID 未被屏蔽");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `lodestar deletions …`
pub fn deletions(config: Config, action: DeletionsAction) -> anyhow::Result<ExitCode> {
    let store = open_quiet(&config)?;
    match action {
        DeletionsAction::List { project } => {
            let info = store.project(&project)?;
            println!(
                "{:<6} {:<8} {:<26} {:<12} {:>7} {:>10} {:>9} {:>8}",
                "id", "status", "requested", "actor", "persons", "events", "derived", "suppress"
            );
            for d in store.deletions(info.id)? {
                println!(
                    "{:<6} {:<8} {:<26} {:<12} {:>7} {:>10} {:>9} {:>8}",
                    d.id,
                    serde_json::to_value(d.status)?.as_str().unwrap_or("?"),
                    d.requested_at.to_string(),
                    d.actor,
                    d.persons,
                    d.events.map_or("-".to_string(), |n| n.to_string()),
                    d.derived,
                    d.suppress
                );
                if let Some(m) = &d.message {
                    println!("       {m}");
                }
            }
        }
        DeletionsAction::Show { project, id } => {
            let info = store.project(&project)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&store.deletion(info.id, id)?)?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lodestar audit --project P`
pub fn audit(config: Config, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let store = open_quiet(&config)?;
    let info = store.project(&args.project)?;
    let rows = store.audit(info.id, args.limit, None)?;
    if rows.is_empty() && !args.json {
        println!("no audit entries / 无审计记录");
    }
    for r in rows {
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "{:<6} {}  {:<20} {:<12} {}",
                r.id, r.at, r.action, r.actor, r.detail
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
