//! Prints what a generated population looks like: events per user, event counts, funnel,
//! channels, buyers, dormancy, referral K-factor.
//!
//! `cargo run --release -p lodestar-synth --example summary -- [users] [seed]`
#![allow(clippy::print_stdout, reason = "an example reports what it generated")]

use std::collections::BTreeMap;

use lodestar_synth::{Synth, SynthConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let users: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);
    let synth = Synth::new(SynthConfig {
        users,
        seed,
        ..SynthConfig::default()
    })
    .expect("valid config");

    let mut names: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_user: Vec<usize> = Vec::new();
    let mut channels: BTreeMap<&str, u64> = BTreeMap::new();
    let (
        mut signed,
        mut buyers,
        mut repeaters,
        mut orders,
        mut dead,
        mut dormant,
        mut back,
        mut nps,
    ) = (0, 0, 0, 0, 0, 0, 0, 0);
    let (mut referred, mut invites, mut revenue) = (0u64, 0u64, 0u64);
    for i in 0..users {
        let (truth, messages) = synth.user(i).expect("index in range");
        per_user.push(messages.len());
        for m in &messages {
            *names.entry(m.analytic_name().to_owned()).or_default() += 1;
        }
        *channels.entry(truth.channel.as_str()).or_default() += 1;
        signed += u64::from(truth.signed_up_at.is_some());
        buyers += u64::from(!truth.orders.is_empty());
        repeaters += u64::from(truth.orders.len() > 1);
        orders += truth.orders.len() as u64;
        revenue += truth.orders.iter().map(|o| o.revenue_fen).sum::<u64>();
        dead += u64::from(truth.death.is_some());
        dormant += u64::from(truth.dormant_at.is_some());
        back += u64::from(truth.came_back_at.is_some());
        nps += u64::from(truth.nps.is_some());
        referred += u64::from(truth.referrer.is_some() && truth.signed_up_at.is_some());
        invites += u64::from(truth.invites_sent);
    }
    per_user.sort_unstable();
    let total: usize = per_user.iter().sum();
    let q = |f: f64| per_user[((per_user.len() - 1) as f64 * f) as usize];
    println!(
        "users {users}, messages {total}, per user mean {:.1}",
        total as f64 / users as f64
    );
    println!(
        "per user: p10 {} p25 {} median {} p75 {} p90 {} p99 {} max {}",
        q(0.1),
        q(0.25),
        q(0.5),
        q(0.75),
        q(0.9),
        q(0.99),
        q(1.0)
    );
    let pct = |n: u64| 100.0 * n as f64 / users as f64;
    println!(
        "signed up {:.1}%, buyers {:.1}%, repeat buyers {:.1}%, orders {orders} ({:.2} per buyer), mean order ¥{:.0}",
        pct(signed),
        pct(buyers),
        pct(repeaters),
        orders as f64 / buyers.max(1) as f64,
        revenue as f64 / 100.0 / orders.max(1) as f64
    );
    println!(
        "dropped out {:.1}%, dormant {:.1}%, came back {:.1}%, answered NPS {:.1}%",
        pct(dead),
        pct(dormant),
        pct(back),
        pct(nps)
    );
    println!(
        "referred signups {:.1}%, invites {invites}, K-factor (referred signups / users) {:.3}, invites that brought a signup {:.1}%",
        pct(referred),
        referred as f64 / users as f64,
        100.0 * referred as f64 / invites.max(1) as f64
    );
    println!("channels: {channels:?}");
    let mut by_count: Vec<_> = names.into_iter().collect();
    by_count.sort_by_key(|b| std::cmp::Reverse(b.1));
    for (name, n) in by_count {
        println!("  {n:>9}  {name}");
    }
}
