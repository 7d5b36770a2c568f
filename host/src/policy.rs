//! Choosing the version each vulnerable package moves to.
