//! husk-image: references, registry client, content store, safe layer unpacking, and
//! image config → process values.

pub mod archive;
pub mod auth;
pub mod config;
pub mod digest;
pub mod error;
pub mod fsutil;
pub mod layer;
pub mod manifest;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod settings;
pub mod store;
pub mod tar;
pub mod unpack;
pub mod verify;

pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
