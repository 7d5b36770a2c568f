//! What every step of a run shares: network, trust, proxies, the image's
//! environment, time limits.

use std::env;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{CA_BUNDLE, RunSpec};

/// The default time limit of one step (`--step-timeout`).
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The `PATH` of a step whose image sets none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The proxy variables passed from the host into every step when set.
///
/// Both spellings are passed because tools disagree on which one they read
/// (curl and apt read only the lowercase `http_proxy`).
pub const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// Where installers look for extra CA certificates; each is pointed at
/// [`CA_BUNDLE`](super::CA_BUNDLE) when the run has a CA bundle.
pub const CA_VARS: [&str; 7] = [
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
    "NPM_CONFIG_CAFILE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
];

/// Where distributions keep their CA bundle, most common first.
const HOST_CA_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
];

/// The settings of one run, shared by all its steps.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Whether steps share the host's network.
    pub network: Network,
    /// A CA bundle on the host, mounted read-only at
    /// [`CA_BUNDLE`](super::CA_BUNDLE) and named by the [`CA_VARS`].
    pub ca_bundle: Option<PathBuf>,
    /// The resolver config on the host, mounted read-only over the image's
    /// `/etc/resolv.conf` when the network is on.
    pub resolv_conf: Option<PathBuf>,
    /// Proxy variables added to every step's environment.
    pub proxy_env: Vec<(String, String)>,
    /// Other variables every step gets (`SOURCE_DATE_EPOCH`), after the
    /// image's and before the step's own.
    pub env: Vec<(String, String)>,
    /// The image config's environment and working dir.
    pub image: ImageEnv,
    /// The time limit of a step that does not set its own.
    pub step_timeout: Duration,
    /// The end of the whole run, if it has one.
    pub deadline: Option<Deadline>,
    /// Set by the CLI's Ctrl-C handler; a running step is killed within a
    /// tenth of a second and the run ends with [`Error::Interrupted`].
    ///
    /// [`Error::Interrupted`]: super::Error::Interrupted
    pub interrupt: Interrupt,
    /// The OCI runtime program of the native executor.
    pub runtime: PathBuf,
}

impl Setup {
    /// The defaults for an image: the host's network, CA bundle, resolver
    /// config and proxy variables, a ten-minute step limit, no run limit.
    pub fn from_host(image: ImageEnv) -> Setup {
        let resolv = Path::new("/etc/resolv.conf");
        Setup {
            network: Network::Host,
            ca_bundle: host_ca_bundle(),
            resolv_conf: resolv.is_file().then(|| resolv.to_path_buf()),
            proxy_env: proxy_from_env(),
            env: Vec::new(),
            image,
            step_timeout: DEFAULT_STEP_TIMEOUT,
            deadline: None,
            interrupt: Interrupt::new(),
            runtime: PathBuf::from("runc"),
        }
    }
}

impl Setup {
    /// A step's environment as `NAME=value`: the image's `Env` (with a
    /// default `PATH` when it has none), the proxy variables, the run's
    /// own variables, the CA variables, then the step's own; a later value
    /// wins.
    pub(crate) fn environment(&self, spec: &RunSpec) -> Vec<String> {
        let mut env: Vec<(&str, &str)> = vec![("PATH", DEFAULT_PATH)];
        let mut set = |name, value| match env.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => env.push((name, value)),
        };

        fn pairs(list: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
            list.iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
        }
        let ca_vars = match self.ca_bundle {
            Some(_) => CA_VARS.iter().map(|name| (*name, CA_BUNDLE)).collect(),
            None => Vec::new(),
        };
        for (name, value) in pairs(&self.image.env)
            .chain(pairs(&self.proxy_env))
            .chain(pairs(&self.env))
            .chain(ca_vars)
            .chain(pairs(&spec.env))
        {
            set(name, value);
        }
        env.into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect()
    }
}

/// Whether steps reach the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// The host's network (the default: installers need their indexes).
    Host,
    /// A private network namespace with only a loopback interface.
    None,
}

/// The parts of the image config that shape a step's process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageEnv {
    /// `Env`, in order.
    pub env: Vec<(String, String)>,
    /// `WorkingDir`, if set.
    pub working_dir: Option<String>,
}

impl ImageEnv {
    /// Reads `Env` entries in their `NAME=value` form; an entry without `=`
    /// is a variable with an empty value, as Docker treats it.
    pub fn new<S: AsRef<str>>(env: &[S], working_dir: Option<&str>) -> ImageEnv {
        let env = env
            .iter()
            .map(|entry| {
                let entry = entry.as_ref();
                match entry.split_once('=') {
                    Some((name, value)) => (name.to_owned(), value.to_owned()),
                    None => (entry.to_owned(), String::new()),
                }
            })
            .collect();
        let working_dir = working_dir.filter(|dir| !dir.is_empty()).map(str::to_owned);
        ImageEnv { env, working_dir }
    }
}

/// The end of a run: a point in time and the limit it came from.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    /// A deadline `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + limit,
            limit,
        }
    }

    /// When the run must end.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The limit as given.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

/// A flag the CLI raises on Ctrl-C to stop the run.
///
/// Clones share the flag. The executor checks it before each step and
/// while a step runs; an interrupted step is killed and every mount,
/// container and scratch dir is cleaned by the guards as the error
/// unwinds, so the handler itself only needs to call
/// [`trigger`](Interrupt::trigger).
#[derive(Clone, Debug, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// A flag that is not raised.
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Raises the flag; safe to call from a signal handler thread.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the flag is raised.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The host's CA bundle: `$SSL_CERT_FILE` when it names a file, else the
/// first of the usual distribution paths that exists.
pub fn host_ca_bundle() -> Option<PathBuf> {
    let from_env = env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(HOST_CA_BUNDLES.iter().map(PathBuf::from))
        .find(|path| path.is_file())
}

/// The [`PROXY_VARS`] set in salve's own environment.
pub fn proxy_from_env() -> Vec<(String, String)> {
    PROXY_VARS
        .iter()
        .filter_map(|name| env::var(name).ok().map(|value| ((*name).to_owned(), value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_env_splits_at_the_first_equals_sign() {
        let env = ImageEnv::new(
            &["PATH=/usr/bin:/bin", "OPTS=a=b", "EMPTY=", "BARE"],
            Some(""),
        );
        assert_eq!(
            env.env,
            [
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("OPTS".into(), "a=b".into()),
                ("EMPTY".into(), String::new()),
                ("BARE".into(), String::new()),
            ]
        );
        assert_eq!(
            env.working_dir, None,
            "an empty WorkingDir means the default"
        );
    }

    #[test]
    fn step_env_layers_image_proxy_ca_and_step_values() {
        let image = ImageEnv::new(&["LANG=C.UTF-8", "PIP_CERT=/image/ca.pem"], None);
        let mut setup = Setup::from_host(image);
        setup.ca_bundle = Some("/host/ca.pem".into());
        setup.proxy_env = vec![("HTTPS_PROXY".into(), "http://proxy:3128".into())];
        let mut spec = RunSpec::new(["true"]);
        spec.env = vec![("LANG".into(), "C".into())];

        let env = setup.environment(&spec);
        assert_eq!(
            env[0],
            format!("PATH={DEFAULT_PATH}"),
            "a PATH even if the image sets none"
        );
        assert!(
            env.contains(&"LANG=C".to_owned()),
            "the step's value wins: {env:?}"
        );
        assert!(
            env.contains(&format!("PIP_CERT={CA_BUNDLE}")),
            "salve's CA wins: {env:?}"
        );
        assert!(env.contains(&"HTTPS_PROXY=http://proxy:3128".to_owned()));
        assert_eq!(
            env.iter()
                .filter(|entry| entry.starts_with("LANG="))
                .count(),
            1
        );
        for name in CA_VARS {
            assert!(
                env.contains(&format!("{name}={CA_BUNDLE}")),
                "{name} missing: {env:?}"
            );
        }

        setup.ca_bundle = None;
        let env = setup.environment(&RunSpec::new(["true"]));
        assert!(
            env.contains(&"PIP_CERT=/image/ca.pem".to_owned()),
            "no bundle, no override"
        );
    }

    #[test]
    fn interrupt_is_shared_by_clones() {
        let interrupt = Interrupt::new();
        let handler_side = interrupt.clone();
        assert!(!interrupt.is_triggered());
        handler_side.trigger();
        assert!(interrupt.is_triggered());
    }
}
