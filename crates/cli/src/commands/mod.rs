//! One module per group of commands.

pub mod action;
pub mod ops;
pub mod serve;
pub mod validate;
