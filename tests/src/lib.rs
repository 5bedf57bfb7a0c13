//! Scenario runs: the orchestrator driven against the built-in simulator at scale, printing
//! figures (never asserting timings). `cargo xtask scenario ...` runs them in release mode.

pub mod bootlab;
pub mod converge;
pub mod dark;
pub mod harness;
pub mod netns;
pub mod probe;
pub mod service;
pub mod soak;
