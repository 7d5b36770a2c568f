//! The flags `salve patch` and `salve run` share: the image in and out,
//! and how steps run in it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use salve::exec::{self, Deadline, Network, Setup};
use salve::image::{Destination, Platform, Reference};
use salve::layer::Compression;

/// The image to read and where to write the result.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The image: oci:DIR[:TAG], oci-archive:PATH[:TAG],
    /// docker-archive:PATH[:NAME:TAG], or a path.
    #[arg(short, long, value_name = "IMAGE")]
    pub image: Reference,

    /// Where to write the result: oci:DIR[:TAG], oci-archive:PATH[:TAG] or
    /// docker-archive:PATH[:NAME:TAG] [default: the input's format, next to
    /// it, with `-patched` added to its name].
    #[arg(short, long, value_name = "DEST")]
    pub output: Option<Destination>,

    /// The result's tag (`TAG` or `NAME:TAG`) [default: the input's tag with
    /// `-patched` appended].
    #[arg(short, long, value_name = "TAG")]
    pub tag: Option<String>,

    /// The platform to pick from a multi-platform image [default: the
    /// host's].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<Platform>,
}

impl ImageArgs {
    /// `-o`, or the default next to the input.
    pub fn destination(&self) -> anyhow::Result<Destination> {
        match &self.output {
            Some(d) => Ok(d.clone()),
            None => default_destination(&self.image),
        }
    }
}

/// How steps run in the image, and how the new layer is written.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The network steps get: the host's, or none (only loopback).
    #[arg(long, value_enum, default_value_t = NetworkArg::Host)]
    pub network: NetworkArg,

    /// A CA bundle that installers in the image (and salve's own index
    /// lookups) trust, mounted for the run only, for TLS-intercepting
    /// proxies [default: the host's].
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,

    /// The time limit of one step (`90`, `30s`, `10m`, `1h`).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub step_timeout: Duration,

    /// A time limit for the whole run: past it, the running step is killed
    /// and nothing is written.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// How to compress the new layer: gzip, zstd or none.
    #[arg(long, default_value = "gzip", value_name = "ALGORITHM")]
    pub compression: Compression,
}

impl SandboxArgs {
    /// Applies the flags to a session's default setup, with the run's
    /// interrupt (raised by Ctrl-C, see [`install_ctrl_c`]).
    pub fn apply(&self, setup: &mut Setup, interrupt: &exec::Interrupt) {
        setup.network = match self.network {
            NetworkArg::Host => Network::Host,
            NetworkArg::None => Network::None,
        };
        if let Some(ca) = &self.ca_bundle {
            setup.ca_bundle = Some(ca.clone());
        }
        setup.step_timeout = self.step_timeout;
        setup.deadline = self.timeout.map(Deadline::after);
        setup.interrupt = interrupt.clone();
    }
}

/// The network choices of `--network`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    /// The host's network.
    Host,
    /// Only a loopback interface.
    None,
}

/// Ctrl-C raises the run's interrupt, so the running command is stopped and
/// everything is cleaned up on the way out; a second Ctrl-C exits at once
/// (what is left is swept by the next run).
pub fn install_ctrl_c(interrupt: &exec::Interrupt) -> anyhow::Result<()> {
    let interrupt = interrupt.clone();
    ctrlc::set_handler(move || {
        if interrupt.is_triggered() {
            std::process::exit(130);
        }
        interrupt.trigger();
    })
    .context("installing the Ctrl-C handler")
}

/// The input's format and place, with `-patched` added to its file name.
pub fn default_destination(input: &Reference) -> anyhow::Result<Destination> {
    let patched = |path: &Path| -> anyhow::Result<PathBuf> {
        let Some(stem) = path.file_stem() else {
            bail!("{input} has no file name to derive the output's from: pass -o DEST");
        };
        let mut name = stem.to_os_string();
        name.push("-patched");
        if let Some(extension) = path.extension() {
            name.push(".");
            name.push(extension);
        }
        Ok(path.with_file_name(name))
    };
    Ok(match input {
        Reference::OciLayout { path, .. } => Destination::OciLayout {
            path: patched(path)?,
            tag: None,
        },
        Reference::OciArchive { path, .. } => Destination::OciArchive {
            path: patched(path)?,
            tag: None,
        },
        Reference::DockerArchive { path, .. } => Destination::DockerArchive {
            path: patched(path)?,
            name: None,
        },
        Reference::Path(path) if path.is_dir() => Destination::OciLayout {
            path: patched(path)?,
            tag: None,
        },
        Reference::Path(path) => Destination::DockerArchive {
            path: patched(path)?,
            name: None,
        },
        Reference::Registry(_) | Reference::Daemon(_) => {
            bail!("{input}: pass -o DEST to say where the result goes")
        }
    })
}

/// `90`, `90s`, `10m`, `1h`. Three units do not justify a dependency.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => s.split_at(at),
        None => (s, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("`{s}`: the unit must be s, m or h")),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30s, 10m"))?;
    Ok(Duration::from_secs(number * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_and_hours() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("10 m").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn default_output_sits_next_to_the_input_in_its_format() {
        let dest = |input: &str| {
            default_destination(&input.parse().unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(dest("oci:/images/app:1.0"), "oci:/images/app-patched");
        assert_eq!(
            dest("docker-archive:/images/app.tar"),
            "docker-archive:/images/app-patched.tar"
        );
        assert_eq!(
            dest("oci-archive:/images/app.tar:v1"),
            "oci-archive:/images/app-patched.tar"
        );
    }
}
