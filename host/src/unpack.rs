//! Unpacking image layers into directories, cached by diff id.
