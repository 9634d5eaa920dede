//! Converge's core: identifiers, the stored event model and other rules that need no I/O.
//!
//! Nothing here is async or touches the network, the disk or a clock; callers pass
//! time and randomness in. That keeps every rule testable with plain tables.

pub mod appservice;
pub mod auth;
pub mod e2ee;
pub mod event;
pub mod id;
pub mod net;
pub mod pdu;
pub mod power_levels;
pub mod push;
pub mod room_version;
pub mod visibility;

pub use auth::{AuthError, AuthState, Candidate, Membership, StateRef};
pub use event::{PersistedEvent, StreamPos};
pub use power_levels::PowerLevels;
pub use room_version::RoomVersion;
