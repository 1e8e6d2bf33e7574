//! Shared helpers of the integration tests: the real-model assets.

#![allow(dead_code)]

mod assets;
#[allow(unused_imports)] // not every test binary fetches the real model
pub use assets::*;

pub mod tiny;
