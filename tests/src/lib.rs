//! Scenario runs: the orchestrator driven against the built-in simulator at scale, printing
//! figures (never asserting timings). `cargo xtask scenario ...` runs them in release mode.

pub mod netns;
pub mod probe;
