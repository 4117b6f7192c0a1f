//! Shared by the integration tests that declare `mod support;`.
//!
//! Not every test binary uses every helper, hence the `dead_code` allowance.

#![allow(dead_code)]

pub mod lines;
pub mod redis;
pub mod schema;
pub mod streams;
pub mod tansu;
