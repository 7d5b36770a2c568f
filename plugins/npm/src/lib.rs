//! salve plugin for Node.js packages installed with npm.
