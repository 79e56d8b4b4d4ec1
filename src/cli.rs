//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Exit 0 if the local node is ready (for container health checks).
    Healthcheck {
        #[command(flatten)]
        config: ConfigArgs,
        /// Readiness URL to probe; defaults to /readyz on the configured listen address.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Add a key that verifies at once and signs only once activated
    /// (the first key of an empty directory signs at once).
    Generate,
    /// List the keys; the one marked active signs.
    List,
    /// Add a key and sign with it from now on. Running nodes pick it up on restart.
    Rotate,
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
    #[arg(long, env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
}
