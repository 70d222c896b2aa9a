//! One module per group of commands.

pub mod ops;
pub mod serve;
pub mod validate;
