//! Running plan steps inside the image's own userland.
