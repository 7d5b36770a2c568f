//! salve plugin for Python packages installed with pip.
