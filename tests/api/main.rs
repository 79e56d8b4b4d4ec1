//! The one integration test binary: the real server over HTTP.

mod admin;
mod api_keys;
mod basic;
mod console;
mod container;
mod deploy_files;
mod discovery;
mod e2e;
mod explain;
mod explain_review;
mod fleet;
mod fleet_keys;
mod fleet_recovery;
mod gate;
mod helpers;
mod interop;
mod key_files;
mod key_rotation;
mod metrics;
mod process;
mod replication;
mod session;
mod state_copies;
mod token;
mod verify;
mod webdav_clients;
