//! damm-catalog's integration tests, one binary (links once): schema agreement and validation,
//! signing and verification, path choice, `wg-quick` rendering, interop with stock minisign,
//! and what the `minisign-verify` crate does differently.

mod common;
mod interop;
mod minisign_crates;
mod pick;
mod schema;
mod signing;
mod wg_quick;
