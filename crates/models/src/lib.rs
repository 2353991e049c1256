//! Buy-till-you-die customer-base models: the pure-math core.
//!
//! - [`summary`]: transaction log → per-customer frequency, recency, age, mean repeat spend.
//! - [`data`]: checked and aggregated model inputs ([`Rfm`], [`RfmData`], [`SpendData`]).
//! - Models, each with a maximum-likelihood `fit` and per-customer predictions:
//!   [`bg_nbd`], [`pareto_nbd`], [`mbg_nbd`] (purchase counts in continuous time),
//!   [`gamma_gamma`] (spend per purchase), [`bg_bb`] (discrete-time opportunities).
//! - [`clv`]: discounted customer lifetime value over a monthly horizon.
//!
//! **Invariant: this crate does no I/O and reads no clock.** Times are numbers in a
//! [`summary::TimeUnit`] that the caller chooses; fitted parameters (the rate parameters α, β,
//! γ of the purchase models) are in the unit of the data they were fitted on, and predictions
//! take horizons in that same unit. Fits are deterministic: the same data give the same
//! parameters.

mod beta_geometric;
pub mod bg_bb;
pub mod bg_nbd;
pub mod clv;
pub mod data;
mod error;
pub mod fit;
pub mod gamma_gamma;
pub mod mbg_nbd;
mod optimize;
mod par;
pub mod pareto_nbd;
pub mod special;
pub mod summary;

pub use clv::{ClvHorizon, Discount, PurchaseModel, customer_lifetime_value};
pub use data::{Rfm, RfmData, SpendData};
pub use error::ModelError;
pub use fit::{FitOptions, FitReport};
