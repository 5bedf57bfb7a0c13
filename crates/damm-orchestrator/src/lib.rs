//! DAMM's orchestrator shell: the tick loop around `damm-fleet`'s planner, the state store
//! and apply journal, the HTTP service and the pieces of the `damm` command-line tool.

pub mod bootstrap;
pub mod dataplane;
pub mod engine;
pub mod enroll;
pub mod providers;
pub mod publish;
pub mod report;
pub mod serve;
pub mod state;
pub mod validated;
pub mod whatif;

#[cfg(feature = "sim")]
pub mod demo;
#[cfg(feature = "sim")]
pub mod sim;

pub use engine::{Clock, Engine, Options, TickReport};
pub use state::{FileStore, MemoryStore, State, StateStore};
