//! damm-catalog's integration tests, one binary (links once): schema agreement and validation,
//! signing and verification, path choice, `wg-quick` rendering, interop with stock minisign.

mod common;
mod interop;
mod pick;
mod schema;
mod signing;
mod wg_quick;
