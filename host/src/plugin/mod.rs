//! Loading ecosystem plugins and calling them in a sandbox.
