//! What the OS package manager knows about Python: which distribution
//! metadata it installed, and the versions of the interpreter and C library
//! packages.
//!
//! dpkg's file lists (`var/lib/dpkg/info/*.list`) and apk's database
//! (`lib/apk/db/installed`) are the truth about who owns a file; a
//! distribution's `INSTALLER` file is only a hint written by whatever tool
//! installed it, and Debian's packages carry none. rpm's database is a
//! binary Berkeley DB or SQLite file, so for rpm the `INSTALLER` hint is all
//! this plugin has (see `inventory`).

use std::collections::HashMap;

use salve_plugin_sdk::Error;
use salve_plugin_sdk::image::{EntryKind, Image};
use salve_plugin_sdk::metadata;

const DPKG_INFO: &str = "var/lib/dpkg/info";
const DPKG_STATUS: &str = "var/lib/dpkg/status";
const APK_INSTALLED: &str = "lib/apk/db/installed";

/// An OS package manager that can own Python distributions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    /// Debian and Ubuntu (dpkg, driven by apt).
    Apt,
    /// Alpine.
    Apk,
}

impl Manager {
    /// The command users know the manager by.
    pub fn command(self) -> &'static str {
        match self {
            Manager::Apt => "apt",
            Manager::Apk => "apk",
        }
    }
}

/// The OS package that installed a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Which package manager.
    pub manager: Manager,
    /// The package's name (`python3-idna`), without dpkg's `:arch` suffix.
    pub package: String,
}

/// The parts of the OS package databases this plugin reads.
#[derive(Clone, Debug, Default)]
pub struct Database {
    /// Python metadata paths (`*.dist-info`, `*.egg-info`), relative to the
    /// image root, and their owners.
    owners: HashMap<String, Owner>,
    /// Installed package versions by package name.
    versions: HashMap<String, String>,
}

impl Database {
    /// Reads dpkg's and apk's databases, whichever the image has.
    ///
    /// # Errors
    ///
    /// A database file exists but cannot be read.
    pub fn read(image: &Image) -> Result<Database, Error> {
        let mut db = Database::default();
        db.read_dpkg(image)?;
        db.read_apk(image)?;
        Ok(db)
    }

    /// The OS package that installed a metadata directory or file.
    pub fn owner(&self, metadata_dir: &str) -> Option<&Owner> {
        self.owners.get(metadata_dir.trim_matches('/'))
    }

    /// The installed version of an OS package, as the manager spells it
    /// (`3.11.2-6+deb12u6`, `1.2.4-r2`).
    pub fn version(&self, package: &str) -> Option<&str> {
        self.versions.get(package).map(String::as_str)
    }

    fn read_dpkg(&mut self, image: &Image) -> Result<(), Error> {
        // Only the paths of Python metadata matter, and dpkg lists each
        // metadata directory (or single egg-info file) itself.
        for entry in image.read_dir(DPKG_INFO)? {
            let Some(package) = entry.name.strip_suffix(".list") else {
                continue;
            };
            if entry.kind == EntryKind::Dir {
                continue;
            }
            let package = package.split(':').next().unwrap_or(package);
            for line in image.read_to_string(&entry.path)?.lines() {
                if is_metadata_path(line) {
                    let owner = Owner {
                        manager: Manager::Apt,
                        package: package.to_string(),
                    };
                    self.owners
                        .insert(line.trim().trim_matches('/').to_string(), owner);
                }
            }
        }

        if let Some(status) = image.read_optional(DPKG_STATUS)? {
            for record in metadata::paragraphs(&status) {
                let installed = record
                    .get("Status")
                    .is_some_and(|s| s.ends_with(" installed"));
                if let (true, Some(name), Some(version)) =
                    (installed, record.get("Package"), record.get("Version"))
                {
                    self.versions.insert(name.to_string(), version.to_string());
                }
            }
        }
        Ok(())
    }

    fn read_apk(&mut self, image: &Image) -> Result<(), Error> {
        let Some(installed) = image.read_optional(APK_INSTALLED)? else {
            return Ok(());
        };
        for record in metadata::paragraphs(&installed) {
            let Some(package) = record.get("P") else {
                continue;
            };
            if let Some(version) = record.get("V") {
                self.versions
                    .insert(package.to_string(), version.to_string());
            }

            // `F:` names a directory; the `R:` lines after it are its files.
            let mut folder = "";
            for (key, value) in &record.entries {
                let path = match key.as_str() {
                    "F" => {
                        folder = value;
                        value.to_string()
                    }
                    "R" => format!("{folder}/{value}"),
                    _ => continue,
                };
                if is_metadata_path(&path) {
                    let owner = Owner {
                        manager: Manager::Apk,
                        package: package.to_string(),
                    };
                    self.owners
                        .insert(path.trim_matches('/').to_string(), owner);
                }
            }
        }
        Ok(())
    }
}

/// True for the path of a distribution's metadata directory or file.
fn is_metadata_path(path: &str) -> bool {
    let path = path.trim().trim_end_matches('/');
    path.ends_with(".dist-info") || path.ends_with(".egg-info")
}

/// The upstream part of an OS package version: `3.11.2` of `3.11.2-6+deb12u6`
/// or of `3.11.8-r0`, without an epoch (`1:`).
pub fn upstream_version(version: &str) -> &str {
    let version = version.split_once(':').map_or(version, |(_, rest)| rest);
    version
        .rsplit_once('-')
        .map_or(version, |(upstream, _)| upstream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> String {
        let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    #[test]
    fn dpkg_file_lists_name_the_owner_of_python_metadata() {
        let root = tempfile::tempdir().unwrap();
        let info = root.path().join(DPKG_INFO);
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(
            info.join("python3-idna.list"),
            fixture("debian/python3-idna.list"),
        )
        .unwrap();
        std::fs::write(
            info.join("python3-pip.list"),
            fixture("debian/python3-pip.list"),
        )
        .unwrap();
        std::fs::write(
            info.join("libc6:amd64.list"),
            "/usr/lib/x86_64-linux-gnu/libc.so.6\n",
        )
        .unwrap();
        std::fs::write(
            info.join("python3-idna.md5sums"),
            "x  usr/lib/python3/x.dist-info\n",
        )
        .unwrap();

        let db = Database::read(&Image::at(root.path())).unwrap();

        let idna = db
            .owner("/usr/lib/python3/dist-packages/idna-3.3.egg-info")
            .unwrap();
        assert_eq!(
            (idna.manager, idna.package.as_str()),
            (Manager::Apt, "python3-idna")
        );
        let pip = db
            .owner("usr/lib/python3/dist-packages/pip-23.0.1.dist-info")
            .unwrap();
        assert_eq!(pip.package, "python3-pip");
        assert!(
            db.owner("usr/local/lib/python3.11/dist-packages/idna-3.3.egg-info")
                .is_none()
        );
        assert!(
            db.owner("usr/lib/python3/x.dist-info").is_none(),
            "md5sums are not file lists"
        );
    }

    #[test]
    fn dpkg_status_gives_installed_versions_only() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("var/lib/dpkg")).unwrap();
        std::fs::write(
            root.path().join(DPKG_STATUS),
            "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u4\n\n\
             Package: python3.11-minimal\nStatus: install ok installed\nVersion: 3.11.2-6+deb12u6\n\n\
             Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n",
        )
        .unwrap();

        let db = Database::read(&Image::at(root.path())).unwrap();

        assert_eq!(db.version("libc6"), Some("2.36-9+deb12u4"));
        assert_eq!(
            db.version("python3.11-minimal").map(upstream_version),
            Some("3.11.2")
        );
        assert_eq!(db.version("gone"), None);
    }

    #[test]
    fn apk_database_names_owners_of_directories_and_files() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("lib/apk/db")).unwrap();
        std::fs::write(
            root.path().join(APK_INSTALLED),
            "C:Q1abc=\nP:py3-idna\nV:3.6-r0\nF:usr/lib/python3.11/site-packages/idna-3.6.dist-info\n\
             R:METADATA\nF:usr/lib/python3.11/site-packages\nR:six-1.16.0.egg-info\n\n\
             P:musl\nV:1.2.4_git20230717-r4\nF:lib\nR:ld-musl-x86_64.so.1\n",
        )
        .unwrap();

        let db = Database::read(&Image::at(root.path())).unwrap();

        let owner = db
            .owner("usr/lib/python3.11/site-packages/idna-3.6.dist-info")
            .unwrap();
        assert_eq!(
            (owner.manager, owner.package.as_str()),
            (Manager::Apk, "py3-idna")
        );
        assert!(
            db.owner("usr/lib/python3.11/site-packages/six-1.16.0.egg-info")
                .is_some()
        );
        assert_eq!(
            db.version("musl").map(upstream_version),
            Some("1.2.4_git20230717")
        );
    }

    #[test]
    fn upstream_versions_drop_epoch_and_revision() {
        assert_eq!(upstream_version("3.11.2-6+deb12u6"), "3.11.2");
        assert_eq!(upstream_version("1:2.36-9"), "2.36");
        assert_eq!(upstream_version("3.11.8-r0"), "3.11.8");
        assert_eq!(upstream_version("2.36"), "2.36");
    }
}
