//! The story each user lives, turned into messages: anonymous browsing, signup and identity
//! merge, sessions with a shopping funnel, orders, dormancy and win-back, NPS answers,
//! invitations and B2B groups.
//!
//! A user's story is first planned as a list of light [`Planned`] events (times and small
//! enums), sorted by time, and only then turned into [`Message`]s, so that the JSON maps are
//! built once per message and never moved around.

use lodestar_core::{JsonMap, Message, MessageKind, Timestamp};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::calendar::{DAY, HOUR, MINUTE, SECOND, WEEK, civil_from_days, local_day, push_padded};
use crate::catalog::{
    AGE_BANDS, CATEGORIES, CITIES, COMPANY_KINDS, COMPANY_WORDS, COUPON_618, COUPON_DOUBLE_11,
    COUPON_FREE_SHIPPING, COUPON_MEMBER, COUPON_NEW_USER, Channel, EMAIL_DOMAINS, GIVEN, PRODUCTS,
    Platform, SURNAMES, SURNAMES_PINYIN, VARIANTS, product_parts,
};
use crate::model::{Profile, PurchaseLog, Skeleton, Synth, order_id, user_id};
use crate::rng::{Draw, hash, mix, tag, unit_of};

/// Everything true about one generated user: what the analyses should find.
#[derive(Debug, Clone, PartialEq)]
pub struct UserTruth {
    /// The user's position in the population, `0..users`; users arrive in index order.
    pub index: u64,
    /// The `userId` the user gets at signup (`u<index>`), also the orders export's
    /// `customer_id`. Never sent if the user does not sign up.
    pub user_id: String,
    /// The `anonymousId` of the first device, sent from the first visit on.
    pub anonymous_id: String,
    /// The `anonymousId` of a second device the user later logs in on, if any.
    pub second_anonymous_id: Option<String>,
    /// The first visit.
    pub arrival: Timestamp,
    /// How the user found the shop.
    pub channel: Channel,
    /// The platform of the first device.
    pub platform: Platform,
    /// The city trait (English name).
    pub city: &'static str,
    /// When the user signed up, if within the window.
    pub signed_up_at: Option<Timestamp>,
    /// The index of the user whose invitation brought this one, if referred.
    pub referrer: Option<u64>,
    /// Users who arrived through this user's invitations, in invitation order.
    pub invitees: Vec<u64>,
    /// All `Invite Sent` events of this user, converted or not.
    pub invites_sent: u32,
    /// Latent purchase rate per week while alive (BG/NBD λ, after `rate_scale`).
    pub lambda: f64,
    /// Probability of dropping out after each repeat order (BG/NBD p).
    pub p: f64,
    /// Mean order value in CNY (Gamma-Gamma `p / ν` times `cny_per_unit`).
    pub mean_spend: f64,
    /// Orders within the window, in time order; the first is the trial order.
    pub orders: Vec<OrderTruth>,
    /// When the user dropped out: the time of the repeat order after which they never buy
    /// again, if that happened within the window.
    pub death: Option<Timestamp>,
    /// Browsing sessions per week while engaged.
    pub sessions_per_week: f64,
    /// When the user stopped visiting, if within the window.
    pub dormant_at: Option<Timestamp>,
    /// When a win-back push or email brought a dormant user back (回流), if it did.
    pub came_back_at: Option<Timestamp>,
    /// The NPS score the user gave, if they answered the survey.
    pub nps: Option<u8>,
    /// The B2B company (group id) the user buys for, if any.
    pub company: Option<String>,
}

/// One order as generated.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderTruth {
    /// The `order_id` property and orders-export column.
    pub order_id: String,
    /// When the order was completed.
    pub at: Timestamp,
    /// Revenue in fen (hundredths of a yuan); `revenue` in the event is this divided by 100.
    pub revenue_fen: u64,
}

/// Which ids a message carries and where it comes from: device 0 or 1 sending its anonymous
/// id only, both ids, or only the user id; or the shop's server (user id only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anon(u8),
    Both(u8),
    Known(u8),
    Server,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    product: u32,
    price_fen: u64,
    quantity: u32,
}

#[derive(Debug, Clone, Copy)]
enum Campaign {
    Acquisition,
    WinBackPush,
    WinBackEmail,
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    Installed,
    Opened {
        background: bool,
    },
    View {
        name: &'static str,
        category: &'static str,
        path: &'static str,
    },
    Searched {
        query: &'static str,
    },
    ProductViewed {
        item: Item,
        position: u32,
    },
    ProductAdded {
        item: Item,
        cart: u32,
    },
    CartViewed {
        cart: u32,
    },
    CheckoutStarted {
        cart: u32,
    },
    CouponApplied {
        order: u32,
    },
    OrderCompleted {
        order: u32,
    },
    IdentifySignup,
    IdentifyLogin,
    IdentifyMembership {
        level: &'static str,
        orders: u32,
    },
    SignedUp,
    Group,
    InviteSent {
        token: u64,
    },
    Survey {
        score: u8,
    },
    PushOpened,
    EmailClicked,
}

#[derive(Debug, Clone, Copy)]
struct Planned {
    at: i64,
    /// Planning order: breaks ties of `at` (an unstable sort needs no scratch buffer).
    seq: u32,
    who: Who,
    ev: Ev,
    /// Attach device and locale context (first call of a visit).
    opener: bool,
    campaign: Option<Campaign>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SessionKind {
    Landing,
    AnonBrowse,
    Signup,
    Browse,
    Purchase(usize),
    Invite(u64),
    WinBack,
}

struct OrderDetail {
    cart: u32,
    coupon: Option<(&'static str, f64)>,
    discount_fen: u64,
    fen: u64,
}

/// Fixed traits of the person.
struct Persona {
    name: String,
    email: String,
    gender: &'static str,
    age_band: &'static str,
    plus_member: bool,
    favourite: usize,
    referral_code: String,
    company: Option<u64>,
}

/// Share of signed-in visits on the first device whose calls carry the anonymous id as well.
const BOTH_IDS: f64 = 0.35;
/// Share of app sessions that resume the app from the background.
const BACKGROUND_OPEN: f64 = 0.35;
/// Browsing-session funnel: chance that a session views products, adds one to the cart, views
/// the cart, starts checkout.
const VIEWS_ANY: f64 = 0.85;
const ADD_TO_CART: f64 = 0.28;
const VIEW_CART: f64 = 0.6;
const START_CHECKOUT: f64 = 0.35;
/// Chance that a signed-up user answers the NPS survey (buyers, others).
const NPS_ANSWER_BUYER: f64 = 0.3;
const NPS_ANSWER_OTHER: f64 = 0.1;
/// After dropping out, chance of going dormant soon (otherwise the user keeps browsing at a
/// lower rate without buying).
const DORMANT_AFTER_DEATH: f64 = 0.65;
/// Chance that a dormant user is brought back by a win-back push or email.
const WIN_BACK: f64 = 0.3;
/// Share of signed-up users who log in on a second device.
const SECOND_DEVICE: f64 = 0.2;
/// Share of signed-up users who buy for a company (B2B).
const B2B: f64 = 0.04;
/// Mean number of invitations that lead nowhere, per inviting user.
const LOST_INVITES_MEAN: f64 = 4.0;
/// Category weights of browsing when not on the user's favourite category.
const CATEGORY_WEIGHTS: [f64; 8] = [1.4, 1.6, 0.9, 1.0, 1.2, 0.6, 0.7, 0.6];

/// Generates the truth and messages of one user.
pub(crate) fn tell(synth: &Synth, index: u64) -> (UserTruth, Vec<Message>) {
    let mut messages = Vec::new();
    let truth = tell_into(synth, index, &mut Scratch::default(), &mut messages);
    (truth, messages)
}

/// Buffers one user's planning needs, kept from user to user so that generating a stream
/// does not allocate (and free) them again for every user.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    events: Vec<Planned>,
    sessions: Vec<(i64, SessionKind)>,
}

/// Generates user `index`, appending its messages (in time order) to `out`.
pub(crate) fn tell_into(
    synth: &Synth,
    index: u64,
    scratch: &mut Scratch,
    out: &mut impl Extend<Message>,
) -> UserTruth {
    let sk = synth.skeleton(index);
    let (prof, mut rng) = synth.profile(&sk);
    let log = synth.purchases(&prof, &mut rng);
    let mut story = Story::new(synth, sk, prof, log, scratch);
    story.plan();
    story.finish(scratch, out)
}

struct Story<'a> {
    synth: &'a Synth,
    sk: Skeleton,
    prof: Profile,
    log: PurchaseLog,
    rng: ChaCha8Rng,
    end: i64,
    devices: [Platform; 2],
    installed: [bool; 2],
    second_login: Option<i64>,
    persona: Persona,
    events: Vec<Planned>,
    sessions: Vec<(i64, SessionKind)>,
    carts: Vec<Vec<Item>>,
    orders: Vec<OrderDetail>,
    /// Time of the latest event planned so far (to tell a new visit from a continued one).
    last_at: i64,
    /// The cursor of the session being planned, and the time it may not reach.
    cursor: i64,
    deadline: i64,
    sessions_per_week: f64,
    dormant_at: Option<i64>,
    came_back_at: Option<i64>,
    nps: Option<u8>,
    invites_sent: u32,
    invitees: Vec<(u64, i64)>,
}

impl<'a> Story<'a> {
    fn new(
        synth: &'a Synth,
        sk: Skeleton,
        prof: Profile,
        log: PurchaseLog,
        scratch: &mut Scratch,
    ) -> Self {
        let mut rng = synth.activity_rng(sk.index);
        let seed = synth.config.seed;
        let first = Platform::ALL[rng.weighted(&sk.channel.platform_mix())];
        let second = if first.is_app() {
            if rng.chance(0.5) {
                Platform::Web
            } else {
                Platform::MiniProgram
            }
        } else if rng.chance(0.5) {
            Platform::Ios
        } else {
            Platform::Android
        };
        let persona = Persona::draw(&mut rng, seed, sk.index, synth.config.users);
        let invitees = synth.invitees(sk.index);
        Story {
            synth,
            sk,
            prof,
            log,
            rng,
            end: synth.cal.end,
            devices: [first, second],
            installed: [false, false],
            second_login: None,
            persona,
            events: std::mem::take(&mut scratch.events),
            sessions: std::mem::take(&mut scratch.sessions),
            carts: Vec::new(),
            orders: Vec::new(),
            last_at: i64::MIN / 2,
            cursor: 0,
            deadline: 0,
            sessions_per_week: 0.0,
            dormant_at: None,
            came_back_at: None,
            nps: None,
            invites_sent: 0,
            invitees,
        }
    }

    /// Lays out the sessions of the whole story, then fills each in time order.
    fn plan(&mut self) {
        let sk = self.sk;
        let end = self.end;
        let mut sessions = std::mem::take(&mut self.sessions);
        sessions.clear();
        sessions.push((sk.arrival, SessionKind::Landing));

        // Browsing rate: a base that varies from person to person plus a part that grows with
        // the purchase rate (people who buy more also look more).
        let base: f64 = self.synth.activity.sample(&mut self.rng);
        self.sessions_per_week = 0.45 * base + 2.0 * self.prof.lambda;

        match sk.signup {
            None => {
                // Visitors who never sign up come back a few times at most.
                let mut k = 0;
                while k < 3 && self.rng.chance(0.45) {
                    let t = sk.arrival + 10 * MINUTE + (self.rng.exp(3.0) * DAY as f64) as i64;
                    let u = self.rng.unit();
                    if t < end {
                        let at = self
                            .synth
                            .cal
                            .to_shopping_hour(t, u, sk.arrival + 10 * MINUTE);
                        sessions.push((at, SessionKind::AnonBrowse));
                    }
                    k += 1;
                }
            }
            Some(s) => {
                if !sk.signup_in_first_visit {
                    if s - sk.arrival > 3 * DAY / 24 && self.rng.chance(0.4) {
                        let span = (s - sk.arrival - 2 * DAY / 24) as f64;
                        let at = sk.arrival + DAY / 24 + (self.rng.unit() * span) as i64;
                        sessions.push((at, SessionKind::AnonBrowse));
                    }
                    let lead = i64::from(self.rng.int(3, 8)) * MINUTE;
                    sessions.push((s - lead, SessionKind::Signup));
                }
                self.plan_engagement(s, &mut sessions);
            }
        }
        for k in 0..self.log.orders.len() {
            sessions.push((self.log.orders[k].at, SessionKind::Purchase(k)));
        }
        for &(invitee, at) in &self.invitees {
            sessions.push((at, SessionKind::Invite(invitee)));
        }
        if let Some(at) = self.came_back_at {
            sessions.push((at, SessionKind::WinBack));
        }
        sessions.sort_unstable();

        // One-off things that ride on ordinary browsing sessions.
        let signed = sk.signup.is_some();
        let buyer = !self.log.orders.is_empty();
        let answer_rate = if buyer {
            NPS_ANSWER_BUYER
        } else {
            NPS_ANSWER_OTHER
        };
        let answers_nps = signed && self.rng.chance(answer_rate);
        let has_second = signed && self.rng.chance(SECOND_DEVICE);
        let mut lost_invites = if sk.sharer {
            self.poisson_small(LOST_INVITES_MEAN)
        } else {
            0
        };
        let mut browse_left = sessions
            .iter()
            .filter(|s| s.1 == SessionKind::Browse)
            .count() as u32;
        let mut survey_due = answers_nps;

        for &(at, kind) in &sessions {
            if at >= end {
                continue;
            }
            match kind {
                SessionKind::Landing => self.landing(at),
                SessionKind::AnonBrowse => {
                    self.browse(at, Who::Anon(0), None, end);
                }
                SessionKind::Signup => {
                    let s = sk.signup.unwrap_or(at);
                    self.browse(at, Who::Anon(0), None, s - SECOND);
                    self.sign_up(s);
                }
                SessionKind::Browse => {
                    let s = sk.signup.unwrap_or(at);
                    let login = has_second && self.second_login.is_none() && at >= s + 7 * DAY;
                    let (who, dev) = if login {
                        self.second_login = Some(at);
                        (Who::Anon(1), 1)
                    } else {
                        let dev = self.pick_device(at);
                        (self.signed_in(dev), dev)
                    };
                    let end_at = self.browse(at, who, None, end);
                    // Invitations that never convert, spread over browsing sessions.
                    if lost_invites > 0
                        && self
                            .rng
                            .chance(f64::from(lost_invites) / f64::from(browse_left.max(1)))
                    {
                        lost_invites -= 1;
                        let token = hash(
                            self.synth.config.seed,
                            sk.index,
                            tag::INVITE_REF + (u64::from(lost_invites) + 1) * 0x1_0000,
                        );
                        self.step(end_at, Who::Known(dev), Ev::InviteSent { token });
                    }
                    if survey_due && at >= s + 14 * DAY {
                        survey_due = false;
                        let score = self.nps_score(at);
                        self.nps = Some(score);
                        self.step(self.cursor, Who::Known(dev), Ev::Survey { score });
                    }
                    browse_left = browse_left.saturating_sub(1);
                }
                SessionKind::Purchase(k) => self.purchase(k),
                SessionKind::Invite(invitee) => {
                    let token = hash(self.synth.config.seed, invitee, tag::INVITE_REF);
                    self.deadline = end;
                    let who = Who::Known(self.pick_device(at));
                    self.push(at, who, Ev::InviteSent { token });
                }
                SessionKind::WinBack => self.win_back(at),
            }
        }
        self.sessions = sessions;
    }

    /// Browsing sessions after signup: engaged at the user's rate, then (for most who stop
    /// buying, and for those who never buy) dormant; some dormant users are won back.
    fn plan_engagement(&mut self, s: i64, sessions: &mut Vec<(i64, SessionKind)>) {
        let end = self.end;
        let nu = self.sessions_per_week;
        let mut spans: Vec<(i64, i64, f64)> = Vec::with_capacity(3);
        let mut dormant = None;
        if self.log.orders.is_empty() {
            let until = s + (self.rng.exp(5.0) * WEEK as f64) as i64;
            spans.push((s, until.min(end), 1.0));
            dormant = Some(until);
        } else if let Some(d) = self.log.death {
            spans.push((s, d, 1.0));
            if self.rng.chance(DORMANT_AFTER_DEATH) {
                let until = d + (self.rng.exp(10.0) * DAY as f64) as i64;
                spans.push((d, until.min(end), 0.6));
                dormant = Some(until);
            } else {
                spans.push((d, end, 0.35));
            }
        } else {
            spans.push((s, end, 1.0));
        }
        if let Some(z) = dormant.filter(|z| *z < end) {
            self.dormant_at = Some(z);
            if self.rng.chance(WIN_BACK) {
                let back = z + 21 * DAY + (self.rng.exp(40.0) * DAY as f64) as i64;
                if back < end {
                    self.came_back_at = Some(back);
                    let until = back + (self.rng.exp(3.0) * WEEK as f64) as i64;
                    spans.push((back + 30 * MINUTE, until.min(end), 0.5));
                }
            }
        }
        // Poisson sessions, thinned by the calendar (weekends, festivals).
        let cal = &self.synth.cal;
        let boost = cal.max_weight / cal.mean_weight;
        for (from, to, factor) in spans {
            let rate = nu * factor * boost;
            if rate <= 0.0 || from >= to {
                continue;
            }
            let mean_gap = WEEK as f64 / rate;
            let mut t = from as f64;
            loop {
                t += self.rng.exp(mean_gap);
                if t >= to as f64 {
                    break;
                }
                let (keep, v) = (self.rng.unit(), self.rng.unit());
                if keep >= cal.busyness(t as i64) {
                    continue;
                }
                let at = cal.to_shopping_hour(t as i64, v, from + MINUTE);
                let clashes = self
                    .log
                    .orders
                    .iter()
                    .any(|o| at > o.at - 30 * MINUTE && at < o.at + 10 * MINUTE);
                if !clashes {
                    sessions.push((at, SessionKind::Browse));
                }
            }
        }
    }

    fn poisson_small(&mut self, mean: f64) -> u32 {
        let limit = crate::math::exp(-mean);
        let mut product = self.rng.unit();
        let mut k = 0;
        while product > limit && k < 50 {
            product *= self.rng.unit();
            k += 1;
        }
        k
    }

    /// The device of a post-signup visit around `at`: the first, or, from an hour after a
    /// second-device login on (so that no call of that device precedes the login), either.
    fn pick_device(&mut self, at: i64) -> u8 {
        match self.second_login {
            Some(t) if at > t + HOUR => u8::from(self.rng.chance(0.5)),
            _ => 0,
        }
    }

    /// The ids of a signed-in visit on `dev`. The app on the second device keeps sending its
    /// anonymous id; on the first device, about a third of visits do.
    fn signed_in(&mut self, dev: u8) -> Who {
        if dev == 1 || self.rng.chance(BOTH_IDS) {
            Who::Both(dev)
        } else {
            Who::Known(dev)
        }
    }

    fn platform(&self, who: Who) -> Platform {
        match who {
            Who::Anon(d) | Who::Both(d) | Who::Known(d) => self.devices[usize::from(d)],
            Who::Server => self.devices[0],
        }
    }

    fn gap(&mut self) -> i64 {
        5 * SECOND + (self.rng.exp(35.0) * SECOND as f64) as i64
    }

    /// Plans an event at `at` if it is before the session's deadline.
    fn push(&mut self, at: i64, who: Who, ev: Ev) -> bool {
        self.push_with(at, who, ev, false, None)
    }

    fn push_with(
        &mut self,
        at: i64,
        who: Who,
        ev: Ev,
        opener: bool,
        campaign: Option<Campaign>,
    ) -> bool {
        if at >= self.deadline || at >= self.end {
            return false;
        }
        let seq = self.events.len() as u32;
        self.events.push(Planned {
            seq,
            at,
            who,
            ev,
            opener,
            campaign,
        });
        self.last_at = self.last_at.max(at);
        self.cursor = at;
        true
    }

    /// Plans an event a short gap after `after`.
    fn step(&mut self, after: i64, who: Who, ev: Ev) -> bool {
        let at = after + self.gap();
        self.push(at, who, ev)
    }

    /// Opens a visit: app install and open, or the home page or screen. Returns false if the
    /// deadline came first.
    fn open(&mut self, at: i64, who: Who, campaign: Option<Campaign>) -> bool {
        let platform = self.platform(who);
        let new_visit = at - self.last_at > 30 * MINUTE;
        if !new_visit && campaign.is_none() {
            self.cursor = at;
            return true;
        }
        let dev = match who {
            Who::Anon(d) | Who::Both(d) | Who::Known(d) => usize::from(d),
            Who::Server => 0,
        };
        if platform.is_app() {
            let mut t = at;
            if !self.installed[dev] {
                self.installed[dev] = true;
                if !self.push_with(t, who, Ev::Installed, true, campaign) {
                    return false;
                }
                t += 2 * SECOND;
            }
            let background = self.rng.chance(BACKGROUND_OPEN) && t != at;
            if !self.push_with(t, who, Ev::Opened { background }, true, campaign) {
                return false;
            }
            self.step(
                t,
                who,
                Ev::View {
                    name: "Home",
                    category: "Home",
                    path: "/",
                },
            )
        } else {
            self.push_with(
                at,
                who,
                Ev::View {
                    name: "Home",
                    category: "Home",
                    path: "/",
                },
                true,
                campaign,
            )
        }
    }

    /// The first visit, with the acquisition campaign; ends in signup for some.
    fn landing(&mut self, at: i64) {
        match self.sk.signup.filter(|_| self.sk.signup_in_first_visit) {
            Some(s) => {
                self.deadline = s - SECOND;
                self.browse_from(at, Who::Anon(0), Some(Campaign::Acquisition));
                self.sign_up(s);
            }
            None => {
                self.browse(at, Who::Anon(0), Some(Campaign::Acquisition), self.end);
            }
        }
    }

    /// A browsing session from `at` that stops before `deadline`; returns the time of its
    /// last event.
    fn browse(&mut self, at: i64, who: Who, campaign: Option<Campaign>, deadline: i64) -> i64 {
        self.deadline = deadline;
        self.browse_from(at, who, campaign);
        self.cursor
    }

    fn browse_from(&mut self, at: i64, mut who: Who, campaign: Option<Campaign>) {
        if !self.open(at, who, campaign) {
            return;
        }
        if let Who::Anon(1) = who {
            // Logging in on the second device merges its anonymous id into the person.
            let t = self.cursor;
            if !self.step(t, Who::Both(1), Ev::IdentifyLogin) {
                return;
            }
            who = Who::Both(1);
        }
        let mut category = None;
        if self.rng.chance(0.4) {
            let c = self.pick_category();
            let searches = &CATEGORIES[c].searches;
            let query = searches[self.rng.int(0, searches.len() as u32 - 1) as usize];
            let t = self.cursor;
            if !self.step(t, who, Ev::Searched { query }) {
                return;
            }
            let t = self.cursor;
            let results = Ev::View {
                name: "Search Results",
                category: "Search",
                path: "/search",
            };
            if !self.step(t, who, results) {
                return;
            }
            category = Some(c);
        } else if self.rng.chance(0.35) {
            let c = self.pick_category();
            let t = self.cursor;
            let list = Ev::View {
                name: "Category",
                category: "Category",
                path: "/category",
            };
            if !self.step(t, who, list) {
                return;
            }
            category = Some(c);
        }
        if !self.rng.chance(VIEWS_ANY) {
            return;
        }
        let mut views = 1;
        while views < 6 && self.rng.chance(0.45) {
            views += 1;
        }
        let mut seen = [Item {
            product: 0,
            price_fen: 0,
            quantity: 1,
        }; 6];
        for position in 0..views {
            let product = self.pick_product(category);
            let item = Item {
                product,
                price_fen: catalog_price(product),
                quantity: 1,
            };
            seen[position as usize] = item;
            let t = self.cursor;
            if !self.step(
                t,
                who,
                Ev::ProductViewed {
                    item,
                    position: position + 1,
                },
            ) {
                return;
            }
        }
        if !self.rng.chance(ADD_TO_CART) {
            return;
        }
        let mut item = seen[self.rng.int(0, views - 1) as usize];
        if self.rng.chance(0.15) {
            item.quantity = 2;
        }
        let cart = self.carts.len() as u32;
        self.carts.push(vec![item]);
        let t = self.cursor;
        if !self.step(t, who, Ev::ProductAdded { item, cart }) || !self.rng.chance(VIEW_CART) {
            return;
        }
        let t = self.cursor;
        if !self.step(t, who, Ev::CartViewed { cart }) || !self.rng.chance(START_CHECKOUT) {
            return;
        }
        let t = self.cursor;
        self.step(t, who, Ev::CheckoutStarted { cart });
    }

    fn pick_category(&mut self) -> usize {
        if self.rng.chance(0.55) {
            self.persona.favourite
        } else {
            self.rng.weighted(&CATEGORY_WEIGHTS)
        }
    }

    fn pick_product(&mut self, category: Option<usize>) -> u32 {
        let c = match category {
            Some(c) if self.rng.chance(0.85) => c,
            _ => self.pick_category(),
        };
        let base = self.rng.int(0, 3);
        // Popular variants first: a skewed pick.
        let u = self.rng.unit();
        let variant = ((u * u * f64::from(VARIANTS)) as u32).min(VARIANTS - 1);
        (c as u32 * 4 + base) * VARIANTS + variant
    }

    /// Signup: identify (merging the anonymous id into the user), `Signed Up`, and for B2B
    /// buyers the company group.
    fn sign_up(&mut self, s: i64) {
        self.deadline = self.end;
        self.push(s, Who::Both(0), Ev::IdentifySignup);
        self.push(s + SECOND, Who::Both(0), Ev::SignedUp);
        if self.persona.company.is_some() {
            self.push(s + 3 * SECOND, Who::Both(0), Ev::Group);
        }
    }

    /// The visit that ends in order `k`: views, cart, checkout, the order (sent by the server)
    /// and the confirmation page; a membership upgrade after the 3rd and 8th orders.
    fn purchase(&mut self, k: usize) {
        let order = self.log.orders[k];
        let floor = self.sk.signup.unwrap_or(self.sk.arrival) + 2 * SECOND;
        let dev = self.pick_device(order.at - HOUR);
        let who = self.signed_in(dev);
        let items = self.split_order(order.fen);
        let cart = self.carts.len() as u32;
        self.carts.push(items.clone());
        let coupon = self.pick_coupon(k, order.at);
        let discount_fen = coupon.map_or(0, |(_, share)| (order.fen as f64 * share).round() as u64);
        let number = self.orders.len() as u32;
        self.orders.push(OrderDetail {
            cart,
            coupon,
            discount_fen,
            fen: order.fen,
        });

        // The steps before the order, planned backwards from the order's time.
        let mut steps: Vec<Ev> = Vec::with_capacity(12);
        if self.rng.chance(0.3) {
            let c = product_parts(items[0].product).0;
            let query = c.searches[self.rng.int(0, 2) as usize];
            steps.push(Ev::Searched { query });
        }
        let extra = self.rng.int(0, 2);
        for position in 0..extra {
            let product = self.pick_product(None);
            let item = Item {
                product,
                price_fen: catalog_price(product),
                quantity: 1,
            };
            steps.push(Ev::ProductViewed {
                item,
                position: position + 1,
            });
        }
        for (i, item) in items.iter().enumerate() {
            let shown = Item {
                quantity: 1,
                ..*item
            };
            steps.push(Ev::ProductViewed {
                item: shown,
                position: extra + i as u32 + 1,
            });
        }
        for item in &items {
            steps.push(Ev::ProductAdded { item: *item, cart });
        }
        steps.push(Ev::CartViewed { cart });
        steps.push(Ev::CheckoutStarted { cart });
        if coupon.is_some() {
            steps.push(Ev::CouponApplied { order: number });
        }
        let gaps: Vec<i64> = (0..steps.len()).map(|_| self.gap()).collect();
        let total: i64 = gaps.iter().sum();
        let begin = order.at - total - 10 * SECOND;
        self.deadline = self.end;
        if begin > floor {
            self.open(begin, who, None);
        }
        let mut t = order.at;
        let mut times = vec![0; steps.len()];
        for (i, g) in gaps.iter().enumerate().rev() {
            t -= g;
            times[i] = t;
        }
        for (i, ev) in steps.into_iter().enumerate() {
            self.push(times[i].max(floor + i as i64), who, ev);
        }
        self.push(order.at, Who::Server, Ev::OrderCompleted { order: number });
        let page = Ev::View {
            name: "Order Confirmation",
            category: "Checkout",
            path: "/order/done",
        };
        self.push(order.at + 3 * SECOND, who, page);
        let count = number + 1;
        let level = match count {
            3 => Some("silver"),
            8 => Some("gold"),
            _ => None,
        };
        if let Some(level) = level {
            self.push(
                order.at + 5 * SECOND,
                Who::Server,
                Ev::IdentifyMembership {
                    level,
                    orders: count,
                },
            );
        }
    }

    /// Splits an order's revenue into 1–3 line items whose prices times quantities add up to
    /// it exactly.
    fn split_order(&mut self, fen: u64) -> Vec<Item> {
        let wanted = match self.rng.unit() {
            u if u < 0.55 => 1,
            u if u < 0.85 => 2,
            _ => 3,
        };
        let lines = if fen >= 300 * wanted { wanted } else { 1 };
        let weights: Vec<f64> = (0..lines).map(|_| 0.5 + self.rng.unit()).collect();
        let sum: f64 = weights.iter().sum();
        let mut left = fen;
        let mut items = Vec::with_capacity(lines as usize);
        for (i, w) in weights.iter().enumerate() {
            let part = if i + 1 == lines as usize {
                left
            } else {
                ((fen as f64 * w / sum) as u64).clamp(1, left - 1)
            };
            left -= part;
            let product = self.pick_product(None);
            let (price_fen, quantity) = if part % 2 == 0 && part >= 200 && self.rng.chance(0.2) {
                (part / 2, 2)
            } else {
                (part, 1)
            };
            items.push(Item {
                product,
                price_fen,
                quantity,
            });
        }
        items
    }

    fn pick_coupon(&mut self, k: usize, at: i64) -> Option<(&'static str, f64)> {
        let date = civil_from_days(local_day(at));
        let u = self.rng.unit();
        if k == 0 {
            return (u < 0.45).then_some(COUPON_NEW_USER);
        }
        match (date.month, date.day) {
            (6, 1..=18) if u < 0.5 => Some(COUPON_618),
            (10, 31) | (11, 1..=11) if u < 0.5 => Some(COUPON_DOUBLE_11),
            _ if u < 0.12 => Some(COUPON_MEMBER),
            _ if u < 0.2 => Some(COUPON_FREE_SHIPPING),
            _ => None,
        }
    }

    /// A win-back push (app users) or e-mail (others) opened, then a visit.
    fn win_back(&mut self, at: i64) {
        self.deadline = self.end;
        let (ev, who, campaign) = if self.devices[0].is_app() {
            (Ev::PushOpened, Who::Both(0), Campaign::WinBackPush)
        } else {
            (Ev::EmailClicked, Who::Server, Campaign::WinBackEmail)
        };
        if self.push_with(at, who, ev, false, Some(campaign)) {
            self.last_at = at - DAY; // the visit that follows is a new one
            let who = self.signed_in(0);
            self.browse(at + 20 * SECOND, who, Some(campaign), self.end);
        }
    }

    /// An NPS score, higher for people who buy more often, lower once they have stopped.
    fn nps_score(&mut self, at: i64) -> u8 {
        let relative = self.prof.lambda / self.synth.config.mean_lambda();
        let dead = self.log.death.is_some_and(|d| d < at);
        let z = 5.6 + 2.0 * crate::math::ln(1.0 + relative) + 1.5 * self.rng.normal()
            - if dead { 1.0 } else { 0.0 };
        z.round().clamp(0.0, 10.0) as u8
    }

    /// Sorts the plan by time and turns it into messages.
    fn finish(mut self, scratch: &mut Scratch, out: &mut impl Extend<Message>) -> UserTruth {
        self.events.sort_unstable_by_key(|e| (e.at, e.seq));
        let ids = Ids::new(self.synth.config.seed, self.sk.index);
        out.extend(
            self.events
                .iter()
                .enumerate()
                .map(|(seq, planned)| self.message(&ids, seq, planned)),
        );
        self.invites_sent = self
            .events
            .iter()
            .filter(|e| matches!(e.ev, Ev::InviteSent { .. }))
            .count() as u32;
        let truth = self.truth(ids);
        scratch.events = std::mem::take(&mut self.events);
        scratch.events.clear();
        scratch.sessions = std::mem::take(&mut self.sessions);
        truth
    }

    fn truth(&self, ids: Ids) -> UserTruth {
        let sk = &self.sk;
        let orders = self
            .log
            .orders
            .iter()
            .enumerate()
            .map(|(k, o)| OrderTruth {
                order_id: order_id(sk.index, k + 1),
                at: Timestamp(o.at),
                revenue_fen: o.fen,
            })
            .collect();
        UserTruth {
            index: sk.index,
            user_id: ids.user,
            anonymous_id: ids.anon[0].clone(),
            second_anonymous_id: self.second_login.map(|_| ids.anon[1].clone()),
            arrival: Timestamp(sk.arrival),
            channel: sk.channel,
            platform: self.devices[0],
            city: CITIES[self.prof.city].0,
            signed_up_at: sk.signup.map(Timestamp),
            referrer: sk.referral.map(|r| r.referrer),
            invitees: self.invitees.iter().map(|(i, _)| *i).collect(),
            invites_sent: self.invites_sent,
            lambda: self.prof.lambda,
            p: self.prof.p,
            mean_spend: self.prof.mean_spend,
            orders,
            death: self.log.death.map(Timestamp),
            sessions_per_week: self.sessions_per_week,
            dormant_at: self.dormant_at.map(Timestamp),
            came_back_at: self.came_back_at.map(Timestamp),
            nps: self.nps,
            company: self.persona.company.map(|c| format!("co{c}")),
        }
    }
}

/// The ids of one user.
struct Ids {
    seed_hex: String,
    index: u64,
    user: String,
    anon: [String; 2],
}

impl Ids {
    fn new(seed: u64, index: u64) -> Ids {
        Ids {
            seed_hex: format!("{seed:x}"),
            index,
            user: user_id(index),
            anon: [
                uuid_like(hash(seed, index, tag::ANON_ID)),
                uuid_like(hash(seed, index, tag::SECOND_ANON_ID)),
            ],
        }
    }

    /// `<seed hex>-<user index>-<sequence>`, written without the formatting machinery.
    fn message_id(&self, seq: usize) -> String {
        let mut id = Vec::with_capacity(40);
        id.extend_from_slice(self.seed_hex.as_bytes());
        id.push(b'-');
        push_padded(&mut id, self.index, 1);
        id.push(b'-');
        push_padded(&mut id, seq as u64, 1);
        String::from_utf8(id).unwrap_or_default()
    }
}

/// A version-4-shaped UUID made from 64 hashed bits (and their mix).
fn uuid_like(bits: u64) -> String {
    let lo = mix(bits ^ 0x5555_5555_5555_5555);
    let hex = format!("{bits:016x}{lo:016x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// A six-letter personal referral code.
fn referral_code(seed: u64, index: u64) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bits = hash(seed, index, tag::REFERRAL_CODE);
    (0..6)
        .map(|_| {
            let c = ALPHABET[(bits & 31) as usize] as char;
            bits >>= 5;
            c
        })
        .collect()
}

/// The token of one invitation.
fn invite_token(token: u64) -> String {
    format!("inv_{:012x}", token >> 16)
}

/// The list price of a product: around its category's median, ending in 9 yuan.
fn catalog_price(product: u32) -> u64 {
    let (category, _, _) = product_parts(product);
    let bits = hash(0, u64::from(product), 0x0050_5249_4345); // "PRICE"
    let z = (unit_of(bits) + unit_of(mix(bits)) + unit_of(mix(bits ^ 7)) - 1.5) * 2.0;
    let yuan = (category.median_price * crate::math::exp(0.45 * z)).max(9.0);
    let yuan = (yuan / 10.0).floor() as u64 * 10 + 9;
    yuan * 100
}

impl Persona {
    fn draw(rng: &mut ChaCha8Rng, seed: u64, index: u64, users: u64) -> Persona {
        let s = rng.int(0, SURNAMES.len() as u32 - 1) as usize;
        let mut name = String::from(SURNAMES[s]);
        name.push_str(GIVEN[rng.int(0, GIVEN.len() as u32 - 1) as usize]);
        if rng.chance(0.6) {
            name.push_str(GIVEN[rng.int(0, GIVEN.len() as u32 - 1) as usize]);
        }
        let domains: [f64; EMAIL_DOMAINS.len()] = std::array::from_fn(|i| EMAIL_DOMAINS[i].1);
        let domain = EMAIL_DOMAINS[rng.weighted(&domains)].0;
        let email = format!("{}{}@{}", SURNAMES_PINYIN[s], index, domain);
        let gender = if rng.chance(0.57) { "female" } else { "male" };
        let ages: [f64; AGE_BANDS.len()] = std::array::from_fn(|i| AGE_BANDS[i].1);
        let age_band = AGE_BANDS[rng.weighted(&ages)].0;
        let plus_member = rng.chance(0.06);
        let favourite = rng.weighted(&CATEGORY_WEIGHTS);
        let company = rng
            .chance(B2B)
            .then(|| rng.int(0, u32::MAX) as u64 % (users / 25).max(1));
        Persona {
            name,
            email,
            gender,
            age_band,
            plus_member,
            favourite,
            referral_code: referral_code(seed, index),
            company,
        }
    }
}

// ---- turning planned events into messages ----

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn yuan(fen: u64) -> Value {
    Value::from(fen as f64 / 100.0)
}

fn map<const N: usize>(pairs: [(&str, Value); N]) -> JsonMap {
    let mut m = JsonMap::new();
    for (k, v) in pairs {
        m.insert(k.to_owned(), v);
    }
    m
}

/// The spec's product fields; `quantity` only where a quantity is chosen.
fn product_props(item: &Item, with_quantity: bool) -> JsonMap {
    let (category, name, _) = product_parts(item.product);
    let mut m = map([
        ("product_id", Value::String(product_code(item.product))),
        ("category", s(category.name)),
        ("name", s(name)),
        ("price", yuan(item.price_fen)),
    ]);
    if with_quantity {
        m.insert("quantity".into(), Value::from(item.quantity));
    }
    m
}

fn product_json(item: &Item) -> Value {
    Value::Object(product_props(item, true))
}

fn product_code(product: u32) -> String {
    let (category, _, _) = product_parts(product);
    format!(
        "{}-{:04}",
        category.code,
        product % (PRODUCTS / CATEGORIES.len() as u32)
    )
}

fn cart_value(items: &[Item]) -> u64 {
    items
        .iter()
        .map(|i| i.price_fen * u64::from(i.quantity))
        .sum()
}

impl Story<'_> {
    fn message(&self, ids: &Ids, seq: usize, e: &Planned) -> Message {
        let platform = self.platform(e.who);
        let (uid, anon) = match e.who {
            Who::Anon(d) => (None, Some(ids.anon[usize::from(d)].clone())),
            Who::Both(d) => (
                Some(ids.user.clone()),
                Some(ids.anon[usize::from(d)].clone()),
            ),
            Who::Known(_) | Who::Server => (Some(ids.user.clone()), None),
        };
        let channel = match e.who {
            Who::Server => "server",
            _ => platform.message_channel(),
        };
        let mut m = Message {
            message_id: ids.message_id(seq),
            kind: MessageKind::Track,
            event: None,
            user_id: uid,
            anonymous_id: anon,
            previous_id: None,
            group_id: None,
            category: None,
            timestamp: Timestamp(e.at),
            original_timestamp: None,
            sent_at: None,
            received_at: Timestamp(e.at),
            properties: JsonMap::new(),
            traits: JsonMap::new(),
            set_once: JsonMap::new(),
            context: JsonMap::new(),
            integrations: JsonMap::new(),
            channel: Some(channel.to_owned()),
        };
        let track = |m: &mut Message, name: &str, props: JsonMap| {
            m.event = Some(name.to_owned());
            m.properties = props;
        };
        let sk = &self.sk;
        let index = sk.index;
        match e.ev {
            Ev::Installed => track(
                &mut m,
                "Application Installed",
                map([("version", s("5.12.0")), ("build", Value::from(51200))]),
            ),
            Ev::Opened { background } => track(
                &mut m,
                "Application Opened",
                map([
                    ("from_background", Value::Bool(background)),
                    ("version", s("5.12.0")),
                ]),
            ),
            Ev::View {
                name,
                category,
                path,
            } => {
                m.event = Some(name.to_owned());
                m.category = Some(category.to_owned());
                if platform == Platform::Web {
                    m.kind = MessageKind::Page;
                    let url = match e.campaign {
                        Some(Campaign::Acquisition) => format!(
                            "https://shop.example.cn{path}?utm_source={}&utm_medium={}&utm_campaign={}",
                            self.utm_source(),
                            sk.channel.utm_medium(),
                            sk.channel.utm_campaign()
                        ),
                        _ => format!("https://shop.example.cn{path}"),
                    };
                    m.properties = map([("path", s(path)), ("url", Value::String(url))]);
                } else {
                    // The screen's name is the message's `event` (the spec's `name`).
                    m.kind = MessageKind::Screen;
                }
            }
            Ev::Searched { query } => {
                track(&mut m, "Products Searched", map([("query", s(query))]))
            }
            Ev::ProductViewed { item, position } => {
                let mut props = product_props(&item, false);
                props.insert("currency".into(), s("CNY"));
                props.insert("position".into(), Value::from(position));
                track(&mut m, "Product Viewed", props);
            }
            Ev::ProductAdded { item, cart } => {
                let mut props = product_props(&item, true);
                props.insert("cart_id".into(), Value::String(format!("c{index}-{cart}")));
                props.insert("currency".into(), s("CNY"));
                track(&mut m, "Product Added", props);
            }
            Ev::CartViewed { cart } => {
                let items = &self.carts[cart as usize];
                let products = Value::Array(items.iter().map(product_json).collect());
                track(
                    &mut m,
                    "Cart Viewed",
                    map([
                        ("cart_id", Value::String(format!("c{index}-{cart}"))),
                        ("products", products),
                    ]),
                );
            }
            Ev::CheckoutStarted { cart } => {
                let items = &self.carts[cart as usize];
                let products = Value::Array(items.iter().map(product_json).collect());
                track(
                    &mut m,
                    "Checkout Started",
                    map([
                        ("checkout_id", Value::String(format!("c{index}-{cart}"))),
                        ("value", yuan(cart_value(items))),
                        ("currency", s("CNY")),
                        ("products", products),
                    ]),
                );
            }
            Ev::CouponApplied { order } => {
                let detail = &self.orders[order as usize];
                let (code, _) = detail.coupon.unwrap_or(("", 0.0));
                track(
                    &mut m,
                    "Coupon Applied",
                    map([
                        (
                            "order_id",
                            Value::String(order_id(index, order as usize + 1)),
                        ),
                        ("coupon_id", s(code)),
                        ("discount", yuan(detail.discount_fen)),
                    ]),
                );
            }
            Ev::OrderCompleted { order } => {
                let detail = &self.orders[order as usize];
                let items = &self.carts[detail.cart as usize];
                let mut props = map([
                    (
                        "order_id",
                        Value::String(order_id(index, order as usize + 1)),
                    ),
                    (
                        "checkout_id",
                        Value::String(format!("c{index}-{}", detail.cart)),
                    ),
                    ("revenue", yuan(detail.fen)),
                    ("discount", yuan(detail.discount_fen)),
                    (
                        "total",
                        yuan(detail.fen - detail.discount_fen.min(detail.fen)),
                    ),
                    ("currency", s("CNY")),
                    (
                        "products",
                        Value::Array(items.iter().map(product_json).collect()),
                    ),
                ]);
                if let Some((code, _)) = detail.coupon {
                    props.insert("coupon".into(), s(code));
                }
                track(&mut m, "Order Completed", props);
            }
            Ev::IdentifySignup => {
                m.kind = MessageKind::Identify;
                let p = &self.persona;
                m.traits = map([
                    ("email", Value::String(p.email.clone())),
                    ("name", Value::String(p.name.clone())),
                    ("city", s(CITIES[self.prof.city].0)),
                    ("gender", s(p.gender)),
                    ("age_band", s(p.age_band)),
                    ("membership", s("regular")),
                    ("plus_member", Value::Bool(p.plus_member)),
                    ("signup_channel", s(sk.channel.as_str())),
                    ("channel_group", s(sk.channel.group().as_str())),
                    ("channel", s(sk.channel.as_str())),
                    ("platform", s(platform.as_str())),
                    ("referral_code", Value::String(p.referral_code.clone())),
                    ("created_at", Value::String(Timestamp(e.at).to_rfc3339())),
                ]);
                m.set_once = map([
                    ("initial_utm_source", s(self.utm_source())),
                    ("initial_utm_medium", s(sk.channel.utm_medium())),
                ]);
            }
            Ev::IdentifyLogin => {
                m.kind = MessageKind::Identify;
                m.traits = map([
                    ("email", Value::String(self.persona.email.clone())),
                    ("last_platform", s(platform.as_str())),
                ]);
            }
            Ev::IdentifyMembership { level, orders } => {
                m.kind = MessageKind::Identify;
                m.traits = map([
                    ("membership", s(level)),
                    ("orders_count", Value::from(orders)),
                ]);
            }
            Ev::SignedUp => {
                let method = match hash(self.synth.config.seed, index, 0x4d45_5448) % 20 {
                    0 => "email",
                    1..=8 => "wechat",
                    _ => "phone",
                };
                let mut props = map([
                    ("method", s(method)),
                    ("signup_channel", s(sk.channel.as_str())),
                ]);
                if let Some(r) = sk.referral {
                    props.insert("referrer_id".into(), Value::String(user_id(r.referrer)));
                    props.insert(
                        "referral_code".into(),
                        Value::String(referral_code(self.synth.config.seed, r.referrer)),
                    );
                    let token = hash(self.synth.config.seed, index, tag::INVITE_REF);
                    props.insert("invitee_ref".into(), Value::String(invite_token(token)));
                }
                track(&mut m, "Signed Up", props);
            }
            Ev::Group => {
                m.kind = MessageKind::Group;
                let company = self.persona.company.unwrap_or(0);
                m.group_id = Some(format!("co{company}"));
                let bits = hash(self.synth.config.seed, company, 0x434f_4d50); // "COMP"
                let word = COMPANY_WORDS[(bits % COMPANY_WORDS.len() as u64) as usize];
                let (kind, industry) =
                    COMPANY_KINDS[((bits >> 8) % COMPANY_KINDS.len() as u64) as usize];
                let city = CITIES[((bits >> 16) % CITIES.len() as u64) as usize].0;
                let employees = 5 + (bits >> 24) % 400;
                m.traits = map([
                    (
                        "name",
                        Value::String(format!("{city} {word} {kind} Co., Ltd.")),
                    ),
                    ("industry", s(industry)),
                    ("employees", Value::from(employees)),
                    ("city", s(city)),
                ]);
            }
            Ev::InviteSent { token } => {
                let via = [
                    "wechat_friend",
                    "wechat_friend",
                    "wechat_moments",
                    "qq",
                    "sms",
                ][(token % 5) as usize];
                track(
                    &mut m,
                    "Invite Sent",
                    map([
                        ("invitee_ref", Value::String(invite_token(token))),
                        (
                            "referral_code",
                            Value::String(self.persona.referral_code.clone()),
                        ),
                        ("share_via", s(via)),
                    ]),
                );
            }
            Ev::Survey { score } => {
                let group = match score {
                    9..=10 => "promoter",
                    7..=8 => "passive",
                    _ => "detractor",
                };
                track(
                    &mut m,
                    "Survey Answered",
                    map([
                        ("survey", s("nps")),
                        ("score", Value::from(score)),
                        ("nps_group", s(group)),
                    ]),
                );
            }
            Ev::PushOpened => track(
                &mut m,
                "Push Opened",
                map([
                    ("campaign_id", s("winback_coupon")),
                    ("campaign_name", s("We miss you: ¥20 off")),
                ]),
            ),
            Ev::EmailClicked => track(
                &mut m,
                "Email Clicked",
                map([
                    ("campaign_id", s("winback_coupon")),
                    ("email_subject", s("We miss you: ¥20 off your next order")),
                    ("link_url", s("https://shop.example.cn/coupon/winback")),
                ]),
            ),
        }
        if e.opener {
            m.context.insert(
                "os".into(),
                Value::Object(map([("name", s(platform.os_name()))])),
            );
            m.context.insert("locale".into(), s("zh-CN"));
            m.context.insert("timezone".into(), s("Asia/Shanghai"));
        }
        if let Some(c) = e.campaign {
            m.context.insert("campaign".into(), self.campaign_json(c));
        }
        m
    }

    fn utm_source(&self) -> &'static str {
        let sources = self.sk.channel.utm_sources();
        let u = unit_of(hash(self.synth.config.seed, self.sk.index, tag::UTM_SOURCE));
        sources[((u * sources.len() as f64) as usize).min(sources.len() - 1)]
    }

    fn campaign_json(&self, c: Campaign) -> Value {
        let (source, medium, name, channel) = match c {
            Campaign::Acquisition => {
                let ch = self.sk.channel;
                (
                    self.utm_source(),
                    ch.utm_medium(),
                    ch.utm_campaign(),
                    ch.as_str(),
                )
            }
            Campaign::WinBackPush => ("push", "crm", "winback_coupon", "winback_push"),
            Campaign::WinBackEmail => ("email", "crm", "winback_coupon", "winback_email"),
        };
        Value::Object(map([
            ("source", s(source)),
            ("medium", s(medium)),
            ("name", s(name)),
            ("utm_source", s(source)),
            ("utm_medium", s(medium)),
            ("utm_campaign", s(name)),
            ("channel", s(channel)),
        ]))
    }
}
