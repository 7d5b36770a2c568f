//! Running one command in the image with runc, from an OCI bundle.
//!
//! Each step is one `runc run` in the foreground: runc sets up the
//! namespaces, mounts and ids from the bundle's `config.json`, passes its
//! stdout and stderr through to the command, and returns the command's exit
//! status (128+N when signal N killed it). The container's state lives under
//! the workspace's own runc root, so a leftover is found and deleted there
//! even after salve itself was killed.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, LinuxNamespaceType, Mount, Process, Root, Spec,
    User,
};
use tracing::{debug, warn};

use super::user::Ids;
use crate::exec::capture::{self, Collector, Shared, Stream};
use crate::exec::{Deadline, Error, Exit, Interrupt, Network, Output};

/// How often a running step checks for Ctrl-C.
const POLL: Duration = Duration::from_millis(100);

/// The capabilities a step's root process gets: Docker's default set, the
/// one images and their package managers are made to run with.
const CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// A host path bind-mounted into the container.
#[derive(Clone, Debug)]
pub(super) struct Bind {
    pub source: PathBuf,
    pub destination: String,
    pub writable: bool,
}

/// Everything that goes into one step's `config.json`.
#[derive(Clone, Debug)]
pub(super) struct Bundle<'a> {
    pub root: &'a Path,
    pub argv: &'a [String],
    pub env: Vec<String>,
    pub cwd: String,
    pub ids: Ids,
    pub network: Network,
    pub binds: Vec<Bind>,
}

impl Bundle<'_> {
    /// The OCI runtime config: oci-spec's defaults (the same as `runc
    /// spec`: private pid, ipc, uts, mount and cgroup namespaces, `/proc`,
    /// `/dev`, `/sys`, masked kernel paths) with the host's network unless
    /// it is off, and this step's process and bind mounts.
    pub(super) fn config(&self) -> Result<Spec, oci_spec::OciSpecError> {
        let mut spec = Spec::default();
        spec.set_hostname(Some("localhost".into()));

        let mut root = Root::default();
        root.set_path(self.root.to_owned())
            .set_readonly(Some(false));
        spec.set_root(Some(root));

        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for bind in &self.binds {
            let access = if bind.writable { "rw" } else { "ro" };
            let mut mount = Mount::default();
            mount
                .set_destination(PathBuf::from(&bind.destination))
                .set_typ(Some("bind".into()))
                .set_source(Some(bind.source.clone()))
                .set_options(Some(vec!["rbind".into(), access.into(), "nosuid".into()]));
            mounts.push(mount);
        }
        spec.set_mounts(Some(mounts));

        let mut process = Process::default();
        let mut user = User::default();
        user.set_uid(self.ids.uid)
            .set_gid(self.ids.gid)
            .set_additional_gids(Some(self.ids.additional_gids.clone()));
        process
            .set_args(Some(self.argv.to_vec()))
            .set_env(Some(self.env.clone()))
            .set_cwd(PathBuf::from(&self.cwd))
            .set_user(user)
            .set_capabilities(Some(capabilities(self.ids.uid == 0)))
            // Limits are inherited from salve, as a shell's would be.
            .set_rlimits(None)
            // As in Docker: setuid programs (su, sudo) may work in the image.
            .set_no_new_privileges(Some(false));
        spec.set_process(Some(process));

        if let Some(linux) = spec.linux_mut() {
            let mut namespaces = linux.namespaces().clone().unwrap_or_default();
            if self.network == Network::Host {
                namespaces.retain(|ns| ns.typ() != LinuxNamespaceType::Network);
            }
            linux.set_namespaces(Some(namespaces));
        }
        Ok(spec)
    }
}

/// Docker's default capabilities for root; none in effect for other users.
fn capabilities(root: bool) -> LinuxCapabilities {
    let all: Capabilities = CAPABILITIES.into_iter().collect();
    let in_effect = if root {
        all.clone()
    } else {
        Capabilities::new()
    };
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(all))
        .set_permitted(Some(in_effect.clone()))
        .set_effective(Some(in_effect))
        .set_inheritable(Some(Capabilities::new()))
        .set_ambient(Some(Capabilities::new()));
    caps
}

/// When a step must end, and what stops it early.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits<'a> {
    pub step: Duration,
    pub deadline: Option<Deadline>,
    pub interrupt: &'a Interrupt,
}

/// Where runc and the bundle live.
#[derive(Clone, Copy, Debug)]
pub(super) struct Runtime<'a> {
    pub program: &'a Path,
    /// runc's state dir (`--root`).
    pub state: &'a Path,
}

/// Why a step was stopped before it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Deadline,
    Interrupted,
}

/// Runs the bundle in `bundle_dir` (its `config.json` written from
/// `bundle`) and collects what the command did.
pub(super) fn run(
    runtime: Runtime<'_>,
    bundle_dir: &Path,
    bundle: &Bundle<'_>,
    command: String,
    limits: Limits<'_>,
) -> Result<Output, Error> {
    let config = bundle_dir.join("config.json");
    let spec = bundle.config().map_err(|source| Error::Bundle {
        path: config.clone(),
        source,
    })?;
    spec.save(&config).map_err(|source| Error::Bundle {
        path: config.clone(),
        source,
    })?;
    let log = bundle_dir.join("runc-log.json");
    if log.exists() {
        fs_err::remove_file(&log)?;
    }

    // Start runc in its own process group: Ctrl-C in the terminal reaches
    // salve only, which then stops the step through `Limits::interrupt`.
    let id = container_id();
    let started = Instant::now();
    let mut child = Command::new(runtime.program)
        .arg("--root")
        .arg(runtime.state)
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "run", "--bundle"])
        .arg(bundle_dir)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| Error::RuntimeMissing {
            runtime: runtime.program.into(),
            source,
        })?;
    let leftover = Leftover { runtime, id: &id };
    debug!(%id, %command, "step started");

    // Output is read on two threads, the exit status waited for on a third.
    let collector = Shared::default();
    let readers = [
        child
            .stdout
            .take()
            .map(|out| reader(Stream::Stdout, out, &collector)),
        child
            .stderr
            .take()
            .map(|err| reader(Stream::Stderr, err, &collector)),
    ];
    let pid = child.id();
    let (done, status) = mpsc::channel();
    thread::spawn(move || done.send(child.wait()));

    let (status, stop) = wait(&status, &runtime, &id, pid, limits, started)?;
    leftover.delete();
    for reader in readers.into_iter().flatten() {
        if reader.join().is_err() {
            warn!(%id, "a step output reader panicked");
        }
    }
    let duration = started.elapsed();
    let collector = std::mem::take(&mut *lock(&collector));
    debug!(%id, ?status, ?stop, ms = duration.as_millis() as u64, "step ended");

    let exit = match stop {
        Some(Stop::Interrupted) => return Err(Error::Interrupted),
        Some(Stop::Deadline) => {
            let limit = limits
                .deadline
                .map_or(Duration::ZERO, |deadline| deadline.limit());
            return Err(Error::Deadline { limit });
        }
        Some(Stop::TimedOut) => Exit::TimedOut(limits.step),
        None => match (status.code(), status.signal()) {
            (Some(0), _) => Exit::Code(0),
            // runc also prints its own error on stderr, so it is in the tail.
            (Some(code), _) => match start_error(&log) {
                None => Exit::Code(code),
                Some(message) => {
                    Exit::Code(exec_failure(&message).ok_or_else(|| Error::Runtime {
                        runtime: runtime.program.into(),
                        command: command.clone(),
                        message,
                    })?)
                }
            },
            (None, Some(signal)) => Exit::Signal(signal),
            (None, None) => Exit::Signal(0),
        },
    };
    Ok(collector.into_output(command, exit, duration))
}

/// Waits for runc to exit, killing the container when a limit is reached.
fn wait(
    status: &mpsc::Receiver<io::Result<ExitStatus>>,
    runtime: &Runtime<'_>,
    id: &str,
    pid: u32,
    limits: Limits<'_>,
    started: Instant,
) -> Result<(ExitStatus, Option<Stop>), Error> {
    let step_end = started + limits.step;
    let (end, stop_at_end) = match limits.deadline {
        Some(deadline) if deadline.at() < step_end => (deadline.at(), Stop::Deadline),
        _ => (step_end, Stop::TimedOut),
    };

    let mut stop = None;
    loop {
        let timeout = end.saturating_duration_since(Instant::now()).min(POLL);
        match status.recv_timeout(timeout) {
            Ok(status) => return Ok((status?, stop)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other("the runc waiter thread died").into());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if stop.is_some() {
            continue;
        }
        if limits.interrupt.is_triggered() {
            stop = Some(Stop::Interrupted);
        } else if Instant::now() >= end {
            stop = Some(stop_at_end);
        } else {
            continue;
        }
        debug!(%id, ?stop, "killing step");
        kill(runtime, id, pid);
    }
}

/// Kills the container's processes: its init through runc (the pid
/// namespace takes the rest with it), or runc itself while it is still
/// creating the container; [`Leftover::delete`] then removes what remains.
fn kill(runtime: &Runtime<'_>, id: &str, pid: u32) {
    let killed = runc(runtime, &["kill", id, "KILL"]).is_ok_and(|status| status.success());
    if !killed {
        let pid = rustix::process::Pid::from_raw(pid as i32);
        if let Some(pid) = pid {
            // The child may have exited meanwhile; then there is nothing to do.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// A container that may outlive its `runc run` (killed runc, failed start).
struct Leftover<'a> {
    runtime: Runtime<'a>,
    id: &'a str,
}

impl Leftover<'_> {
    /// Deletes the container if runc still has state for it.
    fn delete(&self) {
        if !self.runtime.state.join(self.id).exists() {
            return;
        }
        debug!(id = self.id, "deleting leftover container");
        match runc(&self.runtime, &["delete", "--force", self.id]) {
            Ok(status) if status.success() => {}
            Ok(status) => warn!(id = self.id, %status, "runc delete failed"),
            Err(error) => warn!(id = self.id, %error, "runc delete failed"),
        }
    }
}

impl Drop for Leftover<'_> {
    fn drop(&mut self) {
        self.delete();
    }
}

/// Runs a runc subcommand against the workspace's state dir.
fn runc(runtime: &Runtime<'_>, args: &[&str]) -> io::Result<ExitStatus> {
    Command::new(runtime.program)
        .arg("--root")
        .arg(runtime.state)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

/// Deletes every container left in a runc state dir (after a crash).
pub(super) fn delete_all(program: &Path, state: &Path) {
    let Ok(entries) = std::fs::read_dir(state) else {
        return;
    };
    let runtime = Runtime { program, state };
    for entry in entries.flatten() {
        if let Some(id) = entry.file_name().to_str() {
            Leftover { runtime, id }.delete();
        }
    }
}

fn reader(
    stream: Stream,
    pipe: impl io::Read + Send + 'static,
    collector: &Shared,
) -> thread::JoinHandle<()> {
    let collector = Arc::clone(collector);
    thread::spawn(move || capture::drain(stream, pipe, &collector))
}

fn lock(shared: &Mutex<Collector>) -> std::sync::MutexGuard<'_, Collector> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A container id unique on this machine for the life of this process.
fn container_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "salve-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// runc's own error, when it failed rather than the command: the last
/// error-level entry of its JSON log.
fn start_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["level"] == "error")
        .filter_map(|entry| entry["msg"].as_str().map(str::to_owned))
        .next_back()
}

/// The shell's exit code for a command that could not be executed (127: not
/// found, 126: not executable), when that is what runc's error says.
fn exec_failure(message: &str) -> Option<i32> {
    let (_, reason) = message.split_once("unable to start container process: exec: ")?;
    if reason.contains("permission denied") || reason.contains("exec format error") {
        Some(126)
    } else if reason.contains("not found") || reason.contains("no such file or directory") {
        Some(127)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::LinuxNamespace;

    use super::*;

    fn bundle(network: Network, ids: Ids) -> Spec {
        let argv = ["python3".to_owned(), "-V".to_owned()];
        let binds = vec![Bind {
            source: "/host/ca.pem".into(),
            destination: "/.salve/ca-certificates.crt".into(),
            writable: false,
        }];
        let bundle = Bundle {
            root: Path::new("/scratch/task/merged"),
            argv: &argv,
            env: vec!["PATH=/usr/bin:/bin".into()],
            cwd: "/app".into(),
            ids,
            network,
            binds,
        };
        bundle.config().unwrap()
    }

    fn root() -> Ids {
        Ids {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
        }
    }

    #[test]
    fn host_network_drops_only_the_network_namespace() {
        let namespaces = |spec: &Spec| -> Vec<LinuxNamespaceType> {
            let linux = spec.linux().as_ref().unwrap();
            linux
                .namespaces()
                .as_ref()
                .unwrap()
                .iter()
                .map(LinuxNamespace::typ)
                .collect()
        };
        let host = namespaces(&bundle(Network::Host, root()));
        assert!(!host.contains(&LinuxNamespaceType::Network));
        assert!(
            host.contains(&LinuxNamespaceType::Pid) && host.contains(&LinuxNamespaceType::Mount)
        );
        let none = namespaces(&bundle(Network::None, root()));
        assert!(none.contains(&LinuxNamespaceType::Network));
    }

    #[test]
    fn config_carries_process_root_and_binds() {
        let spec = bundle(
            Network::Host,
            Ids {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![4],
            },
        );
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json["root"],
            serde_json::json!({"path": "/scratch/task/merged", "readonly": false})
        );
        assert_eq!(
            json["process"]["args"],
            serde_json::json!(["python3", "-V"])
        );
        assert_eq!(json["process"]["cwd"], "/app");
        assert_eq!(
            json["process"]["user"],
            serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [4]})
        );
        assert_eq!(
            json["process"]["capabilities"]["effective"],
            serde_json::json!([])
        );
        let bind = json["mounts"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            bind,
            serde_json::json!({"destination": "/.salve/ca-certificates.crt", "type": "bind",
                "source": "/host/ca.pem", "options": ["rbind", "ro", "nosuid"]})
        );
    }

    #[test]
    fn root_steps_get_dockers_capabilities() {
        let json = serde_json::to_value(bundle(Network::Host, root())).unwrap();
        let effective = json["process"]["capabilities"]["effective"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(effective, CAPABILITIES.len());
    }

    #[test]
    fn exec_failures_map_to_shell_exit_codes() {
        let not_found = "runc run failed: unable to start container process: exec: \"nope\": \
                         executable file not found in $PATH";
        assert_eq!(exec_failure(not_found), Some(127));
        let denied = "runc run failed: unable to start container process: exec: \"/etc/passwd\": \
                      permission denied";
        assert_eq!(exec_failure(denied), Some(126));
        let cgroup = "runc run failed: unable to start container process: error during container \
                      init: cgroup setup";
        assert_eq!(
            exec_failure(cgroup),
            None,
            "a runtime failure is not the command's"
        );
    }
}
