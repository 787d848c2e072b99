//! The `offload` binary: parse the command line, start logging, run the chosen role.

use clap::Parser;
use offload::app::{self, Application, Role};
use offload::cli::{Cli, Command};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    offload::telemetry::init();
    if let Err(e) = run(cli).await {
        // One line naming what is wrong, e.g. `error: BIND_ADDR: cannot listen on ...`.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let role = match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            println!("{}", offload::api::builtin_spec());
            return Ok(());
        }
        Command::Migrate => return app::migrate(&cli.settings).await,
        Command::Serve => Role::Serve,
        Command::Api => Role::Api,
        Command::Worker => Role::Worker,
    };
    let app = Application::build(cli.settings, role).await?;
    if let Some(addr) = app.local_addr() {
        tracing::info!(%addr, ?role, "listening");
    } else {
        tracing::info!(?role, "worker started");
    }
    app.run_until_stopped(offload::shutdown::signal()).await
}
