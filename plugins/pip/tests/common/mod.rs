//! Directories standing in for images, built from the recorded fixtures.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use salve_plugin_sdk::image::Image;

/// A temporary image root.
pub struct Tree {
    dir: tempfile::TempDir,
}

/// The text of a recorded fixture (see `tests/fixtures/README.md`).
pub fn fixture(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn image(&self) -> Image {
        Image::at(self.dir.path())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel.trim_start_matches('/'))
    }

    /// Writes a file, creating its directories.
    pub fn file(&self, rel: &str, contents: &str) -> &Tree {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        self
    }

    pub fn dir(&self, rel: &str) -> &Tree {
        std::fs::create_dir_all(self.path(rel)).unwrap();
        self
    }

    /// A symbolic link at `rel` pointing to `target` (as written, so an
    /// absolute target is absolute inside the image).
    pub fn symlink(&self, rel: &str, target: &str) -> &Tree {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, &path).unwrap();
        self
    }

    /// Copies a wheel fixture's dist-info into a site directory, as pip
    /// leaves it: with `INSTALLER` (when given) and a `RECORD`.
    pub fn wheel(&self, site: &str, dist_info: &str, installer: Option<&str>) -> &Tree {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wheels")
            .join(dist_info);
        let to = self.path(&format!("{site}/{dist_info}"));
        std::fs::create_dir_all(&to).unwrap();
        for file in std::fs::read_dir(&from).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
        }
        if !to.join("RECORD").exists() {
            std::fs::write(to.join("RECORD"), "").unwrap();
        }
        if let Some(installer) = installer {
            std::fs::write(to.join("INSTALLER"), format!("{installer}\n")).unwrap();
        }
        self
    }

    /// A minimal dist-info written by pip.
    pub fn dist(&self, site: &str, name: &str, version: &str) -> &Tree {
        let dir = format!("{site}/{}-{version}.dist-info", name.replace('-', "_"));
        self.file(
            &format!("{dir}/METADATA"),
            &format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
        )
        .file(&format!("{dir}/RECORD"), &format!("{name}/__init__.py,,\n"))
        .file(&format!("{dir}/INSTALLER"), "pip\n")
    }

    /// Debian bookworm with python3.11, apt's pip and idna, and glibc.
    pub fn bookworm(&self) -> &Tree {
        self.file("usr/bin/python3.11", "")
            .symlink("usr/bin/python3", "python3.11")
            .file("usr/lib/python3.11/EXTERNALLY-MANAGED", &fixture("debian/EXTERNALLY-MANAGED"))
            .file("usr/lib/python3/dist-packages/idna-3.3.egg-info/PKG-INFO", &fixture("debian/idna-3.3.PKG-INFO"))
            .file("usr/lib/python3/dist-packages/idna-3.3.egg-info/top_level.txt", &fixture("debian/idna-3.3.top_level.txt"))
            .file("usr/lib/python3/dist-packages/pip-23.0.1.dist-info/METADATA", &fixture("debian/pip-23.0.1.METADATA"))
            .file("usr/lib/python3/dist-packages/pip-23.0.1.dist-info/RECORD", "pip/__init__.py,,\n")
            .file("var/lib/dpkg/info/python3-idna.list", &fixture("debian/python3-idna.list"))
            .file("var/lib/dpkg/info/python3-pip.list", &fixture("debian/python3-pip.list"))
            .file(
                "var/lib/dpkg/status",
                "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u4\n\n\
                 Package: python3.11-minimal\nStatus: install ok installed\nVersion: 3.11.2-6+deb12u6\n",
            )
            .file("lib/x86_64-linux-gnu/libc.so.6", "")
            .file("etc/passwd", "root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\n")
    }

    /// A venv made by bookworm's `python3 -m venv /opt/venv`, with pip.
    pub fn bookworm_venv(&self, root: &str) -> &Tree {
        let site = format!("{root}/lib/python3.11/site-packages");
        self.file(&format!("{root}/pyvenv.cfg"), &fixture("debian/pyvenv.cfg"))
            .symlink(&format!("{root}/bin/python"), "python3")
            .symlink(&format!("{root}/bin/python3"), "/usr/bin/python3")
            .symlink(&format!("{root}/lib64"), "lib")
            .file(
                &format!("{site}/pip-23.0.1.dist-info/METADATA"),
                &fixture("debian/pip-23.0.1.METADATA"),
            )
            .file(
                &format!("{site}/pip-23.0.1.dist-info/RECORD"),
                "pip/__init__.py,,\n",
            )
            .file(
                &format!("{site}/pip-23.0.1.dist-info/INSTALLER"),
                &fixture("debian/venv-pip.INSTALLER"),
            )
    }
}
