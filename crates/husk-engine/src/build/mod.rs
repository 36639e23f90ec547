//! `husk build`: images from a Containerfile.
//!
//! - [`parse`]: the Containerfile's text → instructions (pure), errors "FILE:LINE: …";
//! - [`args`]: variable expansion and the scope rules of ARG and ENV;
//! - [`ignore`]: `.containerignore` / `.dockerignore` patterns, and the glob matcher;
//! - [`stages`]: multi-stage builds, `--target`, the stages a target needs.

pub mod args;
pub mod ignore;
pub mod parse;
pub mod stages;
