//! One module per group of commands.

pub mod action;
pub mod import_scripts;
pub mod migrate;
pub mod ops;
pub mod serve;
pub mod test;
pub mod validate;
