//! Tests of the stand-ins through HTTP, as a pack's `http_request` would call them.

mod binary;
mod chat;
mod digitalocean;
mod github;
mod hubspot;
mod others;
mod sendgrid;
mod support;
