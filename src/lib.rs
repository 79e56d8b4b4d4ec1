//! gatehouse: OAuth2 client_credentials tokens and API keys for machines,
//! verified at the reverse proxy's forward-auth hop.
//!
//! Where things live (one line per module; each module's first comment
//! says what it owns):
//!
//! Deciding
//! * `verifier`: the forward-auth decision behind `/api/verify`, no I/O
//! * `explain`: the same decision as a dry run, with its reasons
//! * `target/`: the request a proxy asks about: trusted peers, one header
//!   family, host, method, and every reading of the path
//! * `rules`: the compiled rule set, which resource covers a host and path
//! * `identity_headers`: `Remote-User` and kin, and the names a rule gives them
//! * `issuer`: the token endpoint's core (client_credentials → JWT)
//! * `throttle`: lockouts after failed credential checks
//!
//! What is decided on
//! * `applications`, `api_keys`, `claims`: OAuth clients, API keys, the JWTs
//! * `resources`: forward-auth rules as admins write them
//! * `key_scopes`, `key_usage`: what an API key may reach, its last use
//! * `revocation`: revoked credentials, in memory on every node
//! * `name_list`: group, scope and audience lists shared between applications
//! * `parsed`: strings checked where they come in (the ids' and host
//!   patterns' shared impls, http(s) URLs)
//! * `directory`: the in-memory state every node answers from
//! * `keys/`: signing keys: files on disk, the in-memory set and JWKS
//! * `crypto/`: ring, and jsonwebtoken's ring backend
//!
//! Changing it
//! * `admin/`: admin operations on the primary, one file per job
//! * `audit`: the admin audit log's records
//! * `store/`: sled on the primary, the copies beside it, the API key index
//! * `replication/`: the change log, snapshots, the follower, the fleet
//!
//! Serving and running
//! * `http/`: routes, handlers, error mapping, and the console (`http::console`)
//! * `startup`: building and running a node
//! * `config`: layered settings (defaults → TOML → env → flags)
//! * `cli/`: the command line: `admin`, `token`, `healthcheck`
//! * `fuzzing`: the fuzz targets' entry points and their corpus replay
//! * `metrics`, `memory`, `clock`, `private_files`: `/metrics`, handing
//!   memory back, time as a parameter, owner-only files
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
pub mod api_keys;
pub mod applications;
pub mod audit;
pub mod claims;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod directory;
pub mod explain;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod http;
pub mod identity_headers;
pub mod issuer;
pub mod key_scopes;
pub mod key_usage;
pub mod keys;
pub mod memory;
pub mod metrics;
pub mod name_list;
pub mod parsed;
pub mod private_files;
pub mod replication;
pub mod resources;
pub mod revocation;
pub mod rules;
pub mod startup;
pub mod store;
pub mod target;
pub mod throttle;
pub mod verifier;
