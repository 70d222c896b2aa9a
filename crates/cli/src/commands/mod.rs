//! One module per group of commands.

pub mod migrate;
pub mod ops;
pub mod scaled;
pub mod serve;
pub mod validate;
pub mod worker;
