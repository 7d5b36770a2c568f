//! One command to run in the image, and what came of it.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// A command to run inside the image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSpec {
    /// Program and arguments; a program without a slash is looked up in the
    /// step's `PATH`. No shell is involved unless the program is one.
    pub argv: Vec<String>,
    /// Variables added to the image's environment (they win over it).
    pub env: Vec<(String, String)>,
    /// Working dir inside the image; the image's `WorkingDir`, else `/`,
    /// when absent. A dir that does not exist is created (as Docker does).
    pub cwd: Option<String>,
    /// User to run as (`name`, `uid`, `name:group`, `uid:gid`), resolved in
    /// the image's `/etc/passwd` and `/etc/group`; root when absent.
    pub user: Option<String>,
    /// Time limit of this step; the setup's step timeout when absent.
    pub timeout: Option<Duration>,
}

impl RunSpec {
    /// A command with the image's defaults for everything else.
    pub fn new<I, S>(argv: I) -> RunSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RunSpec {
            argv: argv.into_iter().map(Into::into).collect(),
            ..RunSpec::default()
        }
    }

    /// The command as a person would type it, for messages and logs.
    pub fn command_line(&self) -> String {
        shell_words(&self.argv)
    }
}

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The command exited with this code. As shells report it, 128+N means
    /// that signal N killed it; 127 and 126 mean that the program could not
    /// be found or could not be executed.
    Code(i32),
    /// The runtime itself was killed by this signal.
    Signal(i32),
    /// The step ran past its time limit and was killed.
    TimedOut(Duration),
}

/// What a step did: how it ended and what it printed.
#[derive(Clone, Debug)]
pub struct Output {
    /// The command, for people.
    pub command: String,
    /// How it ended.
    pub exit: Exit,
    /// Standard output: the last [`STDOUT_KEEP`] bytes.
    pub stdout: Vec<u8>,
    /// Standard error: the last [`STDERR_KEEP`] bytes.
    pub stderr: Vec<u8>,
    /// Whether earlier bytes of either stream were dropped.
    pub truncated: bool,
    /// The last [`TAIL_LINES`] lines of standard output.
    pub stdout_tail: Vec<String>,
    /// The last [`TAIL_LINES`] lines of standard error.
    pub stderr_tail: Vec<String>,
    /// How long the step took, runtime start and stop included.
    pub duration: Duration,
}

/// How much of standard output an [`Output`] keeps.
pub const STDOUT_KEEP: usize = 1 << 20;
/// How much of standard error an [`Output`] keeps.
pub const STDERR_KEEP: usize = 64 << 10;
/// How many lines of each stream an [`Output`] keeps for messages.
pub const TAIL_LINES: usize = 50;

impl Output {
    /// Whether the command exited with code 0.
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    /// The exit code, or `None` when the step was killed.
    pub fn code(&self) -> Option<i32> {
        match self.exit {
            Exit::Code(code) => Some(code),
            Exit::Signal(_) | Exit::TimedOut(_) => None,
        }
    }

    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    /// This output if the command succeeded, else a [`StepFailure`] that
    /// carries the command, how it ended and its last lines.
    ///
    /// # Errors
    ///
    /// [`Error::StepFailed`](super::Error::StepFailed) unless the command
    /// exited with code 0.
    pub fn check(self) -> Result<Output, super::Error> {
        if self.success() {
            return Ok(self);
        }
        let failure = StepFailure {
            command: self.command,
            exit: self.exit,
            stdout_tail: self.stdout_tail,
            stderr_tail: self.stderr_tail,
        };
        Err(super::Error::StepFailed(Box::new(failure)))
    }
}

/// A step that did not exit with code 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepFailure {
    /// The command, for people.
    pub command: String,
    /// How it ended.
    pub exit: Exit,
    /// Its last lines of standard output.
    pub stdout_tail: Vec<String>,
    /// Its last lines of standard error.
    pub stderr_tail: Vec<String>,
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ", self.command)?;
        match self.exit {
            Exit::Code(code) => write!(f, "exited with code {code}")?,
            Exit::Signal(signal) => write!(f, "was killed by signal {signal}")?,
            Exit::TimedOut(limit) => write!(
                f,
                "ran past its time limit of {}s and was killed",
                limit.as_secs()
            )?,
        }
        if self.stdout_tail.is_empty() && self.stderr_tail.is_empty() {
            return write!(f, " and printed nothing");
        }
        for (name, tail) in [("output", &self.stdout_tail), ("errors", &self.stderr_tail)] {
            if !tail.is_empty() {
                write!(f, "\n  last {} lines of its {name}:", tail.len())?;
                for line in tail {
                    write!(f, "\n    {line}")?;
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for StepFailure {}

/// Joins arguments so that a person can paste them into a shell.
fn shell_words(argv: &[String]) -> String {
    let quote = |word: &String| {
        let plain = !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
        if plain {
            word.clone()
        } else {
            format!("'{}'", word.replace('\'', r"'\''"))
        }
    };
    argv.iter().map(quote).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_only_what_a_shell_would_split() {
        let spec = RunSpec::new(["sh", "-c", "echo 'hi' && exit 3", "", "a=b"]);
        assert_eq!(
            spec.command_line(),
            r#"sh -c 'echo '\''hi'\'' && exit 3' '' a=b"#
        );
    }

    #[test]
    fn failure_message_names_command_exit_and_last_lines() {
        let output = Output {
            command: "apt-get install -y foo".into(),
            exit: Exit::Code(100),
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated: false,
            stdout_tail: vec!["Reading package lists...".into()],
            stderr_tail: vec!["E: Unable to locate foo".into()],
            duration: Duration::from_millis(5),
        };
        let message = output.check().unwrap_err().to_string();
        assert_eq!(
            message,
            "`apt-get install -y foo` exited with code 100\n  last 1 lines of its output:\n    \
             Reading package lists...\n  last 1 lines of its errors:\n    E: Unable to locate foo"
        );
    }

    #[test]
    fn timed_out_step_is_a_failure_with_its_limit() {
        let output = Output {
            command: "sleep 60".into(),
            exit: Exit::TimedOut(Duration::from_secs(2)),
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated: false,
            stdout_tail: Vec::new(),
            stderr_tail: Vec::new(),
            duration: Duration::from_secs(2),
        };
        assert_eq!(output.code(), None);
        let message = output.check().unwrap_err().to_string();
        assert_eq!(
            message,
            "`sleep 60` ran past its time limit of 2s and was killed and printed nothing"
        );
    }
}
