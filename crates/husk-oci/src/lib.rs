//! husk-oci: the few OCI and runc conventions that the `oci-spec` crate does not carry.
//!
//! Kept deliberately tiny: container id rules, RFC 3339 timestamps without a date crate,
//! signal names as `kill` takes them, the JSON shape runc prints for `state` and
//! `list --format json`, and which user namespace the process runs in (rootless rules).

pub mod id;
pub mod signal;
pub mod state;
pub mod time;
pub mod userns;

pub use id::{validate_id, IdError};
pub use state::{StateOutput, Status};
pub use time::{rfc3339, rfc3339_now};
