//! The facts of each user that do not depend on page views: when they arrive, through which
//! channel, whether and when they sign up, who invited them, their latent purchase rate and
//! dropout probability, and their orders.
//!
//! These are shared by the message generator and the fast orders export, which is why they
//! live apart from the session story: both must see exactly the same orders.
//!
//! **Invariant:** the *skeleton* facts of user `i` (arrival, channel, signup, sharer, referral)
//! are pure hash functions of `(seed, i)`, so any user can look up any other user's skeleton in
//! constant time. That is what lets an inviter know its invitees without generating them.

use rand_chacha::ChaCha8Rng;

use crate::calendar::{Calendar, DAY, HOUR, MINUTE, SECOND, WEEK};
use crate::catalog::{CITIES, Channel};
use crate::config::{ConfigError, SynthConfig};
use crate::math::{self, Beta, Gamma};
use crate::rng::{Draw, Stream, hash, mix, pick_weighted, tag, unit_of, user_rng};

/// Share of signed-up users who invite friends.
const SHARER_SHARE: f64 = 0.22;
/// Referral candidates are searched in index distance classes `c = 0..=MAX_CLASS`: class `c`
/// holds the users `2^c · m` places earlier, `m` in `BLOCK..2·BLOCK`.
const BLOCK: u64 = 64;
const MAX_CLASS: u32 = 14;
/// How many candidates an invited user tries before giving up on having a referrer.
const REFERRER_ATTEMPTS: u64 = 16;
/// Share of signups that happen in the very first visit.
const SIGNUP_FIRST_VISIT: f64 = 0.55;
/// Share of first orders placed in the visit of the signup itself.
const FIRST_ORDER_AT_SIGNUP: f64 = 0.3;
/// Mean days from signup to a first order that is not placed at signup.
const FIRST_ORDER_MEAN_DAYS: f64 = 10.0;

/// Who invited a user, and when the invitation was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Referral {
    pub referrer: u64,
    pub invited_at: i64,
}

/// The hash-derived facts of one user.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Skeleton {
    pub index: u64,
    pub arrival: i64,
    pub channel: Channel,
    pub signup: Option<i64>,
    pub signup_in_first_visit: bool,
    pub referral: Option<Referral>,
    pub sharer: bool,
}

/// The facts drawn from the profile stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Profile {
    pub city: usize,
    /// Latent purchase rate per week while alive (after scaling).
    pub lambda: f64,
    /// Probability of dropping out after each repeat purchase.
    pub p: f64,
    /// Rate of this user's order-value distribution (in the spend model's unit).
    pub nu: f64,
    /// Mean order value in CNY, `spend.p / ν · cny_per_unit`.
    pub mean_spend: f64,
    /// The first (trial) order, if placed within the window.
    pub first_order: Option<i64>,
}

/// One order: when, and its revenue in fen (hundredths of a yuan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Order {
    pub at: i64,
    pub fen: u64,
}

/// A user's orders within the window, in time order, and when they dropped out (the time of
/// the repeat order after which they never bought again), if that happened in the window.
#[derive(Debug, Clone, Default)]
pub(crate) struct PurchaseLog {
    pub orders: Vec<Order>,
    pub death: Option<i64>,
}

/// A validated configuration with its derived tables: the prepared generator.
///
/// Cheap to share between threads (`&Synth` is all any method needs); each user is generated
/// independently of the others.
#[derive(Debug, Clone)]
pub struct Synth {
    pub(crate) config: SynthConfig,
    pub(crate) cal: Calendar,
    lambda: Gamma,
    dropout: Beta,
    nu: Gamma,
    /// Person-to-person variation of browsing activity (mean 1.2).
    pub(crate) activity: Gamma,
}

impl Synth {
    /// Prepares a generator, or says why the configuration cannot be generated.
    pub fn new(config: SynthConfig) -> Result<Synth, ConfigError> {
        config.validate()?;
        // validate() has checked every parameter; these cannot fail.
        let p = config.purchases;
        let bad = |name, value| ConfigError::Parameter { name, value };
        let lambda =
            Gamma::new(p.r, config.rate_scale / p.alpha).ok_or(bad("purchases.alpha", p.alpha))?;
        let dropout = Beta::new(p.a, p.b).ok_or(bad("purchases.a", p.a))?;
        let nu = Gamma::new(config.spend.q, 1.0 / config.spend.gamma)
            .ok_or(bad("spend.gamma", config.spend.gamma))?;
        let activity = Gamma::new(1.2, 1.0).ok_or(bad("activity", 1.2))?;
        let cal = Calendar::new(config.seed, config.start.0, config.days);
        Ok(Synth {
            config,
            cal,
            lambda,
            dropout,
            nu,
            activity,
        })
    }

    /// The configuration this generator was prepared from.
    pub fn config(&self) -> &SynthConfig {
        &self.config
    }

    fn h(&self, index: u64, t: u64) -> u64 {
        hash(self.config.seed, index, t)
    }

    /// When user `index` first visits. Arrivals are stratified: user `i` arrives at quantile
    /// `(i + u) / users` of the arrival curve, so arrival times increase with the index.
    pub(crate) fn arrival(&self, index: u64) -> i64 {
        let u = unit_of(self.h(index, tag::ARRIVAL));
        let y = ((index as f64 + u) / self.config.users as f64).min(1.0 - 1e-15);
        self.cal.arrival_at(y)
    }

    /// The channel the user was meant to come through (before a failed referral falls back).
    fn intended_channel(&self, index: u64) -> Channel {
        Channel::ALL[pick_weighted(&Channel::MIX, unit_of(self.h(index, tag::CHANNEL)))]
    }

    /// When the user signs up, if within the window, and whether in their first visit.
    fn signup(&self, index: u64, arrival: i64, intended: Channel) -> Option<(i64, bool)> {
        if unit_of(self.h(index, tag::SIGNUP)) >= intended.signup_rate() {
            return None;
        }
        let bits = self.h(index, tag::SIGNUP_DELAY);
        let (u1, u2, u3) = (unit_of(bits), unit_of(mix(bits)), unit_of(mix(bits ^ 1)));
        let (at, first) = if u1 < SIGNUP_FIRST_VISIT {
            (
                arrival + 3 * MINUTE + (u2 * 9.0 * MINUTE as f64) as i64,
                true,
            )
        } else {
            let later = arrival + HOUR + (-math::ln(1.0 - u2) * 2.0 * DAY as f64) as i64;
            (self.cal.to_shopping_hour(later, u3, arrival + HOUR), false)
        };
        (at < self.cal.end).then_some((at, first))
    }

    fn signup_of(&self, index: u64) -> Option<i64> {
        let arrival = self.arrival(index);
        self.signup(index, arrival, self.intended_channel(index))
            .map(|(at, _)| at)
    }

    /// Whether the user invites friends (only signed-up users do).
    fn is_sharer(&self, index: u64) -> bool {
        unit_of(self.h(index, tag::SHARER)) < SHARER_SHARE && self.signup_of(index).is_some()
    }

    /// The candidate referrer of attempt `attempt` of user `index`, if the index class exists.
    fn candidate(&self, index: u64, attempt: u64) -> Option<u64> {
        let classes = (index / (2 * BLOCK)).checked_ilog2()?.min(MAX_CLASS);
        let bits = self.h(index, tag::REFERRER + attempt);
        let class = (bits % (u64::from(classes) + 1)) as u32;
        let m = BLOCK + (bits >> 32) % BLOCK;
        index.checked_sub(m << class)
    }

    /// The user's referrer: the first candidate who invites friends and had signed up before
    /// the invitation was sent.
    fn referral(&self, index: u64, arrival: i64) -> Option<Referral> {
        let lead = MINUTE * 10
            + (-math::ln(1.0 - unit_of(self.h(index, tag::INVITE_LEAD))) * 20.0 * HOUR as f64)
                as i64;
        let invited_at = arrival - lead;
        (0..REFERRER_ATTEMPTS).find_map(|attempt| {
            let j = self.candidate(index, attempt)?;
            // The cheap test first: only one candidate in five shares at all.
            if unit_of(self.h(j, tag::SHARER)) >= SHARER_SHARE {
                return None;
            }
            let signed = self.signup_of(j)?;
            (signed < invited_at).then_some(Referral {
                referrer: j,
                invited_at,
            })
        })
    }

    /// The hash-derived facts of user `index`.
    pub(crate) fn skeleton(&self, index: u64) -> Skeleton {
        let arrival = self.arrival(index);
        let intended = self.intended_channel(index);
        let referral = match intended {
            Channel::Referral => self.referral(index, arrival),
            _ => None,
        };
        let channel = if intended == Channel::Referral && referral.is_none() {
            // No one could have invited this person; they found the shop another way.
            let u = unit_of(self.h(index, tag::FALLBACK_CHANNEL));
            Channel::ALL[pick_weighted(&Channel::MIX[..7], u)]
        } else {
            intended
        };
        let signup = self.signup(index, arrival, intended);
        Skeleton {
            index,
            arrival,
            channel,
            signup: signup.map(|s| s.0),
            signup_in_first_visit: signup.is_some_and(|s| s.1),
            referral,
            sharer: signup.is_some() && unit_of(self.h(index, tag::SHARER)) < SHARER_SHARE,
        }
    }

    /// The users `index` invited who arrived through the invitation, with the invitation times,
    /// in time order. Looks only at the few later users whose candidate classes reach `index`.
    pub(crate) fn invitees(&self, index: u64) -> Vec<(u64, i64)> {
        let mut found = Vec::new();
        if !self.is_sharer(index) {
            return found;
        }
        let users = self.config.users;
        for class in 0..=MAX_CLASS {
            for m in BLOCK..2 * BLOCK {
                let Some(i) = (m << class).checked_add(index).filter(|i| *i < users) else {
                    break;
                };
                if self.intended_channel(i) != Channel::Referral {
                    continue;
                }
                if !(0..REFERRER_ATTEMPTS).any(|a| self.candidate(i, a) == Some(index)) {
                    continue;
                }
                if let Some(r) = self.referral(i, self.arrival(i))
                    && r.referrer == index
                {
                    found.push((i, r.invited_at));
                }
            }
        }
        found.sort_by_key(|(i, at)| (*at, *i));
        found
    }

    /// The profile of a user: city, latent rates, spend, first order.
    /// Whether the user places a first order (if the window lasts long enough): a coin of
    /// signed-up users, weighted by the channel they were meant to come through. Hash-derived
    /// so that the orders export can skip most users before working out their skeleton.
    pub(crate) fn buys(&self, sk: &Skeleton) -> bool {
        sk.signup.is_some() && self.buy_coin(sk.index)
    }

    fn buy_coin(&self, index: u64) -> bool {
        let intended = self.intended_channel(index);
        unit_of(self.h(index, tag::BUYS)) < intended.first_order_rate()
    }

    /// False for users who certainly never order: those whose signup or first-order coin
    /// says no. Costs three hashes.
    pub(crate) fn may_buy(&self, index: u64) -> bool {
        let intended = self.intended_channel(index);
        unit_of(self.h(index, tag::SIGNUP)) < intended.signup_rate() && self.buy_coin(index)
    }

    /// The profile of a user, and the user's profile stream positioned after it (the orders
    /// are drawn from the same stream, see [`Synth::purchases`]).
    pub(crate) fn profile(&self, sk: &Skeleton) -> (Profile, ChaCha8Rng) {
        let mut rng = user_rng(self.config.seed, sk.index, Stream::Profile);
        let weights: [f64; CITIES.len()] = std::array::from_fn(|i| CITIES[i].1);
        let city = rng.weighted(&weights);
        let lambda = self.lambda.sample(&mut rng);
        let p = self.dropout.sample(&mut rng);
        // Bounded away from zero so that a mean order value is always finite.
        let nu = self.nu.sample(&mut rng).max(1e-6);
        let mean_spend = self.config.spend.p / nu * self.config.cny_per_unit;
        let buys = self.buys(sk);
        let at_signup = rng.chance(FIRST_ORDER_AT_SIGNUP);
        let (u1, u2) = (rng.unit(), rng.unit());
        let first_order = match sk.signup {
            Some(s) if buys => {
                let at = if at_signup {
                    s + 2 * MINUTE + (u1 * 8.0 * MINUTE as f64) as i64
                } else {
                    let t = s
                        + 30 * MINUTE
                        + (-math::ln(1.0 - u1) * FIRST_ORDER_MEAN_DAYS * DAY as f64) as i64;
                    if t < self.cal.end {
                        self.cal.to_shopping_hour(t, u2, s + 30 * MINUTE)
                    } else {
                        t
                    }
                };
                (at < self.cal.end).then_some(at)
            }
            _ => None,
        };
        let profile = Profile {
            city,
            lambda,
            p,
            nu,
            mean_spend,
            first_order,
        };
        (profile, rng)
    }

    /// The user's orders: the trial order, then repeat orders in a Poisson process of rate
    /// `λ` per week, each followed by dropout with probability `p` (BG/NBD); revenues are
    /// `Gamma(spend.p, ν)` in the spend unit, converted to fen.
    /// `rng` is the stream [`Synth::profile`] returned.
    pub(crate) fn purchases(&self, prof: &Profile, rng: &mut ChaCha8Rng) -> PurchaseLog {
        let Some(first) = prof.first_order else {
            return PurchaseLog::default();
        };
        let end = self.cal.end;
        let mut orders = vec![Order { at: first, fen: 0 }];
        let mean_gap = WEEK as f64 / prof.lambda;
        let mut t = first as f64;
        let mut dead = false;
        loop {
            t += rng.exp(mean_gap);
            // NaN (a rate of exactly zero) ends the process too.
            if t.is_nan() || t >= end as f64 {
                break;
            }
            let at = self.cal.to_shopping_hour(t as i64, rng.unit(), first + 1);
            orders.push(Order {
                at: at.max(first + 1),
                fen: 0,
            });
            if rng.chance(prof.p) {
                dead = true;
                break;
            }
        }
        orders[1..].sort_by_key(|o| o.at);
        // Two orders never share a second: a later one moves on by a second.
        for k in 1..orders.len() {
            orders[k].at = orders[k].at.max(orders[k - 1].at + SECOND);
        }
        let placed = orders.len();
        orders.retain(|o| o.at < end);
        let dead = dead && orders.len() == placed;
        let value = Gamma::new(self.config.spend.p, 1.0 / prof.nu);
        for order in &mut orders {
            let spend = value
                .as_ref()
                .map_or(self.config.spend.p / prof.nu, |v| v.sample(rng));
            order.fen = ((spend * self.config.cny_per_unit * 100.0).round() as u64).max(1);
        }
        let death = dead.then(|| orders.last().map(|o| o.at)).flatten();
        PurchaseLog { orders, death }
    }

    /// A user's activity stream.
    pub(crate) fn activity_rng(&self, index: u64) -> ChaCha8Rng {
        user_rng(self.config.seed, index, Stream::Activity)
    }
}

/// The user id a user gets at signup.
pub(crate) fn user_id(index: u64) -> String {
    format!("u{index}")
}

/// The id of a user's `n`-th order (1-based).
pub(crate) fn order_id(index: u64, n: usize) -> String {
    format!("o{index}-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synth(users: u64) -> Synth {
        Synth::new(SynthConfig {
            users,
            ..SynthConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn arrivals_increase_with_index() {
        let s = synth(5_000);
        let mut last = s.config.start.0;
        for i in 0..5_000 {
            let a = s.arrival(i);
            assert!(a >= last && a < s.cal.end, "{i}");
            last = a;
        }
    }

    #[test]
    fn referrals_point_back_and_are_found_by_the_referrer() {
        let s = synth(20_000);
        let mut referred = 0;
        for i in 0..20_000 {
            let sk = s.skeleton(i);
            if let Some(r) = sk.referral {
                referred += 1;
                assert_eq!(sk.channel, Channel::Referral);
                assert!(r.referrer < i);
                let inviter = s.skeleton(r.referrer);
                assert!(inviter.sharer);
                assert!(inviter.signup.unwrap() < r.invited_at && r.invited_at < sk.arrival);
                assert!(s.invitees(r.referrer).contains(&(i, r.invited_at)), "{i}");
            } else {
                assert_ne!(sk.channel, Channel::Referral);
            }
        }
        // Most intended referrals find an inviter.
        assert!(referred > 20_000 * 10 / 100, "{referred}");
    }

    #[test]
    fn orders_are_in_window_and_ordered() {
        let s = synth(3_000);
        for i in 0..3_000 {
            let sk = s.skeleton(i);
            let (prof, mut rng) = s.profile(&sk);
            let log = s.purchases(&prof, &mut rng);
            for w in log.orders.windows(2) {
                assert!(w[0].at < w[1].at);
            }
            for o in &log.orders {
                assert!(o.at > sk.signup.unwrap() && o.at < s.cal.end);
            }
            if let Some(d) = log.death {
                assert_eq!(Some(d), log.orders.last().map(|o| o.at));
                assert!(log.orders.len() >= 2);
            }
        }
    }
}
