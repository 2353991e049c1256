//! Seeded synthetic customer data for Lodestar: a believable population of shoppers of a
//! Chinese e-commerce app, as Segment-style [`Message`]s, with the ground truth of every user
//! alongside so that tests can check what the analyses find.
//!
//! It feeds `lodestar demo`, the tests and the benchmarks. It does no I/O of its own (the
//! orders export writes to any [`std::io::Write`]), reads no clock and no environment: the
//! caller passes the window's `start`.
//!
//! # Using it
//!
//! ```
//! use lodestar_synth::{SynthConfig, generate, generate_user};
//!
//! let config = SynthConfig { users: 50, days: 90, ..SynthConfig::default() };
//! let messages: Vec<_> = generate(&config).collect();
//! let (truth, mine) = generate_user(&config, 7);
//! assert!(mine.iter().all(|m| messages.contains(m)));
//! assert_eq!(truth.index, 7);
//! ```
//!
//! [`Synth`] is the prepared (validated) form; [`Synth::user`] generates one user, so a caller
//! may spread users over threads. [`orders_csv`] writes the same users' orders as a CSV export
//! millions of rows a second, without generating the sessions.
//!
//! **Invariant:** the output is a pure function of the [`SynthConfig`]. Every random draw comes
//! from a ChaCha8 stream keyed by `(seed, user index, stream)` or from a hash of
//! `(seed, user index, tag)`; nothing depends on threads, the clock, the environment or the
//! order in which users are generated, nor on the platform's maths library: the samplers use
//! their own `ln` and `exp` built from basic IEEE-754 operations, which round the same
//! everywhere.
//!
//! # The story each user lives
//!
//! 1. **Arrival.** Users arrive in index order over the window, more of them as time goes on
//!    (the last day sees three times the arrivals of the first), busier on weekends and
//!    during the 618 and Double 11 festivals, quieter over the Spring Festival, mostly in the
//!    evening, Shanghai time. Channels: owned (organic search, app stores, WeChat official
//!    account, email), paid (search ads, social ads, KOLs) and referral (invited by an earlier
//!    user who had already signed up). The landing call carries `context.campaign`.
//! 2. **Anonymous browsing, then signup.** The first visit carries only an `anonymousId`.
//!    Between 62 % (paid) and 88 % (referral) of visitors sign up, half of them in the first
//!    visit: an `identify` carrying both the `anonymousId` and the new `userId`, with traits,
//!    then `Signed Up`. After that, about a third of the visits on the first device carry
//!    both ids and the rest only the `userId`; server calls (`Order Completed`, membership
//!    upgrades, e-mail clicks) carry only the `userId`. One signed-up user in five later logs
//!    in on a second device: a new `anonymousId`, anonymous first, then merged by an
//!    `identify`; that device's calls carry both ids from then on.
//! 3. **Sessions.** While engaged, a user browses in a Poisson process of their own rate (on
//!    average about half a session a week, plus twice their weekly purchase rate); each session
//!    opens (`Application Opened` on the apps, a `screen` or `page` otherwise) and may search, view
//!    products, add one to the cart, view the cart and start checkout, each step less likely
//!    than the one before.
//! 4. **Purchases (BG/NBD).** Some signed-up users (40–62 % by channel) place a first order,
//!    some in the signup visit, the rest after about ten days. From then on they buy in a
//!    Poisson process of weekly rate `λ ~ Gamma(r, α / rate_scale)` and after each repeat
//!    order drop out for good with probability `p ~ Beta(a, b)`. Order revenue follows the
//!    Gamma-Gamma model. Every order is a visit ending in `Order Completed`, sent by the
//!    server. `λ` and `p` are independent of channel and of the first-order decision, so the
//!    buyers' `λ` and `p` follow exactly the configured distributions.
//! 5. **Dormancy and win-back (回流).** Most users who drop out stop visiting after a couple of
//!    weeks; users who never buy drift away after about five weeks. Three dormant users in ten
//!    are brought back by a win-back push (`Push Opened`) or e-mail (`Email Clicked`) and browse
//!    again for a few weeks. Dropping out is final for buying: returning users browse but never
//!    order again, so the order log remains a true BG/NBD process.
//! 6. **NPS.** 30 % of buyers and 10 % of other signed-up users answer an NPS survey two weeks
//!    or more after signup, with a score that rises with `λ` and falls after dropout.
//! 7. **Referral.** 22 % of signed-up users invite friends: every invitation that brings
//!    someone is an `Invite Sent` shortly before the invitee's first visit, and about four
//!    others per inviter lead nowhere. Invitees' `Signed Up` carries `referrer_id`,
//!    `referral_code` and `invitee_ref`.
//! 8. **B2B.** 4 % of signed-up users buy for a company and send a `group` call at signup.
//!
//! # Scaling
//!
//! The purchase parameters default to the published CDNOW estimates (BG/NBD r 0.243,
//! α 4.414, a 0.793, b 2.426, in weeks; Gamma-Gamma p 6.25, q 3.74, γ 15.44). Two factors turn
//! a 1997 CD shop into a modern app: [`SynthConfig::rate_scale`] (default 2) divides α, so
//! customers buy twice as often (mean λ 0.11 a week), and [`SynthConfig::cny_per_unit`]
//! (default 6) turns CDNOW dollars into yuan (mean order about ¥210). A BG/NBD fit on the
//! generated orders should recover r, α / rate_scale, a and b; a Gamma-Gamma fit on revenue
//! divided by `cny_per_unit` should recover p, q and γ.
//!
//! # Events and properties
//!
//! | call | name | properties or traits |
//! | --- | --- | --- |
//! | track | `Application Installed` | `version`, `build` |
//! | track | `Application Opened` | `from_background`, `version` |
//! | screen | `Home`, `Search Results`, `Category`, `Order Confirmation` (apps, mini program) | none; the name is the message's `event`, with a `category` |
//! | page | the same names (web) | `path`, `url` (with `utm_*` on landing) |
//! | track | `Products Searched` | `query` |
//! | track | `Product Viewed` | `product_id`, `category`, `name`, `price`, `currency`, `position` |
//! | track | `Product Added` | the product fields, `quantity`, `cart_id`, `currency` |
//! | track | `Cart Viewed` | `cart_id`, `products[]` |
//! | track | `Checkout Started` | `checkout_id`, `value`, `currency`, `products[]` |
//! | track | `Coupon Applied` | `order_id`, `coupon_id`, `discount` |
//! | track | `Order Completed` | `order_id`, `checkout_id`, `revenue`, `discount`, `total`, `currency: "CNY"`, `products[]` (1–3 lines of `product_id`, `category`, `name`, `price`, `quantity`), `coupon` when one was used |
//! | identify | at signup | traits `email`, `name`, `city`, `gender`, `age_band`, `membership`, `plus_member`, `signup_channel`, `channel`, `channel_group`, `platform`, `referral_code`, `created_at`; set-once `initial_utm_source`, `initial_utm_medium` |
//! | identify | second-device login | traits `email`, `last_platform` |
//! | identify | membership upgrade (3rd, 8th order) | traits `membership` (`silver`, `gold`), `orders_count` |
//! | track | `Signed Up` | `method` (`phone`, `wechat`, `email`), `signup_channel`; for invitees `referrer_id`, `referral_code`, `invitee_ref` |
//! | group | company `co<n>` | traits `name`, `industry`, `employees`, `city` |
//! | track | `Invite Sent` | `invitee_ref`, `referral_code`, `share_via` |
//! | track | `Survey Answered` | `survey: "nps"`, `score` (0–10), `nps_group` |
//! | track | `Push Opened` | `campaign_id`, `campaign_name` |
//! | track | `Email Clicked` | `campaign_id`, `email_subject`, `link_url` |
//!
//! Money is in yuan (`revenue` is the Gamma-Gamma draw and equals the sum of `price ×
//! quantity`; `total` is `revenue − discount`). The first call of a visit carries
//! `context.os`, `context.locale` and `context.timezone`; landing and win-back calls carry
//! `context.campaign` with `source`, `medium`, `name`, the same as `utm_source`,
//! `utm_medium`, `utm_campaign`, and `channel`. Message `channel` is `mobile`, `browser` or
//! `server`. `timestamp` equals `received_at`; `sent_at` and `original_timestamp` are unset.
//! Message ids are `<seed hex>-<user index>-<sequence>`.

mod calendar;
mod catalog;
mod config;
mod math;
mod model;
mod orders;
mod rng;
mod story;

pub use catalog::{Channel, ChannelGroup, Platform};
pub use config::{BgNbd, ConfigError, DEFAULT_START, GammaGamma, MAX_DAYS, SynthConfig};
pub use model::Synth;
pub use orders::ORDERS_CSV_HEADER;
pub use story::{OrderTruth, UserTruth};

use std::collections::VecDeque;

use lodestar_core::Message;

impl Synth {
    /// The ground truth and messages of user `index`, or `None` when `index` is not below
    /// the configured number of users. Messages are in time order.
    pub fn user(&self, index: u64) -> Option<(UserTruth, Vec<Message>)> {
        (index < self.config.users).then(|| story::tell(self, index))
    }

    /// All users' messages, user after user, each user's in time order. Holds one user's
    /// messages at a time.
    pub fn messages(self) -> Messages {
        Messages {
            synth: self,
            next: 0,
            buffer: VecDeque::new(),
            scratch: story::Scratch::default(),
        }
    }
}

/// The messages of all users, user after user; see [`generate`].
#[derive(Debug)]
pub struct Messages {
    synth: Synth,
    next: u64,
    /// The current user's messages not yet yielded; its allocation is reused.
    buffer: VecDeque<Message>,
    scratch: story::Scratch,
}

impl Iterator for Messages {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        while self.buffer.is_empty() {
            if self.next >= self.synth.config.users {
                return None;
            }
            story::tell_into(&self.synth, self.next, &mut self.scratch, &mut self.buffer);
            self.next += 1;
        }
        self.buffer.pop_front()
    }
}

fn prepare(config: &SynthConfig) -> Synth {
    match Synth::new(config.clone()) {
        Ok(synth) => synth,
        Err(e) => panic!("invalid synth config: {e}"),
    }
}

/// All messages of the configured population, user after user (each user's in time order),
/// generated lazily.
///
/// # Panics
///
/// If the configuration is invalid ([`SynthConfig::validate`]); use [`Synth::new`] to get the
/// error instead.
pub fn generate(config: &SynthConfig) -> Messages {
    prepare(config).messages()
}

/// The ground truth and the messages of user `index` alone: the same messages [`generate`]
/// yields for that user.
///
/// # Panics
///
/// If the configuration is invalid or `index >= config.users`; [`Synth::new`] and
/// [`Synth::user`] report these instead.
pub fn generate_user(config: &SynthConfig, index: u64) -> (UserTruth, Vec<Message>) {
    match prepare(config).user(index) {
        Some(user) => user,
        None => panic!(
            "user {index} is out of range: the config has {} users",
            config.users
        ),
    }
}

/// Writes the orders export of the configured population (see [`Synth::write_orders_csv`])
/// and returns the number of rows. An invalid configuration is reported as an
/// [`std::io::ErrorKind::InvalidInput`] error.
pub fn orders_csv<W: std::io::Write>(config: &SynthConfig, out: W) -> std::io::Result<u64> {
    let synth = Synth::new(config.clone())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    synth.write_orders_csv(out)
}
