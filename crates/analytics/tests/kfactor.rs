//! The referral K-factor over a real store (parts, tail, merged persons, filters) against the
//! same definitions computed by plain loops over the decoded messages and profiles.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::civil::{Date, date};
use jiff::tz::TimeZone;
use lodestar_analytics::filter::Filters;
use lodestar_analytics::kfactor::{
    CycleTime, KFactorFigures, KFactorPeriod, KFactorResult, KFactorSpec, TopInviter, kfactor,
};
use lodestar_analytics::registry::Data;
use lodestar_analytics::{Interval, SnapshotSource};
use lodestar_core::{FixedClock, JsonMap, Message, MessageKind, ProjectId, Timestamp};
use lodestar_store::{
    AppendBatch, EventStore, Profile, ProjectSettings, Snapshot, Store, StoreConfig,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const INVITE: &str = "Invite Sent";
const RESENT: &str = "Invite Resent";
const SIGNUP: &str = "Signed Up";
const NAMES: [&str; 4] = [INVITE, RESENT, SIGNUP, "view"];
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// 2026-01-26T00:00:00Z, a Monday.
fn day0() -> i64 {
    date(2026, 1, 26)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_millisecond()
}

fn message(
    id: usize,
    name: &str,
    user: Option<&str>,
    anon: Option<&str>,
    ts: i64,
    properties: JsonMap,
) -> Message {
    Message {
        message_id: format!("m{id}"),
        kind: MessageKind::Track,
        event: Some(name.to_string()),
        user_id: user.map(str::to_string),
        anonymous_id: anon.map(str::to_string),
        previous_id: None,
        group_id: None,
        category: None,
        timestamp: Timestamp(ts),
        original_timestamp: None,
        sent_at: None,
        received_at: Timestamp(ts),
        properties,
        traits: JsonMap::new(),
        set_once: JsonMap::new(),
        context: JsonMap::new(),
        integrations: JsonMap::new(),
        channel: None,
    }
}

fn open(dir: &std::path::Path) -> (Arc<Store>, ProjectId) {
    let store = Store::open(
        StoreConfig {
            data_dir: dir.to_path_buf(),
            maintenance_interval_ms: 0,
            seal_rows: 7,
            max_seal_rows: 7,
            compact_fanin: 2,
            ..StoreConfig::default()
        },
        Arc::new(FixedClock::new(Timestamp(day0()))),
    )
    .unwrap();
    let (p, _) = store.create_project("referrals").unwrap();
    (store, p.id)
}

fn append(store: &Store, p: ProjectId, m: Message) {
    store
        .append(
            p,
            AppendBatch {
                messages: vec![m],
                ..Default::default()
            },
        )
        .unwrap()
        .wait_blocking()
        .unwrap();
}

fn profiles_of(store: &Store, p: ProjectId) -> Vec<Profile> {
    let mut out = Vec::new();
    store
        .for_each_profile(p, &mut |profile| {
            out.push(profile);
            Ok(())
        })
        .unwrap();
    out
}

/// Every event: (canonical person, time, seq, name, properties).
fn decoded(snapshot: &Snapshot) -> Vec<(u64, i64, u64, String, JsonMap)> {
    let mut rows = Vec::new();
    snapshot
        .for_each_message(|person, seq, m| {
            let name = m.analytic_name().to_string();
            rows.push((person.0, m.timestamp.millis(), seq, name, m.properties));
            Ok(())
        })
        .unwrap();
    rows.sort_by_key(|r| (r.0, r.1, r.2));
    rows
}

#[derive(Debug, Clone)]
struct Step {
    anon: Option<u8>,
    user: Option<u8>,
    event: usize,
    hour: i64,
    /// -1, 0 or +1 ms around the hour: just before, on and after period edges.
    jitter: i64,
    /// `u{r}` (u4 and u5 are nobody's), 6: an empty text, None: absent.
    referrer: Option<u8>,
    n: u8,
    /// At the same millisecond as the step before.
    tie: bool,
    seal: bool,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        (
            proptest::option::weighted(0.8, 0u8..6),
            proptest::option::weighted(0.5, 0u8..4),
            0usize..4,
            // Often on the hours where UTC (0 h) and Shanghai (16 h) days begin: ties and edges.
            prop_oneof![
                proptest::sample::select(vec![0i64, 16, 24, 40, 48, 64]),
                (0i64..48).prop_map(|k| k * 8),
                0i64..24 * 16
            ],
            prop_oneof![Just(0i64), -1i64..2],
            proptest::option::weighted(0.85, 0u8..7),
            0u8..4,
            proptest::bool::weighted(0.3),
            proptest::bool::weighted(0.1),
        )
            .prop_map(
                |(anon, user, event, hour, jitter, referrer, n, tie, seal)| Step {
                    // Every message needs an id.
                    anon: if user.is_none() {
                        Some(anon.unwrap_or(0))
                    } else {
                        anon
                    },
                    user,
                    event,
                    hour,
                    jitter,
                    referrer,
                    n,
                    tie,
                    seal,
                },
            ),
        1..60,
    )
}

/// A naive result, computed by plain loops.
struct Naive<'a> {
    rows: Vec<&'a (u64, i64, u64, String, JsonMap)>,
    users: HashMap<String, u64>,
    tz: TimeZone,
    interval: Interval,
    from: Date,
    to: Date,
    invites: Vec<String>,
}

impl Naive<'_> {
    fn period(&self, ts: i64) -> Option<Date> {
        let d = jiff::Timestamp::from_millisecond(ts)
            .unwrap()
            .to_zoned(self.tz.clone())
            .date();
        if d < self.from || d > self.to {
            return None;
        }
        Some(match self.interval {
            Interval::Day => d,
            Interval::Week => d
                .checked_sub(jiff::Span::new().days(d.weekday().to_monday_zero_offset() as i64))
                .unwrap(),
            Interval::Month => date(d.year(), d.month(), 1),
            Interval::Year => date(d.year(), 1, 1),
        })
    }

    fn referrer(props: &JsonMap) -> Option<String> {
        match props.get("referrer_id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    /// Figures of the rows whose period `in_scope` accepts.
    fn figures(&self, in_scope: &dyn Fn(Date) -> bool) -> KFactorFigures {
        let mut active = BTreeSet::new();
        let mut inviters = BTreeSet::new();
        let mut invitations = 0u64;
        let mut conversions = 0u64;
        let mut attributed = 0u64;
        let mut invitees = BTreeSet::new();
        let mut times = Vec::new();
        for r in &self.rows {
            let Some(p) = self.period(r.1) else { continue };
            if !in_scope(p) {
                continue;
            }
            active.insert(r.0);
            if self.invites.contains(&r.3) {
                inviters.insert(r.0);
                invitations += 1;
            }
            if r.3 != SIGNUP {
                continue;
            }
            let Some(referrer) = Self::referrer(&r.4) else {
                continue;
            };
            conversions += 1;
            invitees.insert(r.0);
            let Some(&inviter) = self.users.get(&referrer) else {
                continue;
            };
            attributed += 1;
            // The inviter's latest invite in the range at or before the conversion.
            let mut latest = None;
            for s in &self.rows {
                if s.0 == inviter
                    && self.invites.contains(&s.3)
                    && self.period(s.1).is_some()
                    && s.1 <= r.1
                {
                    latest = latest.max(Some(s.1));
                }
            }
            if let Some(l) = latest {
                times.push(r.1 - l);
            }
        }
        let (active, inviters) = (active.len() as u64, inviters.len() as u64);
        let div = |a: u64, b: u64| {
            if b == 0 {
                None
            } else {
                Some(a as f64 / b as f64)
            }
        };
        let k = match (div(invitations, inviters), div(conversions, invitations)) {
            (Some(i), Some(c)) => Some(i * c),
            _ => None,
        };
        let k_active = match (div(invitations, active), div(conversions, invitations)) {
            (Some(a), Some(b)) => Some(a * b),
            _ => None,
        };
        times.sort();
        let at = |q: f64| {
            if times.is_empty() {
                None
            } else {
                Some(times[((times.len() - 1) as f64 * q).round() as usize])
            }
        };
        KFactorFigures {
            active,
            inviters,
            invitations,
            conversions,
            attributed,
            unattributed: conversions - attributed,
            converted_invitees: invitees.len() as u64,
            invites_per_inviter: div(invitations, inviters),
            invites_per_active: div(invitations, active),
            conversion_rate: div(conversions, invitations),
            k_factor: k,
            k_factor_per_active: k_active,
            cycle_time: CycleTime {
                timed: times.len() as u64,
                median_ms: at(0.5),
                mean_ms: if times.is_empty() {
                    None
                } else {
                    Some(times.iter().sum::<i64>() as f64 / times.len() as f64)
                },
                p90_ms: at(0.9),
            },
        }
    }

    fn result(&self, top_n: usize) -> KFactorResult {
        let mut starts = Vec::new();
        let mut d = self.from;
        while d <= self.to {
            let ts = d
                .to_zoned(self.tz.clone())
                .unwrap()
                .timestamp()
                .as_millisecond();
            let p = self.period(ts).unwrap();
            if starts.last() != Some(&p) {
                starts.push(p);
            }
            d = d.tomorrow().unwrap();
        }
        let periods = starts
            .iter()
            .map(|&s| KFactorPeriod {
                date: s.to_string(),
                figures: self.figures(&|p| p == s),
            })
            .collect();
        let mut board: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for r in &self.rows {
            if self.period(r.1).is_none() {
                continue;
            }
            if self.invites.contains(&r.3) {
                board.entry(r.0).or_default().0 += 1;
            }
            if r.3 == SIGNUP
                && let Some(referrer) = Self::referrer(&r.4)
                && let Some(&inviter) = self.users.get(&referrer)
            {
                board.entry(inviter).or_default().1 += 1;
            }
        }
        let mut top: Vec<TopInviter> = board
            .into_iter()
            .map(|(person, (invitations, conversions))| TopInviter {
                person,
                invitations,
                conversions,
            })
            .collect();
        top.sort_by(|a, b| {
            (b.conversions, b.invitations, a.person).cmp(&(a.conversions, a.invitations, b.person))
        });
        top.truncate(top_n);
        KFactorResult {
            periods,
            total: self.figures(&|_| true),
            top_inviters: top,
        }
    }
}

fn visitor(
    profiles: &[Profile],
) -> impl Fn(&mut dyn FnMut(&Profile)) -> lodestar_analytics::Result<()> + '_ {
    move |f: &mut dyn FnMut(&Profile)| {
        for p in profiles {
            f(p);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn kfactor_matches_plain_loops(
        steps in steps(),
        shanghai in any::<bool>(),
        interval in prop_oneof![Just(Interval::Day), Just(Interval::Week), Just(Interval::Month)],
        start in 0i64..6,
        len in 0i64..12,
        resent_counts in any::<bool>(),
        filter_events in any::<bool>(),
        filter_persons in proptest::option::weighted(0.3, 0u64..3),
        top_n in 1usize..5,
        threads in 1usize..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (store, p) = open(dir.path());
        let mut ts = day0();
        for (i, s) in steps.iter().enumerate() {
            let mut props = JsonMap::new();
            props.insert("n".into(), json!(s.n));
            match s.referrer {
                Some(6) => { props.insert("referrer_id".into(), json!("")); }
                Some(r) => { props.insert("referrer_id".into(), json!(format!("u{r}"))); }
                None => {}
            }
            let user = s.user.map(|u| format!("u{u}"));
            let anon = s.anon.map(|a| format!("a{a}"));
            if !s.tie {
                ts = day0() + s.hour * HOUR + s.jitter;
            }
            append(&store, p, message(i, NAMES[s.event], user.as_deref(), anon.as_deref(), ts, props));
            if s.seal {
                store.seal_now(p).unwrap();
                store.compact_now(p, false).unwrap();
            }
        }
        let snapshot = store.snapshot(p).unwrap();
        let rows = decoded(&snapshot);
        let profiles = profiles_of(&store, p);

        let from = date(2026, 1, 26).checked_add(jiff::Span::new().days(start)).unwrap();
        let to = from.checked_add(jiff::Span::new().days(len)).unwrap();
        let zone = if shanghai { "Asia/Shanghai" } else { "UTC" };
        let invites: Vec<String> = if resent_counts { vec![INVITE.into(), RESENT.into()] } else { vec![INVITE.into()] };
        let spec = KFactorSpec {
            invite_events: Some(invites.clone()),
            conversion_event: None,
            referrer_property: None,
            top_n: Some(top_n),
            interval: Some(format!("{interval:?}").to_lowercase()),
            date_from: from.to_string(),
            date_to: to.to_string(),
            timezone: Some(zone.into()),
        };
        let q = spec.query(threads).unwrap();

        // Filters: events with n < 3; persons whose id is not ≡ k mod 3.
        let filters: Filters = if filter_events {
            serde_json::from_value(json!({"events": [{"property": "n", "op": "lt", "value": 3}]})).unwrap()
        } else {
            Filters::default()
        };
        let keep_person = |person: u64| filter_persons.is_none_or(|k| person % 3 != k);
        let allowed = filter_persons.map(|_| profiles.iter().map(|p| p.person.0).filter(|&p| keep_person(p)).collect());
        let source = SnapshotSource::filtered(&snapshot, &filters, allowed, threads).unwrap();
        let visit = visitor(&profiles);
        let settings = ProjectSettings { timezone: zone.into(), defaults: JsonMap::new() };
        let data = Data { snapshot: &snapshot, settings: &settings, profiles: &visit, person_of_user: None };
        let got = kfactor(&data, &source, &q).unwrap();

        let users: HashMap<String, u64> = profiles
            .iter()
            .flat_map(|p| p.user_ids.iter().map(move |u| (u.clone(), p.person.0)))
            .collect();
        // A direct lookup of user ids gives the same answer as visiting every profile.
        let lookup = |ids: &[String]| -> lodestar_analytics::Result<Vec<Option<u64>>> {
            Ok(ids.iter().map(|u| users.get(u).copied()).collect())
        };
        let direct = Data { person_of_user: Some(&lookup), ..data };
        prop_assert_eq!(&kfactor(&direct, &source, &q).unwrap(), &got);
        let naive = Naive {
            rows: rows
                .iter()
                .filter(|r| keep_person(r.0))
                .filter(|r| !filter_events || r.4.get("n").and_then(Value::as_u64).is_some_and(|n| n < 3))
                .collect(),
            users,
            tz: TimeZone::get(zone).unwrap(),
            interval,
            from,
            to,
            invites,
        };
        prop_assert_eq!(got, naive.result(top_n));
    }
}

#[test]
fn hand_example_has_known_k_and_cycle_time() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p) = open(dir.path());
    // Feb 2026: weeks Mon 2–Sun 8 and Mon 9–Sun 15 (UTC).
    let at = |d: i8, h: i64| {
        date(2026, 2, d)
            .to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_millisecond()
            + h * HOUR
    };
    let referrer = |r: Value| {
        let mut m = JsonMap::new();
        m.insert("referrer_id".into(), r);
        m
    };
    let none = JsonMap::new;
    let messages = vec![
        // Alice is known as "alice"; her invites go out anonymously (a1) until a1 merges in.
        message(0, "view", Some("alice"), None, at(1, 8), none()),
        message(1, INVITE, None, Some("a1"), at(2, 10), none()),
        message(2, INVITE, None, Some("a1"), at(3, 10), none()),
        // Gus converts before any invitation of Alice's: attributed, not timed.
        message(
            3,
            SIGNUP,
            None,
            Some("g1"),
            at(2, 9),
            referrer(json!("alice")),
        ),
        // Carol converts 2 h after Alice's latest invite; she later merges into "carol".
        message(
            4,
            SIGNUP,
            None,
            Some("c1"),
            at(3, 12),
            referrer(json!("alice")),
        ),
        message(5, "view", Some("carol"), None, at(5, 0), none()),
        message(6, INVITE, Some("alice"), Some("a1"), at(9, 9), none()),
        // Bob is user "42"; Dan names him with the number 42, five days after his invite.
        message(7, INVITE, Some("42"), None, at(4, 12), none()),
        message(8, SIGNUP, None, Some("d1"), at(9, 12), referrer(json!(42))),
        // Ivy converts in the very millisecond of Bob's invite: timed, 0 ms.
        message(
            14,
            SIGNUP,
            None,
            Some("i1"),
            at(4, 12),
            referrer(json!("42")),
        ),
        message(9, "view", Some("carol"), Some("c1"), at(10, 0), none()),
        // Eve names nobody known: unattributed. Fay names no one: not a conversion.
        message(
            10,
            SIGNUP,
            None,
            Some("e1"),
            at(10, 1),
            referrer(json!("zed")),
        ),
        message(11, SIGNUP, None, Some("f1"), at(10, 2), none()),
        // Outside the range: neither counts.
        message(12, INVITE, Some("alice"), None, at(16, 0), none()),
        message(
            13,
            SIGNUP,
            None,
            Some("h1"),
            at(2, 0) - 1,
            referrer(json!("alice")),
        ),
    ];
    for (i, m) in messages.into_iter().enumerate() {
        append(&store, p, m);
        if i == 6 {
            store.seal_now(p).unwrap();
        }
    }
    let snapshot = store.snapshot(p).unwrap();
    let profiles = profiles_of(&store, p);
    let person = |user: &str| {
        profiles
            .iter()
            .find(|p| p.user_ids.iter().any(|u| u == user))
            .unwrap()
            .person
            .0
    };
    let visit = visitor(&profiles);
    let settings = ProjectSettings {
        timezone: "UTC".into(),
        defaults: JsonMap::new(),
    };
    let data = Data {
        snapshot: &snapshot,
        settings: &settings,
        profiles: &visit,
        person_of_user: None,
    };
    let spec: KFactorSpec = serde_json::from_value(json!({
        "date_from": "2026-02-02", "date_to": "2026-02-15", "timezone": "UTC"
    }))
    .unwrap();
    let r = kfactor(
        &data,
        &SnapshotSource::new(&snapshot),
        &spec.query(2).unwrap(),
    )
    .unwrap();

    assert_eq!(r.periods.len(), 2);
    let w1 = &r.periods[0];
    assert_eq!(w1.date, "2026-02-02");
    let f = &w1.figures;
    // Active: Alice, Bob, Gus, Carol, Ivy. Invitations: Alice 2, Bob 1. Conversions: Gus,
    // Carol, Ivy.
    assert_eq!(
        (
            f.active,
            f.inviters,
            f.invitations,
            f.conversions,
            f.attributed,
            f.converted_invitees
        ),
        (5, 2, 3, 3, 3, 3)
    );
    assert_eq!(f.invites_per_inviter, Some(1.5));
    assert_eq!(f.invites_per_active, Some(0.6));
    assert_eq!(f.conversion_rate, Some(1.0));
    assert_eq!(f.k_factor, Some(1.5));
    assert_eq!(f.k_factor_per_active, Some(0.6));
    // Ivy (0 ms) and Carol (2 h); Gus is not timed.
    assert_eq!(
        f.cycle_time,
        CycleTime {
            timed: 2,
            median_ms: Some(2 * HOUR),
            mean_ms: Some(HOUR as f64),
            p90_ms: Some(2 * HOUR),
        }
    );

    let f = &r.periods[1].figures;
    // Active: Alice, Carol, Dan, Eve, Fay. Conversions: Dan (attributed), Eve (not).
    assert_eq!(
        (
            f.active,
            f.inviters,
            f.invitations,
            f.conversions,
            f.attributed,
            f.unattributed
        ),
        (5, 1, 1, 2, 1, 1)
    );
    assert_eq!(f.conversion_rate, Some(2.0));
    assert!((f.k_factor.unwrap() - 2.0).abs() < 1e-12);
    assert!((f.k_factor_per_active.unwrap() - 0.4).abs() < 1e-12);
    assert_eq!(f.cycle_time.median_ms, Some(5 * DAY));

    let t = &r.total;
    assert_eq!(
        (
            t.active,
            t.inviters,
            t.invitations,
            t.conversions,
            t.attributed,
            t.converted_invitees
        ),
        (8, 2, 4, 5, 4, 5)
    );
    assert_eq!(t.unattributed, 1);
    // K = (4 / 2) × (5 / 4): five new users for two inviters; per active person (4 / 8) × (5 / 4).
    assert!((t.k_factor.unwrap() - 2.5).abs() < 1e-12);
    assert!((t.k_factor_per_active.unwrap() - 0.625).abs() < 1e-12);
    assert_eq!(
        t.cycle_time,
        CycleTime {
            timed: 3,
            median_ms: Some(2 * HOUR),
            mean_ms: Some((2 * HOUR + 5 * DAY) as f64 / 3.0),
            p90_ms: Some(5 * DAY),
        }
    );
    // Both brought two; Alice sent more invitations.
    assert_eq!(
        r.top_inviters,
        vec![
            TopInviter {
                person: person("alice"),
                invitations: 3,
                conversions: 2
            },
            TopInviter {
                person: person("42"),
                invitations: 1,
                conversions: 2
            },
        ]
    );
}

#[test]
fn bad_parameters_name_the_field() {
    let field = |extra: Value| {
        let mut params = json!({"date_from": "2026-02-02", "date_to": "2026-02-15"});
        params
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let spec: KFactorSpec = serde_json::from_value(params).unwrap();
        spec.query(1).unwrap_err().field().to_string()
    };
    assert_eq!(
        field(json!({"invite_events": ["Invite Sent", ""]})),
        "invite_events[1]"
    );
    assert_eq!(field(json!({"invite_events": []})), "invite_events");
    assert_eq!(field(json!({"conversion_event": ""})), "conversion_event");
    assert_eq!(
        field(json!({"invite_events": ["Signed Up"]})),
        "conversion_event"
    );
    assert_eq!(
        field(json!({"referrer_property": "a..b"})),
        "referrer_property"
    );
    assert_eq!(field(json!({"top_n": 0})), "top_n");
    assert_eq!(field(json!({"interval": "fortnight"})), "interval");
    assert_eq!(field(json!({"timezone": "Mars/Base"})), "timezone");
    assert_eq!(field(json!({"date_to": "2026-01-01"})), "date_to");
    assert!(
        serde_json::from_value::<KFactorSpec>(
            json!({"date_from": "2026-02-02", "date_to": "2026-02-15", "referer": "x"})
        )
        .is_err()
    );
}
