//! gatehouse: OAuth2 client_credentials tokens and API keys for machines,
//! verified at the reverse proxy's forward-auth hop.
//!
//! Where things live:
//! * `issuer`: the token endpoint's core (client_credentials → JWT)
//! * `verifier`: the forward-auth decision (`/api/verify`), no I/O;
//!   `explain`: the same decision as a dry run, with its reasons
//! * `target`: the request a proxy asks about: trusted headers, one header
//!   family, host, method, and every reading of the path
//! * `resources`: forward-auth rules as admins write them; `rules`: their matching
//! * `key_scopes`, `key_usage`: what an API key may reach, and when it was last used
//! * `keys`, `crypto`: signing keys, ring, and jsonwebtoken's ring backend
//! * `store`: sled, on the primary; `directory`: the in-memory state every node answers from
//! * `name_list`: group, scope and audience lists shared between applications
//! * `admin`: admin operations; `http`: routes, handlers, error mapping,
//!   and the console at `/ui/` (`http::console`)
//! * `replication`: the change log, snapshots, the follower, the fleet
//! * `applications`, `api_keys`, `claims`, `revocation`, `audit`: the records
//! * `throttle`, `metrics`, `memory`, `clock`: lockouts, `/metrics`,
//!   handing memory back, time as a parameter
//! * `config`, `cli`, `admin_client`, `client`, `healthcheck`, `startup`:
//!   how a node is configured and started, and the command line
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
pub mod admin_client;
pub mod api_keys;
pub mod applications;
pub mod audit;
pub mod claims;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod directory;
pub mod explain;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod healthcheck;
pub mod http;
pub mod issuer;
pub mod key_scopes;
pub mod key_usage;
pub mod keys;
pub mod memory;
pub mod metrics;
pub mod name_list;
pub mod replication;
pub mod resources;
pub mod revocation;
pub mod rules;
pub mod startup;
pub mod store;
pub mod target;
pub mod throttle;
pub mod verifier;
