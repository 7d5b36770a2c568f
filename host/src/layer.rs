//! Turning the changes of a run into one new image layer.
