//! Jobs over a whole project that keep its derived data (`lodestar_store` keeps it in
//! `derived.db`) or read across it: recording each ended day's lifecycle stage changes;
//! fitting the customer-value and churn models as new versions with every person's scores;
//! saving segments and re-evaluating the dynamic ones; a person's view; a segment's preview.
//! The server runs them on a timer or on request, the command line on request; the clock's
//! `now` is passed in.

use lodestar_core::Timestamp;
use lodestar_store::{PersonScore, Profile, ProjectInfo, ProjectSettings, Store};
use serde::Serialize;

use crate::error::AnalyticsError;
use crate::profiles::ProfileCache;
use crate::registry::RunError;
use crate::spec::StagesSpec;
use crate::stages::{Stage, StageRules, stage_changes};
use crate::{Calendar, PersonSource, SnapshotSource};

/// The project's lifecycle stage rules: `defaults.stages` (`rules` or `preset`), else the
/// e-commerce preset.
pub fn stage_rules(settings: &ProjectSettings) -> Result<StageRules, RunError> {
    let mut params = settings
        .defaults
        .get("stages")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(map) = params.as_object_mut() {
        map.retain(|k, _| k == "rules" || k == "preset");
        map.insert("date_from".into(), "2026-01-01".into());
        map.insert("date_to".into(), "2026-01-01".into());
    }
    let spec: StagesSpec = serde_json::from_value(params)
        .map_err(|e| AnalyticsError::invalid("defaults.stages", e.to_string()))?;
    Ok(spec.query(1)?.rules)
}

/// One event of a person's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    /// Event time, ms since the epoch (UTC).
    pub ts: i64,
    /// Event name.
    pub event: String,
    /// The event value, when it has one.
    pub value: Option<f64>,
}

/// What the platform knows of one person: the profile, the lifecycle stage now, the model
/// scores of every version, and the latest events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonView {
    /// Ids, traits, first and last change.
    pub profile: Profile,
    /// Lifecycle stage at `now` under the project's rules.
    pub stage: Option<Stage>,
    /// Its Chinese name.
    pub stage_zh: Option<String>,
    /// Events stored for the person (all of their ids).
    pub events: u64,
    /// First event time, ms.
    pub first_seen: Option<i64>,
    /// Last event time, ms.
    pub last_seen: Option<i64>,
    /// Model scores, newest version first.
    pub scores: Vec<PersonScore>,
    /// The project's computed attributes (see [`crate::computed`]) at `now`, by name.
    pub computed: lodestar_core::JsonMap,
    /// Tags: manual ones (the `tags` trait) and rule-based ones (the tag segments the person
    /// is in), sorted.
    pub tags: Vec<String>,
    /// Consent per channel (`email`, `sms`, `push`, `wechat`, `webhook`): the `consent`
    /// trait; a channel not named has no recorded consent.
    pub consent: lodestar_core::JsonMap,
    /// The person's time zone: the `timezone` trait when it names a zone, else the project's.
    pub timezone: String,
    /// The segments the person is in.
    pub segments: Vec<lodestar_store::Membership>,
    /// The latest trait changes (`$set`, `$set_once`), newest first.
    pub trait_history: Vec<lodestar_store::TraitChange>,
    /// The latest segment entries and exits, newest first.
    pub segment_history: Vec<lodestar_store::SegmentEventRow>,
    /// The RFM layer of the purchases in the last 365 days, among all buyers, under the
    /// project's RFM settings; none without a purchase there.
    pub rfm_layer: Option<String>,
    /// The latest NPS answer (the project's `defaults.nps.event`, else `NPS Survey
    /// Answered`): its score and category (promoter / passive / detractor).
    pub nps: Option<NpsAnswer>,
    /// The lifecycle stage history: where the stage changed, day by day in the project's
    /// zone, oldest first (see [`crate::stages::stage_history`]).
    pub stage_history: Vec<crate::stages::StageStep>,
    /// The latest `limit` events, newest first.
    pub timeline: Vec<TimelineEvent>,
}

/// What a project's data holds and the built-in choices, for the pickers of a segment
/// builder and a settings form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schema {
    /// Every event name stored, sorted (not the empty name of identify and alias calls).
    pub events: Vec<String>,
    /// Trait keys of the newest persons (see [`Store::trait_keys`]), most common first.
    pub traits: Vec<TraitKey>,
    /// The project's computed attributes, by name.
    pub computed: Vec<String>,
    /// The RFM layers under the project's settings, in scheme order.
    pub rfm_layers: Vec<Named>,
    /// The model scores a segment can test.
    pub scores: Vec<String>,
    /// Saved segments (id and name), for `in_segment`.
    pub segments: Vec<(i64, String)>,
    /// The aggregates a segment's `aggregate` condition may use.
    pub segment_aggregates: Vec<String>,
    /// The aggregates a computed attribute may use.
    pub computed_aggregates: Vec<String>,
    /// The built-in stage rules by preset name, for a settings form to show and start from.
    pub stage_presets: Vec<(String, StageRules)>,
    /// The built-in RFM layers of the `segments` scheme.
    pub rfm_default_layers: Vec<crate::rfm::LayerRule>,
}

/// A trait key and how many of the sampled persons have it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraitKey {
    /// The key (`a.b` for one level into an object).
    pub key: String,
    /// Sampled persons with it.
    pub persons: usize,
}

/// A key with its English and Chinese names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Named {
    /// Stable key.
    pub key: String,
    /// English name.
    pub name: String,
    /// Chinese name.
    pub name_zh: String,
}

/// How many of the newest persons [`schema`] reads trait keys from.
pub const SCHEMA_SAMPLE: usize = 2_000;

/// What a project's data holds (event names, trait keys, computed attributes, RFM layers,
/// scores, segments), for a segment builder. Reads the event-name dictionary and the
/// newest [`SCHEMA_SAMPLE`] profiles only.
pub fn schema(store: &Store, project: &ProjectInfo) -> Result<Schema, RunError> {
    let settings = store.project_settings(project.id)?;
    let snapshot = store.snapshot(project.id)?;
    // (The empty name is the one of calls without an event: identify, alias.)
    let mut events: Vec<String> = snapshot
        .names()
        .iter()
        .filter(|n| !n.is_empty())
        .cloned()
        .collect();
    events.sort();
    events.dedup();
    let named = |(key, name, name_zh): (String, String, String)| Named { key, name, name_zh };
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
    Ok(Schema {
        events,
        traits: store
            .trait_keys(project.id, SCHEMA_SAMPLE)?
            .into_iter()
            .map(|(key, persons)| TraitKey { key, persons })
            .collect(),
        computed: crate::computed::definitions(&settings)?
            .into_iter()
            .map(|d| d.name)
            .collect(),
        rfm_layers: rfm_query(&settings, 1)?
            .scheme
            .layers()
            .into_iter()
            .map(named)
            .collect(),
        scores: strings(&crate::segment::SCORES),
        segments: store
            .segments(project.id)?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect(),
        segment_aggregates: strings(&crate::segment::AGGREGATES),
        computed_aggregates: strings(&crate::computed::COMPUTED_AGGREGATES),
        stage_presets: crate::stages::PRESETS
            .iter()
            .map(|p| Ok((p.to_string(), StageRules::preset(p)?)))
            .collect::<crate::Result<_>>()?,
        rfm_default_layers: crate::rfm::LayerRule::defaults(),
    })
}

/// A person's latest NPS answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NpsAnswer {
    /// The score, 0 to 10.
    pub score: f64,
    /// `promoter`, `passive` or `detractor` (`None` for a score that is not 0 to 10).
    pub category: Option<String>,
    /// When it was given, ms.
    pub at: i64,
}

/// Looks a person up by a user id, an anonymous id or a person id (give one) and gathers their
/// view; `None` when nobody has that id.
pub fn person_view(
    store: &Store,
    project: &ProjectInfo,
    user_id: Option<&str>,
    anonymous_id: Option<&str>,
    person: Option<u64>,
    now: Timestamp,
    limit: usize,
) -> Result<Option<PersonView>, RunError> {
    let Some(profile) = store.find_profile(project.id, user_id, anonymous_id, person)? else {
        return Ok(None);
    };
    let id = profile.person.0;
    let settings = store.project_settings(project.id)?;
    let rules = stage_rules(&settings)?;
    let snapshot = store.snapshot(project.id)?;
    let source = SnapshotSource::filtered(
        &snapshot,
        &crate::filter::Filters::default(),
        Some(vec![id]),
        1,
    )?;
    let names = snapshot.names();
    let mut view = PersonView {
        profile,
        stage: None,
        stage_zh: None,
        events: 0,
        first_seen: None,
        last_seen: None,
        scores: store.person_scores(project.id, id)?,
        computed: lodestar_core::JsonMap::new(),
        tags: Vec::new(),
        consent: lodestar_core::JsonMap::new(),
        timezone: settings.timezone.clone(),
        segments: Vec::new(),
        trait_history: Vec::new(),
        segment_history: Vec::new(),
        rfm_layer: None,
        nps: None,
        stage_history: Vec::new(),
        timeline: Vec::new(),
    };
    let calendar = Calendar::new(&settings.timezone)?;
    let mut history = Ok(Vec::new());
    let nps_event = settings
        .defaults
        .get("nps")
        .and_then(|d| d.get("event"))
        .and_then(|e| e.as_str())
        .unwrap_or(crate::nps::DEFAULT_EVENT)
        .to_string();
    let nps_id = snapshot.name_id(&nps_event);
    let mut ids: Vec<u64> = snapshot
        .merged_persons()
        .iter()
        .filter(|(_, to)| **to == id)
        .map(|(from, _)| *from)
        .collect();
    ids.push(id);
    view.segments = store.memberships(project.id, &ids)?;
    view.segment_history = store.person_segment_events(project.id, &ids, limit)?;
    let everyone = SnapshotSource::new(&snapshot);
    view.rfm_layer = rfm_layers(
        &everyone,
        &settings,
        crate::segment::DEFAULT_RFM_DAYS,
        now,
        1,
    )?
    .remove(&id);
    view.trait_history = store.trait_history(project.id, &ids, limit)?;
    view.tags = manual_tags(&view.profile.traits);
    view.tags.extend(
        view.segments
            .iter()
            .filter(|m| m.tag)
            .map(|m| m.name.clone()),
    );
    view.tags.sort();
    view.tags.dedup();
    if let Some(serde_json::Value::Object(c)) = view.profile.traits.get("consent") {
        view.consent = c.clone();
    }
    if let Some(zone) = view.profile.traits.get("timezone").and_then(|v| v.as_str())
        && Calendar::new(zone).is_ok()
    {
        view.timezone = zone.to_string();
    }
    let defs = crate::computed::definitions(&settings)?;
    let values = crate::computed::compute_all(&source, &defs, now.millis(), 1)?;
    for (def, by_person) in defs.iter().zip(values) {
        let value = match by_person.into_iter().find(|r| r.0 == id) {
            Some((_, v, _)) => v,
            None => crate::computed::empty_value(def),
        };
        view.computed
            .insert(def.name.clone(), value.unwrap_or(serde_json::Value::Null));
    }
    source.for_each_person_with_values(0, 1, &mut |_, ev| {
        view.events = ev.len() as u64;
        view.first_seen = ev.ts.first().copied();
        view.last_seen = ev.ts.last().copied();
        view.stage = crate::stages::stage_at(&rules, names, ev, now.millis());
        history = crate::stages::stage_history(&rules, names, ev, &calendar, now.millis());
        if let Some(i) = nps_id.and_then(|n| (0..ev.len()).rev().find(|&i| ev.names[i] == n)) {
            view.nps = Some(NpsAnswer {
                score: ev.values[i],
                category: crate::nps::category(ev.values[i]).map(str::to_string),
                at: ev.ts[i],
            });
        }
        let from = ev.len().saturating_sub(limit);
        view.timeline = (from..ev.len())
            .rev()
            .map(|i| TimelineEvent {
                ts: ev.ts[i],
                event: names[ev.names[i] as usize].clone(),
                value: (!ev.values[i].is_nan()).then_some(ev.values[i]),
            })
            .collect();
    });
    view.stage_history = history?;
    view.stage_zh = view.stage.map(|s| s.zh().to_string());
    Ok(Some(view))
}

/// Most days recorded in one call (a project that was idle for longer catches up over
/// several calls).
pub const MAX_DAYS: usize = 366;

/// Records the stage changes of every day from the one after the last recorded (the day
/// before yesterday's end, the first time: only yesterday) through yesterday, in the
/// project's zone and with its stage rules (`defaults.stages`: `rules` or `preset`, else
/// the e-commerce preset). With `day`, records that day only. Returns (day, changes added).
pub fn emit_stage_changes(
    store: &Store,
    project: &ProjectInfo,
    now: Timestamp,
    day: Option<jiff::civil::Date>,
    threads: usize,
) -> Result<Vec<(String, usize)>, RunError> {
    let settings = store.project_settings(project.id)?;
    let calendar = Calendar::new(&settings.timezone)?;
    let rules = stage_rules(&settings)?;
    let one_day = jiff::Span::new().days(1);
    let yesterday = calendar
        .date_of(now.millis())?
        .checked_sub(one_day)
        .map_err(|e| AnalyticsError::invalid("date", e.to_string()))?;
    let days: Vec<jiff::civil::Date> = match day {
        Some(d) => vec![d],
        None => {
            let through = store.stages_through(project.id)?;
            let mut d = match through.and_then(|t| t.parse::<jiff::civil::Date>().ok()) {
                Some(t) => t.checked_add(one_day).unwrap_or(t),
                None => yesterday,
            };
            let mut days = Vec::new();
            while d <= yesterday && days.len() < MAX_DAYS {
                days.push(d);
                d = match d.checked_add(one_day) {
                    Ok(next) => next,
                    Err(_) => break,
                };
            }
            days
        }
    };
    if days.is_empty() {
        return Ok(Vec::new());
    }
    let snapshot = store.snapshot(project.id)?;
    let source = SnapshotSource::new(&snapshot);
    let name = |s: crate::Stage| {
        serde_json::to_value(s)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    };
    let mut out = Vec::with_capacity(days.len());
    for d in days {
        let changes = stage_changes(&source, &rules, &calendar, d, threads)?;
        let rows: Vec<(u64, Option<String>, String)> = changes
            .iter()
            .map(|c| (c.person, c.from.map(name), name(c.to)))
            .collect();
        let end = calendar.start_of(d.checked_add(one_day).unwrap_or(d))?;
        let added =
            store.record_stage_changes(project.id, &d.to_string(), Timestamp(end), &rows)?;
        out.push((d.to_string(), added));
    }
    Ok(out)
}

/// Fits a project's models and keeps the fit as a new version with its data window and every
/// scored person's scores: with `"kind": "churn"` the churn-risk model (the `churn` analysis's
/// parameters), else the customer-value models (the `clv` analysis's). The project's defaults
/// for that analysis apply. Returns the version and the fit's summary (without the persons).
pub fn fit_models(
    store: &Store,
    project: &ProjectInfo,
    params: &[u8],
    now: Timestamp,
    threads: usize,
    progress: &dyn Fn(&str),
) -> Result<(i64, serde_json::Value), RunError> {
    let bad_json = |e: serde_json::Error| RunError::Json {
        analysis: "model".to_string(),
        message: e.to_string(),
    };
    let mut params: serde_json::Value = serde_json::from_slice(params).map_err(bad_json)?;
    let kind = match params.as_object_mut().and_then(|m| m.remove("kind")) {
        None => "clv".to_string(),
        Some(serde_json::Value::String(k)) if k == "clv" || k == "churn" => k,
        Some(other) => {
            return Err(AnalyticsError::invalid(
                "kind",
                format!("{other} is not one of \"clv\", \"churn\""),
            )
            .into());
        }
    };
    let settings = store.project_settings(project.id)?;
    crate::registry::apply_defaults(&kind, &mut params, &settings);
    let snapshot = store.snapshot(project.id)?;
    let source = SnapshotSource::new(&snapshot);
    progress(&format!(
        "fitting the {kind} model on {} events / 正在拟合",
        snapshot.events()
    ));
    let (model, window, spec, mut summary, scores) = if kind == "churn" {
        let spec: crate::churn::ChurnSpec = serde_json::from_value(params).map_err(bad_json)?;
        let mut query = spec.query(threads)?;
        query.list = usize::MAX;
        let result = crate::churn::churn(&source, &query)?;
        let scores: Vec<PersonScore> = result
            .list
            .iter()
            .map(|p| PersonScore {
                person: p.person,
                churn_risk: Some(p.risk),
                churn_factors: Some(
                    serde_json::to_value(&p.top_factors).expect("factors serialize"),
                ),
                ..PersonScore::default()
            })
            .collect();
        let window = (spec.date_from.clone(), spec.date_to.clone());
        let summary = serde_json::to_value(&result).expect("results serialize");
        let spec = serde_json::to_value(&spec).expect("specs serialize");
        ("churn_logistic".to_string(), window, spec, summary, scores)
    } else {
        let spec: crate::clv::ClvSpec = serde_json::from_value(params).map_err(bad_json)?;
        let mut query = spec.query(threads)?;
        query.list = usize::MAX;
        let result = crate::clv::clv_snapshot(&source, &query)?;
        let scores: Vec<PersonScore> = result
            .list
            .iter()
            .map(|s| PersonScore {
                person: s.person,
                p_alive: Some(s.p_alive),
                expected_purchases: Some(s.expected_purchases),
                p_purchase: s.p_purchase,
                expected_spend: s.expected_spend,
                clv: s.clv,
                ..PersonScore::default()
            })
            .collect();
        let window = (spec.date_from.clone(), spec.date_to.clone());
        let summary = serde_json::to_value(&result).expect("results serialize");
        let spec = serde_json::to_value(&spec).expect("specs serialize");
        (
            result.purchase_model.model.clone(),
            window,
            spec,
            summary,
            scores,
        )
    };
    if let Some(map) = summary.as_object_mut() {
        map.remove("list");
    }
    progress(&format!(
        "fitted; saving {} persons' scores / 已拟合，正在保存评分",
        scores.len()
    ));
    let fit = lodestar_store::ModelFitRow {
        id: 0,
        created_at: now,
        model,
        window_from: window.0,
        window_to: window.1,
        spec,
        summary: summary.clone(),
    };
    let id = store.record_model_fit(project.id, &fit, &scores)?;
    Ok((id, summary))
}

/// A segment's parameters: its condition tree and how many members to list.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    /// The condition tree (see [`crate::segment::Node`]).
    pub condition: crate::segment::Node,
    /// Members to list, lowest ids first; default 20, at most 10,000.
    #[serde(default)]
    pub sample: Option<usize>,
}

/// A segment's size and first members now: traits from the profiles, scores from the newest
/// customer-value and churn fits, the stage under the project's rules.
pub fn segment_preview(
    store: &Store,
    project: &ProjectInfo,
    cache: &ProfileCache,
    params: &[u8],
    now: Timestamp,
    threads: usize,
) -> Result<crate::segment::SegmentResult, RunError> {
    let spec: SegmentSpec = serde_json::from_slice(params).map_err(|e| RunError::Json {
        analysis: "segment".to_string(),
        message: e.to_string(),
    })?;
    spec.condition.check()?;
    let sample = spec.sample.unwrap_or(20);
    if sample > 10_000 {
        return Err(AnalyticsError::invalid("sample", "at most 10000").into());
    }
    Ok(evaluate(
        store,
        project,
        cache,
        (&store.snapshot(project.id)?, None),
        &[spec.condition],
        now,
        threads,
    )?
    .remove(0)
    .into_result(sample))
}

/// Brings the project's profile table in `cache` up to date (loading it the first time), with
/// the trait columns and memberships its saved dynamic segments name; returns its persons. A
/// server calls it at start so that the first segment question does not wait for the load.
pub fn warm_profiles(
    store: &Store,
    project: &ProjectInfo,
    cache: &ProfileCache,
    now: Timestamp,
    threads: usize,
) -> Result<usize, RunError> {
    let (_, trees) = dynamic_segments(store, project)?;
    let (keys, segments) = needs(&trees);
    let snapshot = store.snapshot(project.id)?;
    Ok(cache.with_table(
        store,
        project,
        &snapshot,
        &keys,
        &segments,
        (now.millis(), threads),
        |table| table.len(),
    )?)
}

/// Every scored person's newest model scores by name (`clv`, `p_alive`, `expected_purchases`,
/// `p_purchase`, `churn_risk`), from the newest customer-value and churn fits.
pub fn scores_by_person(
    store: &Store,
    project: &ProjectInfo,
) -> Result<std::collections::HashMap<u64, lodestar_core::JsonMap>, RunError> {
    let mut out: std::collections::HashMap<u64, lodestar_core::JsonMap> = Default::default();
    for s in store.latest_scores(project.id)? {
        let scores = out.entry(s.person).or_default();
        for (name, v) in [
            ("clv", s.clv),
            ("p_alive", s.p_alive),
            ("expected_purchases", s.expected_purchases),
            ("p_purchase", s.p_purchase),
            ("churn_risk", s.churn_risk),
        ] {
            if let Some(v) = v {
                scores.insert(name.into(), serde_json::json!(v));
            }
        }
    }
    Ok(out)
}

/// A segment to save: a name and either a condition tree (dynamic: kept current) or a list of
/// person ids (static).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSegment {
    /// Unique name.
    pub name: String,
    /// The condition tree of a dynamic segment.
    #[serde(default)]
    pub condition: Option<crate::segment::Node>,
    /// The members of a static segment by person id (e.g. a funnel's drop-offs).
    #[serde(default)]
    pub persons: Option<Vec<u64>>,
    /// The members of a static segment by user id (e.g. a CSV list); ids nobody has are
    /// skipped and counted.
    #[serde(default)]
    pub user_ids: Option<Vec<String>>,
    /// A rule-based tag: the segment's name shows on its members' profiles.
    #[serde(default)]
    pub tag: bool,
    /// The members of a static segment from an analysis's result: a funnel's drop-offs
    /// (`{"kind": "funnel", "params": {…, "dropped_at": k}}`). (A stage's members are a
    /// dynamic segment with a `stage` condition.)
    #[serde(default)]
    pub from_analysis: Option<FromAnalysis>,
}

/// An analysis whose persons make a static segment.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromAnalysis {
    /// `funnel`.
    pub kind: String,
    /// Its parameters (as for `POST …/analyses/{kind}`).
    pub params: serde_json::Value,
}

/// The persons an analysis's result lists (see [`FromAnalysis`]).
fn analysis_persons(
    store: &Store,
    project: &ProjectInfo,
    from: &FromAnalysis,
    threads: usize,
) -> Result<Vec<u64>, RunError> {
    if from.kind != "funnel" {
        return Err(AnalyticsError::invalid(
            "from_analysis.kind",
            format!(
                "{:?}: a static segment comes from a funnel's drop-offs (a stage's members are a dynamic segment with a stage condition)",
                from.kind
            ),
        )
        .into());
    }
    let mut params = from.params.clone();
    let map = params
        .as_object_mut()
        .ok_or_else(|| AnalyticsError::invalid("from_analysis.params", "an object"))?;
    if !map.contains_key("dropped_at") {
        return Err(AnalyticsError::invalid(
            "from_analysis.params.dropped_at",
            "say at which step (0-based) the persons dropped off",
        )
        .into());
    }
    // Every person, not a sample.
    map.insert("max_persons".into(), serde_json::json!(u64::MAX));
    let result = crate::registry::run_on_store(
        store,
        project,
        &from.kind,
        params.to_string().as_bytes(),
        threads,
    )?;
    let mut persons: Vec<u64> = result
        .get("dropped_persons")
        .and_then(|v| v.as_array())
        .map(|items| items.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default();
    persons.sort_unstable();
    persons.dedup();
    Ok(persons)
}

/// What saving a segment did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentCreated {
    /// Its id.
    pub id: i64,
    /// Members.
    pub size: u64,
    /// User ids given that nobody has.
    pub unknown_user_ids: u64,
}

/// Saves a segment and brings its membership up to date (recording the entries).
pub fn create_segment(
    store: &Store,
    project: &ProjectInfo,
    cache: &ProfileCache,
    params: &[u8],
    now: Timestamp,
    threads: usize,
) -> Result<SegmentCreated, RunError> {
    let spec: NewSegment = serde_json::from_slice(params).map_err(|e| RunError::Json {
        analysis: "segment".to_string(),
        message: e.to_string(),
    })?;
    if spec.name.trim().is_empty() || spec.name.len() > 200 {
        return Err(AnalyticsError::invalid("name", "1 to 200 characters").into());
    }
    let mut unknown = 0u64;
    if let Some(from) = &spec.from_analysis {
        if spec.condition.is_some() || spec.persons.is_some() || spec.user_ids.is_some() {
            return Err(AnalyticsError::invalid(
                "from_analysis",
                "give one of condition, persons, user_ids or from_analysis",
            )
            .into());
        }
        let persons = analysis_persons(store, project, from, threads)?;
        let definition = serde_json::json!({"persons": persons, "from_analysis":
            {"kind": from.kind, "params": from.params}});
        let id = store.create_segment(project.id, &spec.name, false, &definition, now)?;
        if spec.tag {
            store.set_segment_tag(project.id, id, true)?;
        }
        store.update_segment_members(project.id, id, &persons, now)?;
        return Ok(SegmentCreated {
            id,
            size: persons.len() as u64,
            unknown_user_ids: 0,
        });
    }
    let (dynamic, definition, members) = match (&spec.condition, &spec.persons, &spec.user_ids) {
        (Some(tree), None, None) => {
            tree.check()?;
            (
                true,
                serde_json::to_value(tree).expect("trees serialize"),
                None,
            )
        }
        (None, Some(persons), None) => {
            let mut p = persons.clone();
            p.sort_unstable();
            p.dedup();
            (false, serde_json::json!({"persons": p}), Some(p))
        }
        (None, None, Some(user_ids)) => {
            let mut p = Vec::with_capacity(user_ids.len());
            for u in user_ids {
                match store.find_profile(project.id, Some(u), None, None)? {
                    Some(profile) => p.push(profile.person.0),
                    None => unknown += 1,
                }
            }
            p.sort_unstable();
            p.dedup();
            (false, serde_json::json!({"persons": p}), Some(p))
        }
        _ => {
            return Err(AnalyticsError::invalid(
                "condition",
                "give one of condition (dynamic), persons or user_ids (static)",
            )
            .into());
        }
    };
    let id = store.create_segment(project.id, &spec.name, dynamic, &definition, now)?;
    if spec.tag {
        store.set_segment_tag(project.id, id, true)?;
    }
    let members = match members {
        Some(m) => m,
        None => {
            let tree = spec.condition.expect("dynamic");
            evaluate(
                store,
                project,
                cache,
                (&store.snapshot(project.id)?, None),
                &[tree],
                now,
                threads,
            )?
            .remove(0)
            .members
        }
    };
    store.update_segment_members(project.id, id, &members, now)?;
    Ok(SegmentCreated {
        id,
        size: members.len() as u64,
        unknown_user_ids: unknown,
    })
}

/// Each tree evaluated now over one snapshot, every member listed — among the persons of
/// `only` (sorted), when given; traits, scores and segment memberships from the project's
/// table in `cache`.
fn evaluate(
    store: &Store,
    project: &ProjectInfo,
    cache: &ProfileCache,
    (snapshot, only): (&lodestar_store::Snapshot, Option<&[u64]>),
    trees: &[crate::segment::Node],
    now: Timestamp,
    threads: usize,
) -> Result<Vec<crate::segment::Members>, RunError> {
    let settings = store.project_settings(project.id)?;
    let rules = stage_rules(&settings)?;
    let full = SnapshotSource::new(snapshot);
    // RFM layers rank a person among all buyers: computed over everyone.
    let mut rfm = std::collections::HashMap::new();
    for tree in trees {
        for days in tree.rfm_windows() {
            if let std::collections::hash_map::Entry::Vacant(e) = rfm.entry(days) {
                e.insert(rfm_layers(&full, &settings, days, now, threads)?);
            }
        }
    }
    let source = match only {
        Some(persons) => full.restricted(persons.to_vec()),
        None => SnapshotSource::new(snapshot),
    };
    let (keys, segments) = needs(trees);
    cache.with_table(
        store,
        project,
        snapshot,
        &keys,
        &segments,
        (now.millis(), threads),
        |table| {
            trees
                .iter()
                .map(|tree| {
                    let q = crate::segment::SegmentQuery {
                        root: tree.clone(),
                        now: now.millis(),
                        rules: rules.clone(),
                        sample: usize::MAX,
                        threads,
                        rfm: rfm.clone(),
                    };
                    Ok(crate::segment::members_among(&source, table, &q, only)?)
                })
                .collect()
        },
    )?
}

/// An RFM question under the project's settings (`defaults.rfm`), its range still to set.
fn rfm_query(
    settings: &lodestar_store::ProjectSettings,
    threads: usize,
) -> Result<crate::rfm::RfmQuery, RunError> {
    let mut params = serde_json::json!({"date_from": "2026-01-01", "date_to": "2026-01-01"});
    crate::registry::apply_defaults("rfm", &mut params, settings);
    let spec: crate::rfm::RfmSpec = serde_json::from_value(params)
        .map_err(|e| AnalyticsError::invalid("defaults.rfm", e.to_string()))?;
    Ok(spec.query(threads)?)
}

/// Every buyer's RFM layer key over the `days` before `now`, under the project's RFM
/// settings (`defaults.rfm`: purchase events, scheme, layers).
fn rfm_layers(
    source: &SnapshotSource<'_>,
    settings: &lodestar_store::ProjectSettings,
    days: u32,
    now: Timestamp,
    threads: usize,
) -> Result<std::collections::HashMap<u64, String>, RunError> {
    let mut q = rfm_query(settings, threads)?;
    q.to_ms = now.millis();
    q.from_ms = now.millis() - i64::from(days) * 86_400_000;
    q.list = usize::MAX;
    let result = crate::rfm::rfm(source, &q)?;
    Ok(result
        .list
        .into_iter()
        .map(|p| (p.person, p.layer))
        .collect())
}

/// Re-evaluates every dynamic segment now, recording who entered and who exited. Returns
/// (segment id, entered, exited) per segment.
pub fn refresh_segments(
    store: &Store,
    project: &ProjectInfo,
    cache: &ProfileCache,
    now: Timestamp,
    threads: usize,
) -> Result<Vec<(i64, u64, u64)>, RunError> {
    let (ids, trees) = dynamic_segments(store, project)?;
    if trees.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (id, result) in ids.into_iter().zip(evaluate(
        store,
        project,
        cache,
        (&store.snapshot(project.id)?, None),
        &trees,
        now,
        threads,
    )?) {
        let (entered, exited) =
            store.update_segment_members(project.id, id, &result.members, now)?;
        out.push((id, entered, exited));
    }
    Ok(out)
}

/// What an incremental segment round did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TouchedRefresh {
    /// Events through this write sequence number are reflected (the next round's `since`).
    pub seq: u64,
    /// Persons re-evaluated (those with events written since `since`, merged persons with
    /// their canonical person).
    pub persons: u64,
    /// Per dynamic segment: (id, entered, exited).
    pub segments: Vec<(i64, u64, u64)>,
}

/// Re-evaluates the dynamic segments for the persons with events written after `since`
/// only (their traits change with `identify` and merges, which are events too), recording
/// who entered and who exited; everyone else keeps their membership. This keeps segments
/// current as data arrives; time passing (a purchase leaving a 30-day window) is the full
/// [`refresh_segments`]'s work. With `since` 0 nothing is done but finding the current
/// sequence number.
pub fn refresh_segments_touched(
    store: &Store,
    project: &ProjectInfo,
    cache: &ProfileCache,
    since: u64,
    now: Timestamp,
    threads: usize,
) -> Result<TouchedRefresh, RunError> {
    let snapshot = store.snapshot(project.id)?;
    if since == 0 {
        return Ok(TouchedRefresh {
            seq: crate::profiles::last_seq(&snapshot),
            ..TouchedRefresh::default()
        });
    }
    let (touched, seq) = crate::profiles::touched_since(&snapshot, since);
    let mut out = TouchedRefresh {
        seq,
        persons: touched.len() as u64,
        segments: Vec::new(),
    };
    let (ids, trees) = dynamic_segments(store, project)?;
    if touched.is_empty() || trees.is_empty() {
        return Ok(out);
    }
    let results = evaluate(
        store,
        project,
        cache,
        (&snapshot, Some(&touched)),
        &trees,
        now,
        threads,
    )?;
    for (id, result) in ids.into_iter().zip(results) {
        let (entered, exited) =
            store.update_segment_members_among(project.id, id, &touched, &result.members, now)?;
        out.segments.push((id, entered, exited));
    }
    Ok(out)
}

/// The dynamic segments' ids and trees.
fn dynamic_segments(
    store: &Store,
    project: &ProjectInfo,
) -> Result<(Vec<i64>, Vec<crate::segment::Node>), RunError> {
    let (mut ids, mut trees) = (Vec::new(), Vec::new());
    for s in store.segments(project.id)? {
        if s.dynamic {
            let tree: crate::segment::Node = serde_json::from_value(s.definition)
                .map_err(|e| AnalyticsError::invalid("condition", e.to_string()))?;
            ids.push(s.id);
            trees.push(tree);
        }
    }
    Ok((ids, trees))
}

/// The trait columns and saved segments some trees read.
fn needs(trees: &[crate::segment::Node]) -> (Vec<String>, Vec<i64>) {
    let (mut keys, mut segments) = (Vec::new(), Vec::new());
    for tree in trees {
        keys.extend(tree.trait_keys());
        segments.extend(tree.segments_referenced());
    }
    keys.sort();
    keys.dedup();
    segments.sort_unstable();
    segments.dedup();
    (keys, segments)
}

/// The manual tags in a person's traits (`tags`: a list of texts).
fn manual_tags(traits: &lodestar_core::JsonMap) -> Vec<String> {
    match traits.get("tags") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The channels consent is recorded for.
pub const CONSENT_CHANNELS: [&str; 5] = ["email", "sms", "push", "wechat", "webhook"];

/// Who a profile change is for: user ids or person ids (give one).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileEdit {
    /// Persons by user id.
    #[serde(default)]
    pub user_ids: Vec<String>,
    /// Persons by person id.
    #[serde(default)]
    pub persons: Vec<u64>,
    /// Manual tags to add.
    #[serde(default)]
    pub add_tags: Vec<String>,
    /// Manual tags to remove.
    #[serde(default)]
    pub remove_tags: Vec<String>,
    /// Consent to record per channel (`{"email": true, "sms": false}`).
    #[serde(default)]
    pub consent: std::collections::BTreeMap<String, bool>,
}

/// What a profile change did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProfileEdited {
    /// Persons changed.
    pub updated: u64,
    /// Persons whose tags and consent were already so.
    pub unchanged: u64,
    /// Ids given that nobody has.
    pub unknown: u64,
}

/// Adds or removes manual tags and records consent for some persons. Each change is written
/// as an `identify` call through the normal write path (so it is durable, ordered with the
/// person's other messages, and kept in the trait history): `tags` is the list of manual
/// tags, `consent` an object of channel → granted.
pub fn edit_profiles(
    store: &Store,
    project: &ProjectInfo,
    params: &[u8],
    now: Timestamp,
) -> Result<ProfileEdited, RunError> {
    let edit: ProfileEdit = serde_json::from_slice(params).map_err(|e| RunError::Json {
        analysis: "profiles".to_string(),
        message: e.to_string(),
    })?;
    if edit.user_ids.is_empty() == edit.persons.is_empty() {
        return Err(AnalyticsError::invalid("user_ids", "give user_ids or persons").into());
    }
    for (i, tag) in edit.add_tags.iter().chain(&edit.remove_tags).enumerate() {
        if tag.trim().is_empty() || tag.chars().count() > 64 {
            return Err(AnalyticsError::invalid(format!("tags[{i}]"), "1 to 64 characters").into());
        }
    }
    if let Some(c) = edit
        .consent
        .keys()
        .find(|c| !CONSENT_CHANNELS.contains(&c.as_str()))
    {
        return Err(AnalyticsError::invalid(
            format!("consent.{c}"),
            format!(
                "not a channel; the channels are {}",
                CONSENT_CHANNELS.join(", ")
            ),
        )
        .into());
    }
    let mut out = ProfileEdited::default();
    let mut profiles = Vec::new();
    for u in &edit.user_ids {
        match store.find_profile(project.id, Some(u), None, None)? {
            Some(p) => profiles.push(p),
            None => out.unknown += 1,
        }
    }
    for &p in &edit.persons {
        match store.find_profile(project.id, None, None, Some(p))? {
            Some(p) => profiles.push(p),
            None => out.unknown += 1,
        }
    }
    let mut messages = Vec::new();
    for profile in profiles {
        let mut traits = lodestar_core::JsonMap::new();
        let mut tags = manual_tags(&profile.traits);
        let before = tags.clone();
        tags.retain(|t| !edit.remove_tags.contains(t));
        for t in &edit.add_tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        if tags != before {
            traits.insert("tags".into(), serde_json::json!(tags));
        }
        if !edit.consent.is_empty() {
            let mut consent = match profile.traits.get("consent") {
                Some(serde_json::Value::Object(c)) => c.clone(),
                _ => lodestar_core::JsonMap::new(),
            };
            let old = consent.clone();
            for (channel, granted) in &edit.consent {
                consent.insert(channel.clone(), serde_json::json!(granted));
            }
            if consent != old {
                traits.insert("consent".into(), serde_json::Value::Object(consent));
            }
        }
        if traits.is_empty() {
            out.unchanged += 1;
            continue;
        }
        let (user_id, anonymous_id) =
            match (profile.user_ids.first(), profile.anonymous_ids.first()) {
                (Some(u), _) => (Some(u.clone()), None),
                (None, Some(a)) => (None, Some(a.clone())),
                (None, None) => {
                    out.unknown += 1;
                    continue;
                }
            };
        let seq = EDITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut m = lodestar_core::Message::new(
            lodestar_core::MessageKind::Identify,
            format!(
                "lodestar-profile-{}-{}-{seq}",
                profile.person.0,
                now.millis()
            ),
            now,
        );
        m.user_id = user_id;
        m.anonymous_id = anonymous_id;
        m.traits = traits;
        m.context
            .insert("source".into(), serde_json::json!("lodestar profile edit"));
        m.channel = Some("server".into());
        messages.push(m);
        out.updated += 1;
    }
    if !messages.is_empty() {
        let batch = lodestar_store::AppendBatch {
            messages,
            ..Default::default()
        };
        lodestar_store::EventStore::append(store, project.id, batch)?.wait_blocking()?;
    }
    Ok(out)
}

/// Distinguishes the message ids of profile edits made in the same millisecond.
static EDITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
