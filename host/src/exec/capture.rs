//! Collecting a step's output as it streams: logged line by line at debug
//! level, with bounded tails kept for the caller.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tracing::debug;

use super::step::{Exit, Output, STDERR_KEEP, STDOUT_KEEP, TAIL_LINES};

/// Lines longer than this are logged and kept in pieces, so that output
/// without newlines cannot grow memory without bound.
const MAX_LINE: u64 = 4096;

/// Which stream a piece of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The bounded record of a step's output.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    stdout: Kept,
    stderr: Kept,
    truncated: bool,
}

/// The end of one stream: its last bytes and its last lines.
#[derive(Debug, Default)]
struct Kept {
    bytes: VecDeque<u8>,
    lines: VecDeque<String>,
}

/// A collector shared by the threads that read the streams.
pub(crate) type Shared = Arc<Mutex<Collector>>;

impl Collector {
    /// Records one line (or one piece of a long line), newline included.
    pub(crate) fn push(&mut self, stream: Stream, line: &[u8]) {
        let (kept, keep) = match stream {
            Stream::Stdout => (&mut self.stdout, STDOUT_KEEP),
            Stream::Stderr => (&mut self.stderr, STDERR_KEEP),
        };
        kept.bytes.extend(line);
        if kept.bytes.len() > keep {
            kept.bytes.drain(..kept.bytes.len() - keep);
            self.truncated = true;
        }

        let text = String::from_utf8_lossy(line);
        kept.lines
            .push_back(text.trim_end_matches(['\n', '\r']).to_owned());
        if kept.lines.len() > TAIL_LINES {
            kept.lines.pop_front();
        }
    }

    /// The finished record.
    pub(crate) fn into_output(self, command: String, exit: Exit, duration: Duration) -> Output {
        Output {
            command,
            exit,
            stdout: self.stdout.bytes.into(),
            stderr: self.stderr.bytes.into(),
            truncated: self.truncated,
            stdout_tail: self.stdout.lines.into(),
            stderr_tail: self.stderr.lines.into(),
            duration,
        }
    }
}

/// Reads `reader` to its end into `collector`, logging each line at debug
/// level. Meant to run on its own thread, one per stream.
pub(crate) fn drain(stream: Stream, reader: impl Read, collector: &Shared) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) => {
                debug!(stream = stream.name(), %error, "step output stream ended early");
                return;
            }
        }
        debug!(
            stream = stream.name(),
            "{}",
            String::from_utf8_lossy(&line).trim_end()
        );
        collector
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(stream, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_last_lines_of_each_stream() {
        let collector = Shared::default();
        let out: String = (1..=60).map(|n| format!("out {n}\n")).collect();
        drain(Stream::Stdout, out.as_bytes(), &collector);
        drain(
            Stream::Stderr,
            &b"err 1\nerr 2 without newline"[..],
            &collector,
        );

        let collector = Arc::try_unwrap(collector).unwrap().into_inner().unwrap();
        let output = collector.into_output("cmd".into(), Exit::Code(1), Duration::ZERO);
        assert_eq!(output.stdout_tail.len(), TAIL_LINES);
        assert_eq!(output.stdout_tail[0], "out 11");
        assert_eq!(output.stdout_tail[TAIL_LINES - 1], "out 60");
        assert_eq!(output.stderr_tail, ["err 1", "err 2 without newline"]);
        assert_eq!(
            output.stdout,
            out.as_bytes(),
            "all of stdout fits in its keep"
        );
        assert!(!output.truncated);
    }

    #[test]
    fn long_output_keeps_its_end_and_says_it_was_cut() {
        let collector = Shared::default();
        let big = vec![b'x'; STDERR_KEEP * 2 + 10];
        drain(Stream::Stderr, &big[..], &collector);

        let collector = Arc::try_unwrap(collector).unwrap().into_inner().unwrap();
        let output = collector.into_output("cmd".into(), Exit::Code(0), Duration::ZERO);
        assert_eq!(output.stderr.len(), STDERR_KEEP);
        assert!(output.truncated);
        assert!(
            output
                .stderr_tail
                .iter()
                .all(|line| line.len() as u64 <= MAX_LINE),
            "a line without newlines is kept in bounded pieces"
        );
    }
}
