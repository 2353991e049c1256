//! What to generate: the seed, the size of the population, the window, and the parameters of
//! the purchase and spend models.

use lodestar_core::Timestamp;

/// Heterogeneity parameters of the BG/NBD ("beta-geometric / negative binomial") purchase
/// model, with weeks as the time unit.
///
/// While alive, a customer buys in a Poisson process with weekly rate `λ ~ Gamma(r, α)` (shape
/// `r`, rate `α`); after each repeat purchase they drop out for good with probability
/// `p ~ Beta(a, b)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Rate (inverse scale) of the purchase-rate distribution, in weeks.
    pub alpha: f64,
    /// First shape of the dropout-probability distribution.
    pub a: f64,
    /// Second shape of the dropout-probability distribution.
    pub b: f64,
}

impl BgNbd {
    /// Fader, Hardie & Lee's (2005) maximum-likelihood estimates on the CDNOW cohort.
    pub const CDNOW: BgNbd = BgNbd {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };
}

/// Parameters of the Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV").
///
/// A customer's order values are `Gamma(p, ν)` (shape `p`, rate `ν`), so their mean order value
/// is `p / ν`; across customers `ν ~ Gamma(q, γ)` (shape `q`, rate `γ`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    /// Shape of one customer's order values.
    pub p: f64,
    /// Shape of the distribution of `ν` across customers.
    pub q: f64,
    /// Rate of the distribution of `ν` across customers.
    pub gamma: f64,
}

impl GammaGamma {
    /// The published estimates on the CDNOW repeat buyers (in 1997 US dollars).
    pub const CDNOW: GammaGamma = GammaGamma {
        p: 6.25,
        q: 3.74,
        gamma: 15.44,
    };
}

/// Everything that determines the generated data. Equal configurations give identical output.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// The seed; any value is fine.
    pub seed: u64,
    /// How many people arrive (visit the shop for the first time) during the window.
    pub users: u64,
    /// The length of the window in days; every message falls in `[start, start + days)`.
    pub days: u32,
    /// The first instant of the window.
    pub start: Timestamp,
    /// Heterogeneity of purchase rates and dropout, before `rate_scale`.
    pub purchases: BgNbd,
    /// Multiplies every latent purchase rate: the rates are drawn from
    /// `Gamma(r, alpha / rate_scale)`. The default, 2.0, makes a modern shopping app's
    /// customers buy twice as often as CDNOW's 1997 CD buyers (a mean of one repeat order every
    /// nine weeks instead of every eighteen), so a demo of a year has enough repeat buyers to
    /// show RFM layers and CLV.
    pub rate_scale: f64,
    /// Order values, in the unit of the published parameters (US dollars of 1997).
    pub spend: GammaGamma,
    /// Yuan (CNY) per unit of `spend`. The default, 6.0, turns CDNOW's mean order of about
    /// USD 35 into about ¥210, a typical basket of a Chinese shopping app.
    pub cny_per_unit: f64,
}

/// Midnight of 1 January 2025 in Shanghai (2024-12-31T16:00:00Z).
pub const DEFAULT_START: Timestamp = Timestamp(1_735_660_800_000);

/// The longest window accepted, in days (about a century).
pub const MAX_DAYS: u32 = 36_525;

impl Default for SynthConfig {
    /// 10,000 users over the 365 days of 2025 (Shanghai time), CDNOW parameters, seed 42.
    fn default() -> Self {
        SynthConfig {
            seed: 42,
            users: 10_000,
            days: 365,
            start: DEFAULT_START,
            purchases: BgNbd::CDNOW,
            rate_scale: 2.0,
            spend: GammaGamma::CDNOW,
            cny_per_unit: 6.0,
        }
    }
}

impl SynthConfig {
    /// A default configuration with the given seed, size and window.
    pub fn new(seed: u64, users: u64, days: u32, start: Timestamp) -> Self {
        SynthConfig {
            seed,
            users,
            days,
            start,
            ..SynthConfig::default()
        }
    }

    /// The window's end (exclusive).
    pub fn end(&self) -> Timestamp {
        self.start.add_millis(i64::from(self.days) * Timestamp::DAY)
    }

    /// The mean latent weekly purchase rate, `r · rate_scale / α`.
    pub fn mean_lambda(&self) -> f64 {
        self.purchases.r * self.rate_scale / self.purchases.alpha
    }

    /// The mean dropout probability, `a / (a + b)`.
    pub fn mean_p(&self) -> f64 {
        self.purchases.a / (self.purchases.a + self.purchases.b)
    }

    /// Checks that the configuration describes something that can be generated.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.days == 0 || self.days > MAX_DAYS {
            return Err(ConfigError::Days(self.days));
        }
        let window = i64::from(self.days) * Timestamp::DAY;
        if self.start.0.checked_add(window).is_none() || self.start.0.checked_sub(window).is_none()
        {
            return Err(ConfigError::Start(self.start));
        }
        let params = [
            ("purchases.r", self.purchases.r),
            ("purchases.alpha", self.purchases.alpha),
            ("purchases.a", self.purchases.a),
            ("purchases.b", self.purchases.b),
            ("rate_scale", self.rate_scale),
            ("spend.p", self.spend.p),
            ("spend.q", self.spend.q),
            ("spend.gamma", self.spend.gamma),
            ("cny_per_unit", self.cny_per_unit),
        ];
        for (name, value) in params {
            if !(value.is_finite() && value > 0.0) {
                return Err(ConfigError::Parameter { name, value });
            }
        }
        Ok(())
    }
}

/// Why a [`SynthConfig`] cannot be generated.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    /// The window must be between 1 and [`MAX_DAYS`] days long.
    Days(u32),
    /// The window would run past the representable range of time.
    Start(Timestamp),
    /// A model parameter must be a finite number greater than zero.
    Parameter {
        /// The field's name.
        name: &'static str,
        /// The value given.
        value: f64,
    },
}

impl ConfigError {
    /// A stable code for the kind of mistake, for logs and error tables.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Days(_) => "synth_days_out_of_range",
            ConfigError::Start(_) => "synth_start_out_of_range",
            ConfigError::Parameter { .. } => "synth_bad_parameter",
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Days(days) => {
                write!(
                    f,
                    "window of {days} days; it must be 1 to {MAX_DAYS} days long"
                )
            }
            ConfigError::Start(start) => {
                write!(f, "window starting at {} ms is out of range", start.0)
            }
            ConfigError::Parameter { name, value } => {
                write!(
                    f,
                    "{name} is {value}; it must be a finite number above zero"
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_documented_means_hold() {
        let c = SynthConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert!((c.mean_lambda() - 0.243 * 2.0 / 4.414).abs() < 1e-12);
        assert!((c.mean_p() - 0.793 / 3.219).abs() < 1e-12);
        assert_eq!(c.end().0 - c.start.0, 365 * Timestamp::DAY);
    }

    #[test]
    fn bad_configs_are_refused() {
        let mut c = SynthConfig {
            days: 0,
            ..SynthConfig::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Days(0)));
        c.days = 10;
        c.purchases.a = f64::NAN;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Parameter {
                name: "purchases.a",
                ..
            })
        ));
        c.purchases.a = 1.0;
        c.rate_scale = 0.0;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Parameter {
                name: "rate_scale",
                ..
            })
        ));
        c.rate_scale = 1.0;
        c.start = Timestamp(i64::MAX - 5);
        assert_eq!(
            c.validate(),
            Err(ConfigError::Start(Timestamp(i64::MAX - 5)))
        );
    }
}
