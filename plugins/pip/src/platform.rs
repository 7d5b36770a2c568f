//! Which wheels an environment can install: its CPython version, the image's
//! architecture and C library.
//!
//! The check is deliberately simpler than pip's full tag list, and errs on
//! the side of "installable" where it knows too little (pip has the last
//! word at install time, and a task that fails leaves nothing behind):
//!
//! - interpreter and ABI: `py3`/`py3X` with `none` for any 3.X up to the
//!   environment's; `cp3X` with `abi3` for 3.X up to the environment's;
//!   `cp3Y` with `cp3Y` (or `cp3Ym`) or `none` for exactly the environment's
//!   3.Y. Free-threaded (`cp313t`) and debug ABIs are not accepted.
//! - platform: `any`; `linux_<arch>`; `manylinux1`/`2010`/`2014`/`_X_Y`
//!   when the image has glibc at least that version (any version when the
//!   glibc version is unknown); `musllinux_X_Y` likewise for musl. When the
//!   C library is unknown, both families are accepted.
//!
//! Only CPython is modelled: salve finds interpreters named `python3.X`.

use salve_plugin_sdk::image::Image;
use salve_plugin_sdk::{Error, ImageContext};

use crate::ospackages::{self, Database};

/// The C library an image's binaries link against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Libc {
    /// GNU libc, with its version when known.
    Glibc(Option<(u32, u32)>),
    /// musl, with its version when known.
    Musl(Option<(u32, u32)>),
    /// Neither was found.
    Unknown,
}

impl Libc {
    /// Finds the C library of an image from its loader and package database.
    ///
    /// # Errors
    ///
    /// A directory on the way cannot be listed.
    pub fn detect(image: &Image, db: &Database) -> Result<Libc, Error> {
        if !image.glob("lib/ld-musl-*.so.1")?.is_empty() {
            let version = db.version("musl").map(ospackages::upstream_version);
            return Ok(Libc::Musl(version.and_then(major_minor)));
        }

        let loaders = [
            "lib*/ld-linux*.so.*",
            "lib/*-linux-gnu*/libc.so.6",
            "usr/lib*/libc.so.6",
        ];
        let mut glibc = false;
        for pattern in loaders {
            glibc |= !image.glob(pattern)?.is_empty();
        }
        if !glibc {
            return Ok(Libc::Unknown);
        }
        let from_db = ["libc6", "glibc"].iter().find_map(|p| db.version(p));
        Ok(Libc::Glibc(
            from_db
                .map(ospackages::upstream_version)
                .and_then(major_minor),
        ))
    }

    /// The spelling kept in a package's attributes: `glibc 2.36`, `musl`,
    /// empty when unknown.
    pub fn to_attribute(&self) -> String {
        let spell = |name: &str, v: &Option<(u32, u32)>| match v {
            Some((major, minor)) => format!("{name} {major}.{minor}"),
            None => name.to_string(),
        };
        match self {
            Libc::Glibc(v) => spell("glibc", v),
            Libc::Musl(v) => spell("musl", v),
            Libc::Unknown => String::new(),
        }
    }

    /// Reads [`Libc::to_attribute`]'s spelling back.
    pub fn from_attribute(text: &str) -> Libc {
        let (name, version) = text.split_once(' ').unwrap_or((text, ""));
        let version = major_minor(version);
        match name {
            "glibc" => Libc::Glibc(version),
            "musl" => Libc::Musl(version),
            _ => Libc::Unknown,
        }
    }
}

/// `(2, 36)` from `2.36`, `2.36.1` or `1.2.4_git2023`.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split(['.', '_', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The uname machine name wheels use for an OCI architecture and variant.
pub fn machine(architecture: &str, variant: &str) -> Option<&'static str> {
    Some(match (architecture, variant) {
        ("amd64", _) => "x86_64",
        ("arm64", _) => "aarch64",
        ("386", _) => "i686",
        ("arm", "v6") => "armv6l",
        ("arm", _) => "armv7l",
        ("ppc64le", _) => "ppc64le",
        ("s390x", _) => "s390x",
        ("riscv64", _) => "riscv64",
        ("loong64", _) => "loongarch64",
        _ => return None,
    })
}

/// What an environment can install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// CPython's minor version (3, 11).
    pub python: (u64, u64),
    /// The wheel spelling of the machine (`x86_64`), when known.
    pub machine: Option<String>,
    /// The C library.
    pub libc: Libc,
}

impl Platform {
    /// The platform of an environment in an image.
    pub fn new(python: (u64, u64), context: &ImageContext, libc: Libc) -> Platform {
        let machine = machine(&context.architecture, &context.variant).map(str::to_string);
        Platform {
            python,
            machine,
            libc,
        }
    }

    /// Words for people: `CPython 3.11 on linux x86_64 (glibc 2.36)`.
    pub fn describe(&self) -> String {
        let (major, minor) = self.python;
        let machine = self.machine.as_deref().unwrap_or("an unknown architecture");
        match self.libc.to_attribute() {
            libc if libc.is_empty() => format!("CPython {major}.{minor} on linux {machine}"),
            libc => format!("CPython {major}.{minor} on linux {machine} ({libc})"),
        }
    }

    /// True when a wheel with these compressed tag sets (`py2.py3`, `none`,
    /// `manylinux2014_x86_64.manylinux_2_17_x86_64`) installs here.
    pub fn accepts(&self, python_tags: &str, abi_tags: &str, platform_tags: &str) -> bool {
        let interpreter_ok = python_tags.split('.').any(|py| {
            abi_tags
                .split('.')
                .any(|abi| self.accepts_interpreter(py, abi))
        });
        interpreter_ok && platform_tags.split('.').any(|p| self.accepts_platform(p))
    }

    fn accepts_interpreter(&self, python: &str, abi: &str) -> bool {
        let (major, minor) = self.python;
        let version_of = |tag: &str, prefix: &str| -> Option<(u64, u64)> {
            let digits = tag.strip_prefix(prefix)?;
            let tag_major = digits.get(..1)?.parse().ok()?;
            let tag_minor = match digits.get(1..) {
                Some("") | None => None,
                Some(rest) => Some(rest.parse().ok()?),
            };
            Some((tag_major, tag_minor.unwrap_or(u64::MAX)))
        };
        let up_to_ours = |v: (u64, u64)| v.0 == major && (v.1 == u64::MAX || v.1 <= minor);
        let exactly_ours = |v: (u64, u64)| v == (major, minor);

        if let Some(v) = version_of(python, "py") {
            return abi == "none" && up_to_ours(v);
        }
        let Some(v) = version_of(python, "cp") else {
            return false;
        };
        match abi {
            "abi3" => up_to_ours(v) && v.1 != u64::MAX,
            "none" => exactly_ours(v),
            _ => {
                let ours = format!("cp{major}{minor}");
                exactly_ours(v) && (abi == ours || abi == format!("{ours}m"))
            }
        }
    }

    fn accepts_platform(&self, platform: &str) -> bool {
        if platform == "any" {
            return true;
        }
        let Some(machine) = self.machine.as_deref() else {
            return false;
        };
        let Some(family) = platform
            .strip_suffix(machine)
            .and_then(|p| p.strip_suffix('_'))
        else {
            return false;
        };
        let glibc_needed = match family {
            "linux" => return true,
            "manylinux1" => Some((2, 5)),
            "manylinux2010" => Some((2, 12)),
            "manylinux2014" => Some((2, 17)),
            _ => family.strip_prefix("manylinux_").and_then(major_minor),
        };
        if let Some(needed) = glibc_needed {
            return match self.libc {
                Libc::Glibc(Some(have)) => have >= needed,
                Libc::Glibc(None) | Libc::Unknown => true,
                Libc::Musl(_) => false,
            };
        }
        let Some(needed) = family.strip_prefix("musllinux_").and_then(major_minor) else {
            return false;
        };
        match self.libc {
            Libc::Musl(Some(have)) => have >= needed,
            Libc::Musl(None) | Libc::Unknown => true,
            Libc::Glibc(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bookworm_amd64() -> Platform {
        Platform {
            python: (3, 11),
            machine: Some("x86_64".into()),
            libc: Libc::Glibc(Some((2, 36))),
        }
    }

    #[test]
    fn pure_python_wheels_install_on_any_python_3_up_to_ours() {
        let p = bookworm_amd64();
        assert!(p.accepts("py3", "none", "any"));
        assert!(p.accepts("py2.py3", "none", "any"));
        assert!(p.accepts("py38", "none", "any"));
        assert!(!p.accepts("py312", "none", "any"));
        assert!(!p.accepts("py2", "none", "any"));
    }

    #[test]
    fn cpython_wheels_need_our_abi_or_an_older_abi3() {
        let p = bookworm_amd64();
        assert!(p.accepts("cp311", "cp311", "manylinux_2_17_x86_64"));
        assert!(!p.accepts("cp312", "cp312", "manylinux_2_17_x86_64"));
        assert!(!p.accepts("cp310", "cp310", "manylinux_2_17_x86_64"));
        assert!(p.accepts("cp38", "abi3", "manylinux_2_17_x86_64"));
        assert!(!p.accepts("cp312", "abi3", "manylinux_2_17_x86_64"));
        assert!(!p.accepts("cp311", "cp311t", "manylinux_2_17_x86_64"));
        assert!(p.accepts("cp311", "none", "any"));
    }

    #[test]
    fn manylinux_needs_a_new_enough_glibc_and_the_right_machine() {
        let p = bookworm_amd64();
        assert!(p.accepts(
            "cp311",
            "cp311",
            "manylinux2014_x86_64.manylinux_2_17_x86_64"
        ));
        assert!(p.accepts("cp311", "cp311", "manylinux1_x86_64"));
        assert!(!p.accepts("cp311", "cp311", "manylinux_2_38_x86_64"));
        assert!(!p.accepts("cp311", "cp311", "manylinux_2_17_aarch64"));
        assert!(!p.accepts("cp311", "cp311", "musllinux_1_1_x86_64"));
        assert!(!p.accepts("cp311", "cp311", "win_amd64"));
        assert!(!p.accepts("cp311", "cp311", "macosx_11_0_arm64"));
        assert!(p.accepts("cp311", "cp311", "linux_x86_64"));
    }

    #[test]
    fn musl_images_take_musllinux_wheels_only() {
        let alpine = Platform {
            python: (3, 12),
            machine: Some("aarch64".into()),
            libc: Libc::Musl(Some((1, 2))),
        };
        assert!(alpine.accepts("cp312", "cp312", "musllinux_1_2_aarch64"));
        assert!(!alpine.accepts("cp312", "cp312", "musllinux_1_3_aarch64"));
        assert!(!alpine.accepts("cp312", "cp312", "manylinux_2_17_aarch64"));
    }

    #[test]
    fn unknown_libc_or_machine_is_lenient_or_pure_python_only() {
        let unknown_libc = Platform {
            libc: Libc::Unknown,
            ..bookworm_amd64()
        };
        assert!(unknown_libc.accepts("cp311", "cp311", "musllinux_1_1_x86_64"));
        assert!(unknown_libc.accepts("cp311", "cp311", "manylinux_2_99_x86_64"));
        let unknown_machine = Platform {
            machine: None,
            ..bookworm_amd64()
        };
        assert!(unknown_machine.accepts("py3", "none", "any"));
        assert!(!unknown_machine.accepts("cp311", "cp311", "manylinux_2_17_x86_64"));
    }

    #[test]
    fn libc_attribute_round_trips() {
        for libc in [Libc::Glibc(Some((2, 36))), Libc::Musl(None), Libc::Unknown] {
            assert_eq!(Libc::from_attribute(&libc.to_attribute()), libc);
        }
        assert_eq!(Libc::Glibc(Some((2, 36))).to_attribute(), "glibc 2.36");
    }

    #[test]
    fn libc_is_found_from_the_loader_and_the_package_database() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("lib/x86_64-linux-gnu")).unwrap();
        std::fs::write(root.path().join("lib/x86_64-linux-gnu/libc.so.6"), "").unwrap();
        std::fs::create_dir_all(root.path().join("var/lib/dpkg")).unwrap();
        std::fs::write(
            root.path().join("var/lib/dpkg/status"),
            "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u4\n",
        )
        .unwrap();
        let image = Image::at(root.path());
        let db = Database::read(&image).unwrap();
        assert_eq!(
            Libc::detect(&image, &db).unwrap(),
            Libc::Glibc(Some((2, 36)))
        );

        let alpine = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(alpine.path().join("lib")).unwrap();
        std::fs::write(alpine.path().join("lib/ld-musl-aarch64.so.1"), "").unwrap();
        let image = Image::at(alpine.path());
        assert_eq!(
            Libc::detect(&image, &Database::default()).unwrap(),
            Libc::Musl(None)
        );

        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            Libc::detect(&Image::at(empty.path()), &Database::default()).unwrap(),
            Libc::Unknown
        );
    }
}
