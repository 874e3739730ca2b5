//! The `tidegate` command.

mod replay;
mod replay_tracker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// tidegate: rate limiting and event throttling.
#[derive(Debug, Parser)]
#[command(name = "tidegate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run recorded traffic (JSON lines) through a policy and print every decision.
    Replay(replay::ReplayArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tidegate: {e:#}");
            ExitCode::from(2)
        }
    }
}
