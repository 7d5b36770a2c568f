//! Opening images and writing patched ones.
