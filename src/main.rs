//! `nk`: parse the command line, run one command, print at most one error line, exit with the
//! status cli.md promises. Every command returns `anyhow::Result`; this is the only place that
//! prints an error or decides an exit status.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use netkit::cli::{Cli, Command};
use netkit::cmd;
use netkit::exit::{self, Status};
use netkit::log;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return report_usage(&err),
    };
    log::set_verbosity(cli.verbose);
    let result = match cli.command {
        Command::Dial(args) => cmd::dial::run(args),
        Command::Listen(args) => cmd::listen::run(args),
        Command::Completions(args) => cmd::completions::run_completions(args),
        Command::Man(args) => cmd::completions::run_man(args),
    };
    match result {
        Ok(()) => Status::Success.into(),
        Err(err) => {
            if !exit::is_silent(&err) {
                eprintln!("nk: {err:#}");
                if let Some(hint) = exit::hint(&err) {
                    eprintln!("hint: {hint}");
                }
            }
            exit::classify(&err).into()
        }
    }
}

/// Help and version go to stdout with status 0; every other clap error becomes one
/// `nk: ...` line and a hint, status 2, in the same form as our own usage errors.
fn report_usage(err: &clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            return Status::Success.into();
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            return Status::Usage.into();
        }
        _ => {}
    }
    let rendered = err.render().to_string();
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid arguments");
    let message = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("nk: {message}");
    let tip = lines.find_map(|l| l.strip_prefix("tip: "));
    let help = lines_for_help(&rendered);
    match tip {
        Some(tip) => eprintln!("hint: {tip}; see '{help}'"),
        None => eprintln!("hint: see '{help}'"),
    }
    Status::Usage.into()
}

/// The `--help` invocation clap suggests at the end of its message (e.g. `nk dial --help`).
fn lines_for_help(rendered: &str) -> String {
    rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("For more information, try '"))
        .and_then(|rest| rest.strip_suffix("'."))
        .map(|suggestion| format!("nk {}", suggestion.trim_start_matches("nk ")))
        .unwrap_or_else(|| "nk --help".to_string())
}
