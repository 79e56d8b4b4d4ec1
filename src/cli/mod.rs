//! The command line: `serve` (the default), `keys`, `token`, `admin` and
//! `healthcheck`, parsed by clap.
//!
//! * `admin`: `gatehouse admin`, the admin API from the command line
//! * `token`: `gatehouse token`, the client helper with its token cache
//! * `healthcheck`: `gatehouse healthcheck`, a probe of `/readyz`

pub mod admin;
pub mod healthcheck;
pub mod token;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::cli::admin::AdminCommand;
use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about = "JWT forward-auth for machines")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Manage the signing keys in the key directory.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Call the admin API of a node.
    Admin {
        /// The node's base URL [default: http://<listen> from the configuration]
        #[arg(long)]
        url: Option<String>,
        /// File holding the admin token [default: $GATEHOUSE_ADMIN_TOKEN, else <data_dir>/admin-token]
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print a valid access token, reusing a cached one until shortly before it expires.
    Token(TokenArgs),
    /// Exit 0 if the local node is ready (for container health checks).
    Healthcheck {
        #[command(flatten)]
        config: ConfigArgs,
        /// Readiness URL to probe; defaults to /readyz on the configured listen address.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The issuer's base URL, e.g. https://auth.example.com
    #[arg(long)]
    pub issuer: String,
    #[arg(long)]
    pub client_id: String,
    /// File holding the client secret [default: $GATEHOUSE_CLIENT_SECRET]
    #[arg(long)]
    pub client_secret_file: Option<PathBuf>,
    /// Space-separated scopes to ask for
    #[arg(long)]
    pub scope: Option<String>,
    /// Audience to ask for
    #[arg(long)]
    pub audience: Option<String>,
    /// Where cached tokens live [default: $XDG_CACHE_HOME/gatehouse or ~/.cache/gatehouse]
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Always fetch a new token, and cache nothing
    #[arg(long)]
    pub no_cache: bool,
    /// Fetch a new token and cache it, even if the cached one looks valid
    /// (after a 401: the cached token may have been revoked)
    #[arg(long)]
    pub refresh: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Add a key that verifies at once and signs only once activated
    /// (the first key of an empty directory signs at once).
    Generate,
    /// List the keys; the one marked active signs.
    List,
    /// Add a key and sign with it at once: for stopped nodes (a running
    /// fleet rotates with `gatehouse admin keys rotate`, which waits for
    /// JWKS caches first).
    Rotate,
    /// Rewrite key files written by earlier versions (PKCS#8 v2) in the
    /// standard RFC 8410 form that openssl and pyca read; kids stay.
    Migrate,
}

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The configuration layers reachable from the command line.
#[derive(Debug, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file [default: gatehouse.toml, if present]
    #[arg(long, env = "GATEHOUSE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
}
