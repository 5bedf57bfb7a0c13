//! DAMM's pure core: the fleet model, the policy, scoring and the planner.
//!
//! Nothing here does I/O, reads a clock or draws a random number: time comes in as an
//! argument, so the same inputs always give the same plan. The orchestrator shell
//! (`damm-orchestrator`) gathers the inputs, applies the plan and persists the results.
//!
//! ```
//! use damm_fleet::{plan, Fleet, Policy, ScoreBook};
//!
//! let policy = Policy::default_policy();
//! let now = chrono::DateTime::UNIX_EPOCH;
//! let scores = ScoreBook::default().snapshot(now, &policy.scoring);
//! let plan = plan(&Fleet::default(), &policy, &scores, now);
//! // From nothing: creates up to the per-tick cap, spread over the providers.
//! assert_eq!(plan.actions.len() as u32, policy.limits.creates_per_tick);
//! ```

pub mod compose;
pub mod duration;
pub mod fasthash;
pub mod model;
pub mod plan;
pub mod policy;
pub mod score;

pub use compose::{Composition, Entry, Transport, compose, entries};
pub use duration::Span;
pub use model::{AddressKind, Fleet, FleetAddress, FleetNode, Status};
pub use plan::{Action, DesiredNode, Plan, Refusal, plan};
pub use policy::{Mode, Policy, PolicyError};
pub use score::{ScoreBook, Scores};
