//! Integration tests of `lodestar-models` (one test binary): published CDNOW and donations
//! estimates, agreement with the Python `lifetimes` package, and property tests against naive
//! implementations.

#![allow(
    clippy::print_stderr,
    reason = "a fit prints its diagnostics, shown when a test fails"
)]

mod cdnow;
mod common;
mod lifetimes_reference;
mod properties;
mod synthetic;
