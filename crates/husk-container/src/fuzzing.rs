//! Entry points for the cargo-fuzz targets in fuzz/ to reach private parsers. Not API:
//! hidden from the docs and free to change with the targets.

use crate::state::{ContainerState, STATE_FILE};
use std::path::Path;

/// Load `data` as a container's state.json, as `state`, `kill` and `delete` do. An accepted
/// state comes back as the JSON husk writes for it, so a target can check that it loads again.
pub fn state_json(data: &[u8]) -> crate::Result<Vec<u8>> {
    let st = ContainerState::parse(data, Path::new(STATE_FILE))?;
    serde_json::to_vec(&st).map_err(|e| crate::Error::Other(e.to_string()))
}
