//! What the host offers a plugin: its log, and fetching from the sources
//! the user allowed.
//!
//! In a native test there is no host: [`log`] writes to standard error and
//! [`fetch`] answers with what [`testing::set_fetch`] installed.

/// Severity of a log message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Why the plugin decided something.
    Debug,
    /// A summary worth showing by default.
    Info,
    /// Something the user should look at.
    Warn,
    /// Something went wrong.
    Error,
}

/// An HTTP response the host fetched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The body, decompressed.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (name in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a fetch returned no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// The URL is outside the sources the user allowed.
    NotAllowed(String),
    /// The network, TLS or the server failed.
    Transport(String),
    /// The body was larger than the host accepts.
    TooLarge(u64),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NotAllowed(m) => write!(f, "not an allowed source: {m}"),
            FetchError::Transport(m) => f.write_str(m),
            FetchError::TooLarge(n) => write!(f, "response larger than {n} bytes"),
        }
    }
}

impl std::error::Error for FetchError {}

/// Writes a message to salve's log, tagged with the plugin's name.
pub fn log(level: Level, message: &str) {
    imp::log(level, message);
}

/// Logs at debug level: why the plugin decided something.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs at warn level: something the user should look at.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// The target of the symbolic link at `path` (absolute in the image), as
/// stored, even when it is absolute. [`Image`](crate::image::Image) uses it
/// to resolve links inside the image; plugins rarely need it directly.
///
/// # Errors
///
/// `path` is not a link, or cannot be read.
pub fn read_link(image: &crate::image::Image, path: &str) -> Result<String, String> {
    imp::read_link(image, path)
}

/// Fetches a URL with GET through the host.
///
/// # Errors
///
/// The URL is not under an allowed source, or the transfer failed. An HTTP
/// error status is a response, not an error.
pub fn fetch(url: &str, headers: &[(&str, &str)]) -> Result<Response, FetchError> {
    imp::fetch(url, headers)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{FetchError, Level, Response};
    use crate::guest::bindings::salve::plugin::host as wit;

    pub fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => wit::LogLevel::Trace,
            Level::Debug => wit::LogLevel::Debug,
            Level::Info => wit::LogLevel::Info,
            Level::Warn => wit::LogLevel::Warn,
            Level::Error => wit::LogLevel::Error,
        };
        wit::log(level, message);
    }

    pub fn read_link(_image: &crate::image::Image, path: &str) -> Result<String, String> {
        // WASI refuses to return absolute targets, so the host reads links.
        wit::read_link(path)
    }

    pub fn fetch(url: &str, headers: &[(&str, &str)]) -> Result<Response, FetchError> {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match wit::fetch(url, &headers) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(wit::FetchError::NotAllowed(m)) => Err(FetchError::NotAllowed(m)),
            Err(wit::FetchError::Transport(m)) => Err(FetchError::Transport(m)),
            Err(wit::FetchError::TooLarge(n)) => Err(FetchError::TooLarge(n)),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{FetchError, Level, Response};

    pub fn log(level: Level, message: &str) {
        eprintln!("[{level:?}] {message}");
    }

    pub fn read_link(image: &crate::image::Image, path: &str) -> Result<String, String> {
        let host = image.root().join(path.trim_start_matches('/'));
        std::fs::read_link(&host)
            .map(|t| t.to_string_lossy().into_owned())
            .map_err(|e| format!("{path}: {e}"))
    }

    pub fn fetch(url: &str, headers: &[(&str, &str)]) -> Result<Response, FetchError> {
        super::testing::FETCH.with(|f| match &*f.borrow() {
            Some(fetch) => fetch(url, headers),
            None => Err(FetchError::Transport(format!(
                "no host to fetch {url}: native tests install a stand-in with \
                 salve_plugin_sdk::host::testing::set_fetch"
            ))),
        })
    }
}

/// Stand-ins for the host in native tests.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use std::cell::RefCell;

    use super::{FetchError, Response};

    type FetchFn = Box<dyn Fn(&str, &[(&str, &str)]) -> Result<Response, FetchError>>;

    thread_local! {
        pub(super) static FETCH: RefCell<Option<FetchFn>> = const { RefCell::new(None) };
    }

    /// Answers [`super::fetch`] calls on this thread with `f`.
    pub fn set_fetch(f: impl Fn(&str, &[(&str, &str)]) -> Result<Response, FetchError> + 'static) {
        FETCH.with(|slot| *slot.borrow_mut() = Some(Box::new(f)));
    }
}
