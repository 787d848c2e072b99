//! The command line: `offload [serve|api|worker|migrate|openapi]` plus the settings flags
//! (every flag also reads an environment variable; see [`crate::settings`]).

use clap::{Parser, Subcommand};

use crate::settings::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "offload",
    version,
    about = "Durable document-export jobs over HTTP."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// API and an in-process worker (the default).
    Serve,
    /// API only; workers run elsewhere on the same database and storage.
    Api,
    /// Worker only.
    Worker,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Print the OpenAPI document (JSON) to stdout.
    Openapi,
}
