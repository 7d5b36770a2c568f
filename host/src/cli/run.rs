//! `salve run`: run one command in an image with the native executor and
//! write the result as a patched image, to try the executor by hand.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use tracing::info;

use salve::exec::{self, Deadline, Executor, Network, RunSpec};
use salve::image::{Destination, Patch, Platform, Reference};
use salve::layer::Compression;
use salve::session::Session;

use super::{Exit, Global};

/// Arguments of `salve run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The image: oci:DIR[:TAG], oci-archive:PATH[:TAG],
    /// docker-archive:PATH[:NAME:TAG], or a path.
    #[arg(short, long, value_name = "IMAGE")]
    pub image: Reference,

    /// Where to write the result: oci:DIR[:TAG], oci-archive:PATH[:TAG] or
    /// docker-archive:PATH[:NAME:TAG] [default: the input's format, next to
    /// it, with `-patched` added to its file name].
    #[arg(short, long, value_name = "DEST")]
    pub output: Option<Destination>,

    /// The output's tag (`TAG` or `NAME:TAG`) [default: the input's tag with
    /// `-patched` appended].
    #[arg(short, long, value_name = "TAG")]
    pub tag: Option<String>,

    /// The platform to pick from a multi-platform image [default: the
    /// host's].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<Platform>,

    /// The user to run as (`name`, `uid`, `name:group`) [default: root].
    #[arg(short, long)]
    pub user: Option<String>,

    /// The working dir [default: the image's WorkingDir, else /].
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,

    /// A variable added to the image's environment; repeatable.
    #[arg(short, long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,

    /// The network the command gets.
    #[arg(long, value_enum, default_value_t = NetworkArg::Host)]
    pub network: NetworkArg,

    /// A CA bundle the command's installers trust, mounted for the run only
    /// [default: the host's].
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,

    /// The command's time limit (`90`, `30s`, `10m`, `1h`).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub step_timeout: Duration,

    /// A time limit for the whole run: when it passes, the command is killed
    /// and nothing is written.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// How to compress the new layer: gzip, zstd or none.
    #[arg(long, default_value = "gzip", value_name = "ALGORITHM")]
    pub compression: Compression,

    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The network choices of `--network`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    /// The host's network.
    Host,
    /// Only a loopback interface.
    None,
}

/// Runs the command in the image; writes the image plus the command's
/// changes as one layer when it succeeds.
pub fn run(global: &Global, args: &RunArgs) -> anyhow::Result<Exit> {
    let setup_deadline = args.timeout.map(Deadline::after);
    let interrupt = exec::Interrupt::new();
    install_ctrl_c(&interrupt)?;

    // The image and its layers: a salve patch restarts from its base, with
    // the previous patch's changes as the starting point.
    let mut session = Session::open(&args.image, args.platform.as_ref(), &global.cache_dir())?;

    // The run itself.
    let mut setup = session.setup();
    setup.network = match args.network {
        NetworkArg::Host => Network::Host,
        NetworkArg::None => Network::None,
    };
    if let Some(ca) = &args.ca_bundle {
        setup.ca_bundle = Some(ca.clone());
    }
    setup.step_timeout = args.step_timeout;
    setup.deadline = setup_deadline;
    setup.interrupt = interrupt.clone();
    let spec = RunSpec {
        argv: args.command.clone(),
        env: args.env.clone(),
        cwd: args.workdir.clone(),
        user: args.user.clone(),
        timeout: None,
    };
    let mut workspace = session.workspace(setup)?;
    let mut task = workspace.task()?;
    let output = task.run(&spec)?;
    print_output(global, &output);
    let output = output.check()?;
    task.commit()?;
    let upper = Box::new(workspace).finish()?;

    // The result: one new layer, unless the command changed nothing.
    if interrupt.is_triggered() {
        bail!(exec::Error::Interrupted);
    }
    let new_layer = session.layer(&upper, args.compression)?;
    let destination = match &args.output {
        Some(destination) => destination.clone(),
        None => default_destination(&args.image)?,
    };
    let patch = Patch::now(format!("salve run: {}", output.command));
    let written = session.write(
        new_layer.as_ref(),
        &patch,
        &destination,
        args.tag.as_deref(),
    )?;

    info!(
        entries = new_layer.as_ref().map_or(0, |l| l.entries),
        "layer written"
    );
    if global.json {
        let doc = serde_json::json!({
            "command": output.command,
            "image": written.name.to_string(),
            "destination": destination.to_string(),
            "manifest_digest": written.manifest_digest.to_string(),
            "layers": written.layers,
            "new_layer": new_layer.as_ref().map(|l| serde_json::json!({
                "digest": l.digest.to_string(),
                "diff_id": l.diff_id.to_string(),
                "size": l.size,
                "entries": l.entries,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if !global.quiet {
        let change = match &new_layer {
            Some(l) => format!("one new layer of {} entries ({} bytes)", l.entries, l.size),
            None => "no new layer: the command changed nothing".to_owned(),
        };
        eprintln!("wrote {} to {destination}: {change}", written.name);
    }
    Ok(Exit::Success)
}

/// Shows what the command printed: its stdout on stdout (unless `--json`),
/// its stderr on stderr.
fn print_output(global: &Global, output: &exec::Output) {
    use std::io::Write;
    if !global.json {
        let _ = std::io::stdout().write_all(&output.stdout);
    }
    if !global.quiet {
        let _ = std::io::stderr().write_all(&output.stderr);
    }
    if output.truncated {
        eprintln!("(the command's output was cut to its end)");
    }
}

/// Ctrl-C raises the run's interrupt, so the running command is stopped and
/// everything is cleaned up on the way out; a second Ctrl-C exits at once
/// (what is left is swept by the next run).
pub(super) fn install_ctrl_c(interrupt: &exec::Interrupt) -> anyhow::Result<()> {
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
pub(super) fn default_destination(input: &Reference) -> anyhow::Result<Destination> {
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

/// `NAME=VALUE`.
fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

/// `90`, `90s`, `10m`, `1h`. Three units do not justify a dependency.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
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
    fn env_needs_a_name_and_an_equals_sign() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_env("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("NOVALUE").is_err());
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
