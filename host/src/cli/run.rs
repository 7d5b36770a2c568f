//! `salve run`: run one command in an image with the native executor and
//! write the result as a patched image, to try the executor by hand.

use anyhow::bail;
use clap::Args;
use tracing::info;

use salve::exec::{self, Executor, RunSpec};
use salve::image::Patch;
use salve::session::Session;

use super::sandbox::{ImageArgs, SandboxArgs, install_ctrl_c};
use super::{Exit, Global};

/// Arguments of `salve run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The image in and out.
    #[command(flatten)]
    pub image: ImageArgs,

    /// The user to run as (`name`, `uid`, `name:group`) [default: root].
    #[arg(short, long)]
    pub user: Option<String>,

    /// The working dir [default: the image's WorkingDir, else /].
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,

    /// A variable added to the image's environment; repeatable.
    #[arg(short, long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,

    /// How the command runs.
    #[command(flatten)]
    pub sandbox: SandboxArgs,

    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Runs the command in the image; writes the image plus the command's
/// changes as one layer when it succeeds.
pub fn run(global: &Global, args: &RunArgs) -> anyhow::Result<Exit> {
    let interrupt = exec::Interrupt::new();
    install_ctrl_c(&interrupt)?;

    // The image and its layers: a salve patch restarts from its base, with
    // the previous patch's changes as the starting point.
    let mut session = Session::open(
        &args.image.image,
        args.image.platform.as_ref(),
        &global.cache_dir(),
    )?;
    let destination = args.image.destination()?;
    session.check_destination(&destination, args.image.tag.as_deref())?;

    // The run itself.
    let mut setup = session.setup();
    args.sandbox.apply(&mut setup, &interrupt);
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
    let new_layer = session.layer(&upper, args.sandbox.compression)?;
    let patch = Patch::now(format!("salve run: {}", output.command));
    let written = session.write(
        new_layer.as_ref(),
        &patch,
        &destination,
        args.image.tag.as_deref(),
        &interrupt,
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

/// `NAME=VALUE`.
fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_needs_a_name_and_an_equals_sign() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_env("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("NOVALUE").is_err());
    }
}
