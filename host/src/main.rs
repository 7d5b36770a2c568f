//! The `salve` command line: a thin layer over the `salve` library.
//!
//! Standard output carries data (tables, `--json` documents); standard
//! error carries logs and the one error message. Exit codes are documented
//! in [`cli::Exit`] and in the README.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::logging::init(&args.global);
    match cli::run(args) {
        Ok(exit) => exit.into(),
        Err(e) => {
            // The one place an error is printed: the whole chain, once.
            eprintln!("error: {e:#}");
            if e.downcast_ref::<cli::Usage>().is_some() {
                ExitCode::from(2)
            } else {
                cli::Exit::Failure.into()
            }
        }
    }
}
