//! Fetching from the network on behalf of plugins, from allowed sources only.
