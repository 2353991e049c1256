//! Randomness: a stateless keyed hash for the facts other users need to see (arrival, channel,
//! referrer), and per-user ChaCha8 streams for everything else.
//!
//! **Invariant:** every random draw is a pure function of `(seed, user index, stream or tag,
//! position)`. No draw depends on another user's draws, except through the hash-derived
//! skeleton facts, which are themselves pure functions of `(seed, index)`.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SplitMix64's finaliser: a bijective 64-bit mixer.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A keyed hash of `(seed, index, tag)`; the three inputs are mixed one after another so that
/// neighbouring indices or tags give unrelated outputs.
#[inline]
pub(crate) fn hash(seed: u64, index: u64, tag: u64) -> u64 {
    let a = mix(seed ^ 0x6c6f_6465_7374_6172); // "lodestar"
    let b = mix(a.wrapping_add(index).wrapping_add(0x9e37_79b9_7f4a_7c15));
    mix(b ^ tag.wrapping_mul(0xd6e8_feb8_6659_fd93))
}

/// A uniform number in [0, 1) from the top 53 bits of a hash.
#[inline]
pub(crate) fn unit_of(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Tags of the hash-derived facts; each fact draws from its own tag.
pub(crate) mod tag {
    pub const ARRIVAL: u64 = 1;
    pub const CHANNEL: u64 = 2;
    pub const SIGNUP: u64 = 3;
    pub const SIGNUP_DELAY: u64 = 4;
    pub const SHARER: u64 = 5;
    pub const INVITE_LEAD: u64 = 6;
    pub const FALLBACK_CHANNEL: u64 = 7;
    pub const ANON_ID: u64 = 8;
    pub const REFERRAL_CODE: u64 = 9;
    pub const DAY_NOISE: u64 = 10;
    pub const UTM_SOURCE: u64 = 11;
    pub const SECOND_ANON_ID: u64 = 12;
    pub const INVITE_REF: u64 = 13;
    pub const BUYS: u64 = 14;
    /// Referrer attempts use `REFERRER + attempt`.
    pub const REFERRER: u64 = 0x100;
}

/// The independent random streams of one user.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    /// City, latent purchase rate, dropout probability, spend, first purchase; then repeat
    /// purchase times, dropout coin flips and order amounts.
    Profile = 1,
    /// Sessions, page views, funnels, traits, surveys, invitations.
    Activity = 3,
}

/// A ChaCha8 generator seeded from `(seed, user index)` on the given stream.
pub(crate) fn user_rng(seed: u64, index: u64, stream: Stream) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&index.to_le_bytes());
    key[16..24].copy_from_slice(b"lodestar");
    key[24..].copy_from_slice(b"synth/v1");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(stream as u64);
    rng
}

/// Small sampling helpers on top of any generator.
pub(crate) trait Draw {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64;
    /// True with probability `p` (any `p`; values outside [0, 1] saturate).
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Exponential with the given mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * crate::math::ln(1.0 - self.unit())
    }
    /// Uniform integer in `lo..=hi`.
    fn int(&mut self, lo: u32, hi: u32) -> u32 {
        let span = u64::from(hi - lo) + 1;
        lo + ((self.unit() * span as f64) as u64).min(span - 1) as u32
    }
    /// Index drawn with probability proportional to `weights`.
    fn weighted(&mut self, weights: &[f64]) -> usize {
        pick_weighted(weights, self.unit())
    }
    /// A standard normal draw.
    fn normal(&mut self) -> f64 {
        crate::math::normal(self)
    }
}

impl Draw for ChaCha8Rng {
    #[inline]
    fn unit(&mut self) -> f64 {
        self.random::<f64>()
    }
}

/// The index whose cumulative weight first exceeds `u` times the total.
pub(crate) fn pick_weighted(weights: &[f64], u: f64) -> usize {
    let total: f64 = weights.iter().sum();
    let mut target = u * total;
    for (i, w) in weights.iter().enumerate() {
        if target < *w {
            return i;
        }
        target -= w;
    }
    weights.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_separates_inputs() {
        let base = hash(1, 2, 3);
        assert_ne!(base, hash(1, 2, 4));
        assert_ne!(base, hash(1, 3, 3));
        assert_ne!(base, hash(2, 2, 3));
        assert_eq!(base, hash(1, 2, 3));
    }

    #[test]
    fn streams_differ_and_repeat() {
        let mut a = user_rng(7, 1, Stream::Profile);
        let mut b = user_rng(7, 1, Stream::Activity);
        let mut c = user_rng(7, 1, Stream::Profile);
        let (x, y, z) = (a.unit(), b.unit(), c.unit());
        assert_ne!(x, y);
        assert_eq!(x, z);
    }

    #[test]
    fn weighted_pick_follows_weights() {
        assert_eq!(pick_weighted(&[1.0, 1.0], 0.0), 0);
        assert_eq!(pick_weighted(&[1.0, 1.0], 0.49), 0);
        assert_eq!(pick_weighted(&[1.0, 1.0], 0.51), 1);
        assert_eq!(pick_weighted(&[0.0, 1.0], 0.0), 1);
        assert_eq!(pick_weighted(&[1.0, 1.0], 0.999_999_9), 1);
    }
}
