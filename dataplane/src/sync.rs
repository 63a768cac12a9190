//! The atomics of the protocols the loom models check (`loom_models`): loom's when the crate's
//! unit tests are built with `--cfg loom`, std's otherwise. The code under test is the code that
//! runs; only these imports change.

#[cfg(all(test, loom))]
pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
