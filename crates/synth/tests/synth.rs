//! Integration tests of the generator: determinism, message validity, the identity story,
//! funnels, NPS, referrals, the orders export, and statistical checks that the generated
//! orders follow the BG/NBD and Gamma-Gamma truth.

use std::collections::{BTreeMap, HashMap, HashSet};

use lodestar_core::{Message, MessageKind, Timestamp, check_distinct_id};
use lodestar_synth::{
    ConfigError, ORDERS_CSV_HEADER, Synth, SynthConfig, UserTruth, generate, generate_user,
    orders_csv,
};
use proptest::prelude::*;
use serde_json::Value;

fn config(users: u64, seed: u64) -> SynthConfig {
    SynthConfig {
        users,
        seed,
        ..SynthConfig::default()
    }
}

fn population(config: &SynthConfig) -> Vec<(UserTruth, Vec<Message>)> {
    let synth = Synth::new(config.clone()).expect("valid config");
    (0..config.users)
        .map(|i| synth.user(i).expect("index in range"))
        .collect()
}

fn prop<'a>(m: &'a Message, key: &str) -> &'a Value {
    m.properties
        .get(key)
        .unwrap_or_else(|| panic!("{} has no {key}: {m:?}", m.analytic_name()))
}

fn is(m: &Message, event: &str) -> bool {
    m.kind == MessageKind::Track && m.event.as_deref() == Some(event)
}

/// The invariant of `Message` that the store relies on, plus the rules of historical data.
fn check_message(m: &Message, config: &SynthConfig) {
    assert!(m.user_id.is_some() || m.anonymous_id.is_some(), "{m:?}");
    for id in [&m.user_id, &m.anonymous_id].into_iter().flatten() {
        assert_eq!(check_distinct_id(id), Ok(()), "{m:?}");
    }
    match m.kind {
        MessageKind::Track => assert!(m.event.as_deref().is_some_and(|e| !e.is_empty())),
        MessageKind::Alias => assert!(m.previous_id.is_some() && m.user_id.is_some()),
        MessageKind::Group => assert!(m.group_id.is_some() && !m.traits.is_empty()),
        MessageKind::Identify => assert!(m.user_id.is_some() && !m.traits.is_empty()),
        MessageKind::Page | MessageKind::Screen => assert!(m.event.is_some()),
    }
    assert!(!m.message_id.is_empty());
    assert!(
        m.timestamp >= config.start && m.timestamp < config.end(),
        "{m:?}"
    );
    assert_eq!(m.received_at, m.timestamp);
    assert_eq!(m.sent_at, None);
    assert_eq!(m.original_timestamp, None);
    let channel = m.channel.as_deref();
    assert!(
        matches!(channel, Some("mobile" | "browser" | "server")),
        "{m:?}"
    );
}

#[test]
fn same_config_same_output_and_another_seed_differs() {
    let c = config(400, 7);
    let a: Vec<Message> = generate(&c).collect();
    let b: Vec<Message> = generate(&c).collect();
    assert!(!a.is_empty());
    assert_eq!(a, b);
    let json_a = serde_json::to_string(&a).unwrap();
    assert_eq!(json_a, serde_json::to_string(&b).unwrap());

    let other: Vec<Message> = generate(&config(400, 8)).collect();
    assert_ne!(a, other);

    let mut csv_a = Vec::new();
    let mut csv_b = Vec::new();
    orders_csv(&c, &mut csv_a).unwrap();
    orders_csv(&c, &mut csv_b).unwrap();
    assert_eq!(csv_a, csv_b);
}

#[test]
fn users_are_independent_of_generation_order() {
    let c = config(300, 11);
    let stream: Vec<Message> = generate(&c).collect();
    let synth = Synth::new(c.clone()).unwrap();
    // Backwards, one by one: the same messages, in the same per-user blocks.
    let mut backwards: Vec<Vec<Message>> = (0..c.users)
        .rev()
        .map(|i| synth.user(i).unwrap().1)
        .collect();
    backwards.reverse();
    assert_eq!(stream, backwards.concat());
    let (truth, alone) = generate_user(&c, 123);
    assert_eq!(truth, synth.user(123).unwrap().0);
    assert_eq!(alone, backwards[123]);
    assert!(synth.user(c.users).is_none());
}

#[test]
fn messages_are_valid_ordered_and_in_the_window() {
    let c = config(1_500, 3);
    let mut ids = HashSet::new();
    for (truth, messages) in population(&c) {
        for w in messages.windows(2) {
            assert!(
                w[0].timestamp <= w[1].timestamp,
                "user {} out of order",
                truth.index
            );
        }
        for m in &messages {
            check_message(m, &c);
            assert!(
                ids.insert(m.message_id.clone()),
                "duplicate id {}",
                m.message_id
            );
        }
        assert_eq!(messages.first().map(|m| m.timestamp), Some(truth.arrival));
    }
}

#[test]
fn a_window_that_starts_mid_afternoon_is_respected() {
    let c = SynthConfig {
        users: 800,
        days: 20,
        start: Timestamp::parse("2026-06-10T15:37:12.345+08:00").unwrap(),
        ..SynthConfig::default()
    };
    let mut count = 0;
    for m in generate(&c) {
        check_message(&m, &c);
        count += 1;
    }
    assert!(count > 800);
    let one_day = SynthConfig { days: 1, ..c };
    for m in generate(&one_day) {
        check_message(&m, &one_day);
    }
}

#[test]
fn anonymous_ids_are_seen_before_the_identify_that_merges_them() {
    let c = config(2_000, 5);
    let mut merged_second_devices = 0;
    for (truth, messages) in population(&c) {
        // The first message of each anonymous id carries no user id.
        let mut first_seen: HashMap<&str, &Message> = HashMap::new();
        for m in &messages {
            if let Some(anon) = m.anonymous_id.as_deref() {
                first_seen.entry(anon).or_insert(m);
            }
        }
        for (anon, m) in &first_seen {
            assert_eq!(
                m.user_id, None,
                "user {}: {anon} first seen with a user id",
                truth.index
            );
        }
        // Nothing carries the user id before the identify that merges the first device.
        let first_known = messages.iter().position(|m| m.user_id.is_some());
        match (truth.signed_up_at, first_known) {
            (None, known) => assert_eq!(known, None, "user {} never signed up", truth.index),
            (Some(at), Some(k)) => {
                let m = &messages[k];
                assert_eq!(m.kind, MessageKind::Identify);
                assert_eq!(m.timestamp, at);
                assert_eq!(m.user_id.as_deref(), Some(truth.user_id.as_str()));
                assert_eq!(m.anonymous_id.as_deref(), Some(truth.anonymous_id.as_str()));
                assert!(m.traits.contains_key("email") && m.traits.contains_key("city"));
                assert!(messages[k..].iter().any(|m| is(m, "Signed Up")));
            }
            (Some(_), None) => {}
        }
        // Every anonymous id sent along with the user id was merged by an earlier identify.
        let mut merged: HashSet<&str> = HashSet::new();
        for m in &messages {
            if let (Some(_), Some(anon)) = (&m.user_id, m.anonymous_id.as_deref()) {
                if m.kind == MessageKind::Identify {
                    merged.insert(anon);
                }
                assert!(
                    merged.contains(anon),
                    "user {}: {anon} used before identify",
                    truth.index
                );
            }
        }
        if let Some(second) = &truth.second_anonymous_id {
            assert!(merged.contains(second.as_str()));
            merged_second_devices += 1;
        }
    }
    assert!(merged_second_devices > 50, "{merged_second_devices}");
}

#[test]
fn funnel_steps_shrink_and_orders_follow_their_checkout() {
    let c = config(2_000, 9);
    const STEPS: [&str; 5] = [
        "Product Viewed",
        "Product Added",
        "Cart Viewed",
        "Checkout Started",
        "Order Completed",
    ];
    let mut events = [0u64; 5];
    let mut users = [0u64; 5];
    for (truth, messages) in population(&c) {
        let mut reached = [false; 5];
        let mut checkouts = HashSet::new();
        for m in &messages {
            if let Some(step) = STEPS.iter().position(|s| is(m, s)) {
                events[step] += 1;
                reached[step] = true;
            }
            if is(m, "Checkout Started") {
                checkouts.insert(prop(m, "checkout_id").as_str().unwrap().to_owned());
            }
            if is(m, "Order Completed") {
                let checkout = prop(m, "checkout_id").as_str().unwrap();
                assert!(
                    checkouts.contains(checkout),
                    "user {}: order without checkout",
                    truth.index
                );
            }
        }
        for (step, r) in reached.iter().enumerate() {
            users[step] += u64::from(*r);
        }
    }
    for step in 1..5 {
        assert!(events[step] < events[step - 1], "events {events:?}");
        assert!(users[step] <= users[step - 1], "users {users:?}");
    }
    // Believable drop-offs, not a funnel that leaks nothing or everything.
    let conversion = events[4] as f64 / events[0] as f64;
    assert!((0.01..0.2).contains(&conversion), "{conversion}");
}

#[test]
fn orders_match_the_truth_and_their_lines() {
    let c = config(2_000, 13);
    let mut orders = 0;
    for (truth, messages) in population(&c) {
        let completed: Vec<&Message> = messages
            .iter()
            .filter(|m| is(m, "Order Completed"))
            .collect();
        assert_eq!(completed.len(), truth.orders.len());
        for (m, o) in completed.iter().zip(&truth.orders) {
            orders += 1;
            assert_eq!(m.timestamp, o.at);
            assert_eq!(m.user_id.as_deref(), Some(truth.user_id.as_str()));
            assert_eq!(m.anonymous_id, None, "orders come from the server");
            assert_eq!(prop(m, "order_id").as_str(), Some(o.order_id.as_str()));
            assert_eq!(prop(m, "currency").as_str(), Some("CNY"));
            let revenue = prop(m, "revenue").as_f64().unwrap();
            assert!((revenue - o.revenue_fen as f64 / 100.0).abs() < 1e-9);
            let lines = prop(m, "products").as_array().unwrap();
            assert!((1..=3).contains(&lines.len()));
            let sum: f64 = lines
                .iter()
                .map(|l| l["price"].as_f64().unwrap() * l["quantity"].as_f64().unwrap())
                .sum();
            assert!((sum - revenue).abs() < 0.005, "{sum} vs {revenue}");
            for l in lines {
                assert!(l["product_id"].is_string() && l["category"].is_string());
            }
            let discount = prop(m, "discount").as_f64().unwrap();
            let total = prop(m, "total").as_f64().unwrap();
            assert!((total - (revenue - discount)).abs() < 0.005);
            if !m.properties.contains_key("coupon") {
                assert_eq!(discount, 0.0);
            }
        }
        if let Some(d) = truth.death {
            assert_eq!(Some(d), truth.orders.last().map(|o| o.at));
        }
    }
    assert!(orders > 1_000, "{orders}");
}

#[test]
fn the_orders_export_is_the_order_completed_events() {
    let c = config(1_000, 17);
    let mut csv = Vec::new();
    let rows = orders_csv(&c, &mut csv).unwrap();
    let text = String::from_utf8(csv).unwrap();
    assert!(text.starts_with(ORDERS_CSV_HEADER));
    let lines: Vec<&str> = text[ORDERS_CSV_HEADER.len()..].lines().collect();
    assert_eq!(lines.len() as u64, rows);

    let mut expected = Vec::new();
    for (truth, messages) in population(&c) {
        for m in messages.iter().filter(|m| is(m, "Order Completed")) {
            let fen = (prop(m, "revenue").as_f64().unwrap() * 100.0).round() as u64;
            expected.push((
                truth.user_id.clone(),
                m.timestamp,
                format!("{}.{:02}", fen / 100, fen % 100),
                prop(m, "order_id").as_str().unwrap().to_owned(),
                truth.channel.as_str(),
                truth.city,
            ));
        }
    }
    assert_eq!(expected.len(), lines.len());
    for (line, e) in lines.iter().zip(&expected) {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols.len(), 6, "{line}");
        assert_eq!(cols[0], e.0);
        let at = Timestamp::parse(cols[1]).unwrap();
        // The export has whole seconds.
        assert_eq!(
            at.millis(),
            e.1.millis() - e.1.millis().rem_euclid(1_000),
            "{line}"
        );
        assert!(cols[1].ends_with("+08:00"));
        assert_eq!(cols[2], e.2);
        assert_eq!(cols[3], e.3);
        assert_eq!(cols[4], e.4);
        assert_eq!(cols[5], e.5);
    }
}

#[test]
fn nps_scores_are_in_range_and_follow_the_purchase_rate() {
    let c = config(6_000, 19);
    let mut answers: Vec<(f64, u8)> = Vec::new();
    for (truth, messages) in population(&c) {
        let surveys: Vec<&Message> = messages
            .iter()
            .filter(|m| is(m, "Survey Answered"))
            .collect();
        assert!(surveys.len() <= 1);
        assert_eq!(surveys.len(), usize::from(truth.nps.is_some()));
        for m in surveys {
            assert_eq!(prop(m, "survey").as_str(), Some("nps"));
            let score = prop(m, "score").as_u64().unwrap();
            assert!(score <= 10);
            assert_eq!(Some(score as u8), truth.nps);
            answers.push((truth.lambda, score as u8));
        }
    }
    assert!(answers.len() > 200, "{}", answers.len());
    answers.sort_by(|a, b| a.0.total_cmp(&b.0));
    let quarter = answers.len() / 4;
    let mean = |xs: &[(f64, u8)]| xs.iter().map(|x| f64::from(x.1)).sum::<f64>() / xs.len() as f64;
    let (low, high) = (
        mean(&answers[..quarter]),
        mean(&answers[answers.len() - quarter..]),
    );
    assert!(
        high > low + 0.5,
        "low-rate quarter {low:.2}, high-rate quarter {high:.2}"
    );
}

#[test]
fn referral_signups_point_at_inviters_who_invited_them() {
    let c = config(6_000, 23);
    let people = population(&c);
    let by_user: HashMap<&str, &(UserTruth, Vec<Message>)> =
        people.iter().map(|p| (p.0.user_id.as_str(), p)).collect();
    let mut referred_signups = 0u64;
    let mut invites = 0u64;
    for (truth, messages) in &people {
        invites += messages.iter().filter(|m| is(m, "Invite Sent")).count() as u64;
        assert_eq!(invites_of(messages), truth.invites_sent as usize);
        let Some(signup) = messages.iter().find(|m| is(m, "Signed Up")) else {
            continue;
        };
        let Some(referrer) = signup.properties.get("referrer_id").and_then(Value::as_str) else {
            assert_eq!(truth.referrer, None);
            continue;
        };
        referred_signups += 1;
        let (inviter, inviter_messages) = by_user.get(referrer).expect("the referrer exists");
        assert_eq!(truth.referrer, Some(inviter.index));
        assert!(inviter.invitees.contains(&truth.index));
        // The inviter had signed up, and sent this very invitation before the invitee came.
        assert!(inviter.signed_up_at.unwrap() < truth.arrival);
        let token = prop(signup, "invitee_ref").as_str().unwrap();
        let invite = inviter_messages
            .iter()
            .find(|m| is(m, "Invite Sent") && prop(m, "invitee_ref").as_str() == Some(token))
            .expect("the invitation was sent");
        assert!(invite.timestamp < truth.arrival);
        assert_eq!(prop(signup, "referral_code"), prop(invite, "referral_code"));
    }
    let k_factor = referred_signups as f64 / c.users as f64;
    let conversion = referred_signups as f64 / invites as f64;
    assert!((0.05..0.2).contains(&k_factor), "K {k_factor}");
    assert!(
        (0.1..0.5).contains(&conversion),
        "invite conversion {conversion}"
    );
}

fn invites_of(messages: &[Message]) -> usize {
    messages.iter().filter(|m| is(m, "Invite Sent")).count()
}

#[test]
fn the_story_has_its_characters() {
    let c = config(5_000, 29);
    let people = population(&c);
    let n = people.len() as f64;
    let share =
        |f: &dyn Fn(&UserTruth) -> bool| people.iter().filter(|p| f(&p.0)).count() as f64 / n;
    let events: usize = people.iter().map(|p| p.1.len()).sum();
    let mean = events as f64 / n;
    assert!((38.0..65.0).contains(&mean), "events per user {mean}");
    let mut sizes: Vec<usize> = people.iter().map(|p| p.1.len()).collect();
    sizes.sort_unstable();
    assert!(
        (sizes[sizes.len() / 2] as f64) < 0.7 * mean,
        "skewed: most users have few events"
    );
    assert!(share(&|t| t.signed_up_at.is_some()) > 0.6);
    assert!((0.25..0.5).contains(&share(&|t| !t.orders.is_empty())));
    assert!(share(&|t| t.dormant_at.is_some()) > 0.15);
    assert!(share(&|t| t.came_back_at.is_some()) > 0.02);
    assert!(share(&|t| t.company.is_some()) > 0.01);
    for (t, messages) in &people {
        if let Some(back) = t.came_back_at {
            let win_back = messages
                .iter()
                .find(|m| is(m, "Push Opened") || is(m, "Email Clicked"))
                .expect("a win-back event");
            assert_eq!(win_back.timestamp, back);
            assert!(t.dormant_at.unwrap() < back);
            assert!(
                t.orders.iter().all(|o| o.at < back),
                "dropped-out users do not buy again"
            );
        }
        let landing = &messages[0];
        let campaign = landing.context.get("campaign").expect("landing campaign");
        assert_eq!(campaign["channel"].as_str(), Some(t.channel.as_str()));
        assert!(campaign["utm_source"].is_string() && campaign["utm_medium"].is_string());
        if t.company.is_some() && t.signed_up_at.is_some() {
            assert!(messages.iter().any(|m| m.kind == MessageKind::Group));
        }
    }
    let mut channels: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &people {
        *channels.entry(p.0.channel.as_str()).or_default() += 1;
    }
    assert_eq!(channels.len(), 8, "{channels:?}");
}

/// With many users, the orders follow the BG/NBD truth: given λ and p, a user still alive at
/// the end has made Poisson(λ (1 − p) T) repeat orders (conditioning on survival thins the
/// Poisson process by 1 − p), and a user with a repeat order dropped out at the first one with
/// probability p.
#[test]
fn purchases_follow_the_buy_till_you_die_truth() {
    let c = config(30_000, 31);
    let synth = Synth::new(c.clone()).unwrap();
    let end = c.end().millis() as f64;
    let week = 7.0 * 86_400_000.0;
    let (mut excess, mut variance, mut alive) = (0.0, 0.0, 0u64);
    let (mut died_first, mut with_repeat, mut p_sum) = (0u64, 0u64, 0.0);
    let (mut lambda_sum, mut lambda_sq) = (0.0, 0.0);
    let (mut spend_excess, mut spend_variance) = (0.0, 0.0);
    for i in 0..c.users {
        let (t, messages) = synth.user(i).unwrap();
        lambda_sum += t.lambda;
        lambda_sq += t.lambda * t.lambda;
        let orders: Vec<&Message> = messages
            .iter()
            .filter(|m| is(m, "Order Completed"))
            .collect();
        assert_eq!(orders.len(), t.orders.len());
        let Some(first) = orders.first() else {
            continue;
        };
        let repeats = (orders.len() - 1) as f64;
        let weeks = (end - first.timestamp.millis() as f64) / week;
        if t.death.is_none() {
            let expected = t.lambda * (1.0 - t.p) * weeks;
            excess += repeats - expected;
            variance += expected;
            alive += 1;
        }
        if orders.len() >= 2 {
            with_repeat += 1;
            p_sum += t.p;
            died_first += u64::from(t.death == Some(orders[1].timestamp));
        }
        // Gamma-Gamma: order values have mean `mean_spend` and variance mean² / p.
        for o in &orders {
            let revenue = o.properties["revenue"].as_f64().unwrap();
            spend_excess += revenue - t.mean_spend;
            spend_variance += t.mean_spend * t.mean_spend / c.spend.p;
        }
    }
    let z = excess / variance.sqrt();
    assert!(alive > 5_000, "{alive}");
    assert!(
        z.abs() < 4.5,
        "repeat orders of surviving users: z = {z:.2} ({alive} users)"
    );

    let rate = died_first as f64 / with_repeat as f64;
    let expected = p_sum / with_repeat as f64;
    let se = (expected * (1.0 - expected) / with_repeat as f64).sqrt();
    assert!(
        (rate - expected).abs() < 4.5 * se,
        "dropout at first repeat {rate:.3} vs {expected:.3}"
    );
    assert!(
        (rate - c.mean_p()).abs() < 4.5 * se + 0.01,
        "dropout {rate:.3} vs E[p] {:.3}",
        c.mean_p()
    );

    let n = c.users as f64;
    let mean = lambda_sum / n;
    let sd = ((lambda_sq / n - mean * mean) / n).sqrt();
    assert!(
        (mean - c.mean_lambda()).abs() < 4.5 * sd,
        "mean λ {mean:.4} vs {:.4}",
        c.mean_lambda()
    );

    let z = spend_excess / spend_variance.sqrt();
    assert!(z.abs() < 4.5, "order values: z = {z:.2}");
}

#[test]
fn invalid_configs_are_reported() {
    let zero_days = SynthConfig {
        days: 0,
        ..SynthConfig::default()
    };
    assert_eq!(
        Synth::new(zero_days.clone()).err(),
        Some(ConfigError::Days(0))
    );
    let err = orders_csv(&zero_days, std::io::sink()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let mut bad = SynthConfig::default();
    bad.spend.gamma = -1.0;
    assert!(matches!(
        Synth::new(bad),
        Err(ConfigError::Parameter {
            name: "spend.gamma",
            ..
        })
    ));
    // No users is valid and empty.
    assert_eq!(generate(&config(0, 1)).count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any seed, start, window and size: valid messages in the window, in time order per
    /// user, deterministic.
    #[test]
    fn any_config_gives_valid_messages(
        seed in any::<u64>(),
        users in 1u64..60,
        days in 1u32..400,
        start in -2_000_000_000_000i64..4_000_000_000_000,
    ) {
        let c = SynthConfig { seed, users, days, start: Timestamp(start), ..SynthConfig::default() };
        let synth = Synth::new(c.clone()).unwrap();
        for i in 0..users {
            let (truth, messages) = synth.user(i).unwrap();
            prop_assert!(!messages.is_empty());
            for w in messages.windows(2) {
                prop_assert!(w[0].timestamp <= w[1].timestamp);
            }
            for m in &messages {
                check_message(m, &c);
            }
            prop_assert_eq!(synth.user(i).unwrap().0, truth);
        }
    }
}
