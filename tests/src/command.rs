//! Running the host tools the builder drives (docker, debootstrap, skopeo).

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

/// A tool that could not run or said no.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program could not be started.
    #[error("running {program}")]
    Spawn {
        /// The command line.
        program: String,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
    /// The program exited unsuccessfully.
    #[error("`{program}` exited with {status}: {stderr}")]
    Failed {
        /// The command line.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of its standard error.
        stderr: String,
    },
}

/// Runs `program` with `args` and returns its standard output.
pub fn output<I, S>(program: &str, args: I) -> Result<String, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    run(&mut command).map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs a prepared command; its output is captured and logged at debug level.
pub fn run(command: &mut Command) -> Result<Output, Error> {
    let program = describe(command);
    tracing::debug!(command = %program, "running");
    let output = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| Error::Spawn {
            program: program.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(output);
    }

    // The end of stderr says what went wrong; the rest is progress noise.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(Error::Failed {
        program,
        status: output.status,
        stderr: tail.join("\n"),
    })
}

/// The command line, shortened to something a person can read in an error.
fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        let arg = match arg.char_indices().nth(60) {
            Some((cut, _)) => format!("{}...", &arg[..cut]),
            None => arg.into_owned(),
        };
        words.push(arg.replace('\n', " "));
    }
    words.join(" ")
}
