//! The `tidegate` command.

mod lines;
mod probe;
mod queue;
mod replay;
mod replay_tracker;
mod serve;

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
    /// Serve rate-limit decisions and the event tracker over HTTP (`POST /v1/check`,
    /// `POST /v1/events`, admin routes, `/metrics`, `/healthz`, `/readyz`).
    Serve(serve::ServeArgs),
    /// The Redis work queue: push jobs, watch them (`stats`, `monitor`, `failed`),
    /// `clear`, `retry-failed`, and `work` them off under one global rate.
    Queue(queue::QueueArgs),
    /// GET an http:// URL and exit 0 on a 2xx answer, 1 otherwise (the container
    /// image's health check: `tidegate probe http://127.0.0.1:8080/healthz`).
    Probe(probe::ProbeArgs),
}

/// mimalloc: allocation and freeing take a fifth of the instructions of a gRPC call with
/// glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Queue(args) => queue::run(&args),
        Command::Probe(args) => probe::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tidegate: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes joined by `: `, skipping a cause whose text the message
/// already holds (library errors often repeat their source in their own message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}
