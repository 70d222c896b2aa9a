//! One module per group of commands.

pub mod action;
pub mod import_scripts;
pub mod migrate;
pub mod ops;
pub mod scaled;
pub mod security;
pub mod serve;
pub mod serve_security;
pub mod test;
pub mod validate;
pub mod worker;
