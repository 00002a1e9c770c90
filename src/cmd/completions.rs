//! `nk completions SHELL` and `nk man [COMMAND]`: generated from the clap definition, so they
//! can never disagree with what the binary accepts.

use std::io::{self, Write};

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit::{usage, StdoutClosed};

/// Print a completion script for a shell.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
    nk completions bash > ~/.local/share/bash-completion/completions/nk\n  \
    nk completions zsh > \"${fpath[1]}/_nk\"\n  \
    nk completions fish > ~/.config/fish/completions/nk.fish")]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Print the man page of nk, or of one command (`nk man dial`).
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
    nk man > ~/.local/share/man/man1/nk.1\n  \
    nk man dial > ~/.local/share/man/man1/nk-dial.1\n  \
    nk man listen | man -l -")]
pub struct ManArgs {
    /// A command whose page to print instead of nk's.
    pub command: Option<String>,
}

/// Runs `nk completions`.
pub fn run_completions(args: CompletionsArgs) -> Result<()> {
    let mut buffer = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "nk", &mut buffer);
    write_stdout(&buffer)
}

/// Runs `nk man`.
pub fn run_man(args: ManArgs) -> Result<()> {
    let mut command = Cli::command();
    command.build();
    let page = match args.command.as_deref() {
        None => command,
        Some(name) => {
            let names: Vec<String> = command
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            let sub = command.find_subcommand(name).cloned().ok_or_else(|| {
                usage(format!(
                    "unknown command \"{name}\": choose one of {}",
                    names.join(", ")
                ))
            })?;
            let full_name = format!("nk-{name}");
            sub.name(full_name).bin_name(format!("nk {name}"))
        }
    };
    let mut buffer = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut buffer)
        .context("render man page")?;
    write_stdout(&buffer)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => other.context("write stdout"),
    }
}
