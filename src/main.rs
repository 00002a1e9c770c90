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
    let cli = match Cli::try_parse_from(netcat_aliases(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(err) => return report_usage(&err),
    };
    log::set_verbosity(cli.verbose);
    netkit::stdio::prepare();
    let result = match cli.command {
        Command::Dial(args) => cmd::dial::run(args),
        Command::Listen(args) => cmd::listen::run(args),
        Command::Unix(args) => cmd::unix::run(args),
        Command::Udp(args) => cmd::udp::run(args),
        Command::Forward(args) => cmd::forward::run(args),
        Command::Mask(args) => cmd::mask::run(args),
        Command::Resolve(args) => cmd::resolve::run(args),
        Command::Ping(args) => cmd::ping::run(args),
        Command::Head(args) => cmd::head::run(args),
        Command::Smtp(args) => cmd::smtp::run(args),
        Command::Echo(args) => cmd::inetd::run_echo(args),
        Command::Daytime(args) => cmd::inetd::run_daytime(args),
        Command::Qotd(args) => cmd::inetd::run_qotd(args),
        Command::Discard(args) => cmd::inetd::run_discard(args),
        Command::Chargen(args) => cmd::inetd::run_chargen(args),
        Command::Time(args) => cmd::inetd::run_time(args),
        Command::Completions(args) => cmd::completions::run_completions(args),
        Command::Man(args) => cmd::completions::run_man(args),
    };
    // TLS bridges deliver what the command gave them before the process goes; what they
    // could not deliver is a failure (lossless or loud), even after a command that succeeded.
    let undelivered = netkit::net::tls::finish(netkit::net::tls::FINISH_TIMEOUT);
    for line in &undelivered {
        netkit::eprintln_safe!("nk: {line}");
    }
    let result = match result {
        Ok(()) if !undelivered.is_empty() => Err(exit::Reported(Status::Failure).into()),
        other => other,
    };
    // Socket files nk bound are removed on every way out (signals do it in signals::exit).
    netkit::net::unix::remove_bound_paths();
    match result {
        Ok(()) => Status::Success.into(),
        Err(err) => {
            if !exit::is_silent(&err) {
                netkit::eprintln_safe!("nk: {err:#}");
                if let Some(hint) = exit::hint(&err) {
                    netkit::eprintln_safe!("hint: {hint}");
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
    let mut message = first.strip_prefix("error: ").unwrap_or(first).to_string();
    // "the following required arguments were not provided:" lists them on the next lines.
    if message.ends_with(':') {
        let missing: Vec<&str> = rendered
            .lines()
            .skip_while(|l| !l.trim_end().ends_with(':'))
            .skip(1)
            .map(str::trim)
            .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
            .collect();
        message = format!("{message} {}", missing.join(" "));
    }
    netkit::eprintln_safe!("nk: {message}");
    let tip = lines.find_map(|l| l.strip_prefix("tip: "));
    let help = lines_for_help(&rendered);
    match tip {
        Some(tip) => netkit::eprintln_safe!("hint: {tip}; see '{help}'"),
        None => netkit::eprintln_safe!("hint: see '{help}'"),
    }
    Status::Usage.into()
}

/// The `--help` of the command the error is about (`nk ping --help`), from clap's usage line.
fn lines_for_help(rendered: &str) -> String {
    rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|usage| {
            let words: Vec<&str> = usage
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect();
            format!("{} --help", words.join(" "))
        })
        .unwrap_or_else(|| match typed_subcommand() {
            Some(name) => format!("nk {name} --help"),
            None => "nk --help".to_string(),
        })
}

/// The subcommand on the command line, when it names one (value errors carry no usage line).
fn typed_subcommand() -> Option<String> {
    let name = std::env::args().nth(1)?;
    let known = <Cli as clap::CommandFactory>::command()
        .get_subcommands()
        .any(|c| c.get_name() == name);
    known.then_some(name)
}

/// netcat habits: `nk dial -u` is `nk udp`, `nk listen -u` is `nk udp -l`, and `-U` likewise
/// selects `nk unix`. The flag must stand alone (before any `--`); the rest is left as typed.
fn netcat_aliases(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let Some(command) = args.get(1).and_then(|c| c.to_str()) else {
        return args;
    };
    let listening = match command {
        "dial" => false,
        "listen" => true,
        _ => return args,
    };
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    // `nc -zu` is a UDP scan: with -z, -u stays on dial and selects the scan's UDP probes.
    if !listening && args[2..end].iter().any(|a| is_scan_flag(a)) {
        return args;
    }
    let Some(at) = args[2..end]
        .iter()
        .position(|a| a == "-u" || a == "-U")
        .map(|i| i + 2)
    else {
        return args;
    };
    let target = if args[at] == "-U" { "unix" } else { "udp" };
    args.remove(at);
    args[1] = target.into();
    if listening {
        args.insert(2, "-l".into());
    }
    args
}

/// `-z`, `--scan`, or a cluster of short flags with z in it (`-zu`, `-vz`).
fn is_scan_flag(arg: &std::ffi::OsStr) -> bool {
    let Some(text) = arg.to_str() else {
        return false;
    };
    if text == "--scan" {
        return true;
    }
    text.strip_prefix('-').is_some_and(|flags| {
        !flags.starts_with('-')
            && flags.bytes().all(|b| b.is_ascii_alphabetic())
            && flags.contains('z')
    })
}
