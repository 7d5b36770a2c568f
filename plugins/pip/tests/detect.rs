//! `detect` against directories standing in for images.

mod common;

use common::{Tree, fixture};
use salve_plugin_pip::Pip;
use salve_plugin_sdk::prelude::*;

fn amd64() -> ImageContext {
    ImageContext {
        os: "linux".into(),
        architecture: "amd64".into(),
        ..ImageContext::default()
    }
}

fn detect(tree: &Tree, context: &ImageContext) -> Vec<InstalledPackage> {
    match Pip::detect(&tree.image(), context, &Answers::default()) {
        Ok(Detected::Packages(found)) => found,
        other => panic!("detect: {other:?}"),
    }
}

fn find<'a>(found: &'a [InstalledPackage], path: &str) -> &'a InstalledPackage {
    found.iter().find(|p| p.path == path).unwrap_or_else(|| {
        let paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
        panic!("no package at {path}; found {paths:#?}")
    })
}

#[test]
fn debian_apt_packages_are_foreign_and_pip_installs_are_managed() {
    let tree = Tree::new();
    tree.bookworm().wheel(
        "usr/local/lib/python3.11/dist-packages",
        "requests-2.25.1.dist-info",
        Some("pip"),
    );

    let found = detect(&tree, &amd64());

    let idna = find(
        &found,
        "usr/lib/python3/dist-packages/idna-3.3.egg-info/PKG-INFO",
    );
    assert_eq!((idna.key.as_str(), idna.version.as_str()), ("idna", "3.3"));
    assert_eq!(
        idna.origin,
        Origin::Foreign("installed by apt as python3-idna; patch with --pkg-types os".into())
    );
    assert_eq!(idna.scope, "usr/local/lib/python3.11/dist-packages");
    assert_eq!(idna.attribute("installer"), Some("apt"));

    let pip = find(
        &found,
        "usr/lib/python3/dist-packages/pip-23.0.1.dist-info/METADATA",
    );
    assert_eq!(
        pip.origin,
        Origin::Foreign("installed by apt as python3-pip; patch with --pkg-types os".into())
    );

    let requests = find(
        &found,
        "usr/local/lib/python3.11/dist-packages/requests-2.25.1.dist-info/METADATA",
    );
    assert_eq!(requests.origin, Origin::Managed);
    assert_eq!(requests.scope, "usr/local/lib/python3.11/dist-packages");
    let attributes: Vec<(&str, &str)> = requests
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attributes,
        [
            ("interpreter", "/usr/bin/python3.11"),
            ("python-version", "3.11"),
            ("python-full-version", "3.11.2"),
            ("externally-managed", "true"),
            ("installer", "pip"),
            ("environment", "system"),
            ("pip-version", "23.0.1"),
            ("machine", "x86_64"),
            ("libc", "glibc 2.36"),
        ]
    );
}

#[test]
fn a_pip_install_outside_pips_target_on_debian_is_not_patchable() {
    let tree = Tree::new();
    tree.bookworm()
        .dist("usr/lib/python3/dist-packages", "stray", "1.0");

    let found = detect(&tree, &amd64());

    let stray = find(
        &found,
        "usr/lib/python3/dist-packages/stray-1.0.dist-info/METADATA",
    );
    let Origin::Unsupported(why) = &stray.origin else {
        panic!("{:?}", stray.origin)
    };
    assert!(
        why.contains("installs into /usr/local/lib/python3.11/dist-packages"),
        "{why}"
    );
}

#[test]
fn venvs_are_found_by_pyvenv_cfg_and_run_by_their_own_interpreter() {
    let tree = Tree::new();
    tree.bookworm().bookworm_venv("opt/venv");
    let site = "opt/venv/lib/python3.11/site-packages";
    tree.wheel(site, "urllib3-1.26.5.dist-info", Some("pip"));

    let found = detect(&tree, &amd64());

    let urllib3 = find(&found, &format!("{site}/urllib3-1.26.5.dist-info/METADATA"));
    assert_eq!(urllib3.origin, Origin::Managed);
    assert_eq!(urllib3.scope, site);
    assert_eq!(
        urllib3.attribute("interpreter"),
        Some("/opt/venv/bin/python")
    );
    assert_eq!(urllib3.attribute("environment"), Some("venv"));
    assert_eq!(urllib3.attribute("externally-managed"), Some("false"));
    assert_eq!(urllib3.attribute("python-full-version"), Some("3.11.2"));
    assert_eq!(urllib3.attribute("pip-version"), Some("23.0.1"));
    // The lib64 link does not make a second copy.
    assert_eq!(found.iter().filter(|p| p.key == "urllib3").count(), 1);
}

#[test]
fn a_venv_whose_interpreter_links_outside_the_image_is_not_patchable() {
    let tree = Tree::new();
    let site = "app/.venv/lib/python3.12/site-packages";
    tree.file(
        "app/.venv/pyvenv.cfg",
        "home = /usr/local/bin\nversion_info = 3.12.4.final.0\n",
    )
    .symlink("app/.venv/bin/python", "/usr/local/bin/python3.12")
    .dist(site, "pip", "24.0")
    .dist(site, "flask", "2.0.0");

    let found = detect(&tree, &amd64());

    let flask = find(&found, &format!("{site}/flask-2.0.0.dist-info/METADATA"));
    let Origin::Unsupported(why) = &flask.origin else {
        panic!("{:?}", flask.origin)
    };
    assert!(why.contains("/app/.venv"), "{why}");
    assert_eq!(flask.attribute("python-full-version"), Some("3.12.4"));
}

/// Inside the WASI sandbox an absolute link cannot be read at all, so a
/// venv's `bin/python -> /usr/bin/python3` looks like a link to nowhere;
/// the base interpreter `pyvenv.cfg` names is what shows the venv works.
/// Natively, a link to a path that is not in the image stands in for that.
#[test]
fn a_venv_link_that_cannot_be_followed_counts_when_its_base_is_present() {
    let tree = Tree::new();
    let site = "srv/env/lib/python3.11/site-packages";
    tree.bookworm()
        .file(
            "srv/env/pyvenv.cfg",
            "home = /usr/bin\nversion = 3.11.2\nexecutable = /usr/bin/python3.11\n",
        )
        .symlink("srv/env/bin/python", "/unreadable/python3")
        .dist(site, "pip", "23.0.1")
        .dist(site, "flask", "2.0.0");

    let found = detect(&tree, &amd64());

    let flask = find(&found, &format!("{site}/flask-2.0.0.dist-info/METADATA"));
    assert_eq!(flask.origin, Origin::Managed);
    assert_eq!(flask.attribute("interpreter"), Some("/srv/env/bin/python"));
}

#[test]
fn vendored_copies_name_their_parent() {
    let tree = Tree::new();
    tree.bookworm().bookworm_venv("opt/venv");
    let site = "opt/venv/lib/python3.11/site-packages";
    tree.wheel(site, "setuptools-79.0.1.dist-info", Some("pip"))
        .wheel(
            &format!("{site}/setuptools/_vendor"),
            "jaraco.context-5.3.0.dist-info",
            None,
        );

    let found = detect(&tree, &amd64());

    let vendored = find(
        &found,
        &format!("{site}/setuptools/_vendor/jaraco.context-5.3.0.dist-info/METADATA"),
    );
    assert_eq!(vendored.key, "jaraco-context");
    assert_eq!(
        vendored.origin,
        Origin::Vendored(VendoredIn {
            parent: "setuptools".into(),
            parent_path: format!("{site}/setuptools-79.0.1.dist-info/METADATA"),
        })
    );
    assert_eq!(vendored.scope, site);
}

#[test]
fn vendored_copies_under_pkg_resources_belong_to_setuptools() {
    let tree = Tree::new();
    tree.bookworm().bookworm_venv("opt/venv");
    let site = "opt/venv/lib/python3.11/site-packages";
    tree.wheel(site, "setuptools-79.0.1.dist-info", Some("pip"))
        .dist(
            &format!("{site}/pkg_resources/_vendor"),
            "packaging",
            "24.2",
        );

    let found = detect(&tree, &amd64());

    let copy = find(
        &found,
        &format!("{site}/pkg_resources/_vendor/packaging-24.2.dist-info/METADATA"),
    );
    let Origin::Vendored(parent) = &copy.origin else {
        panic!("{:?}", copy.origin)
    };
    assert_eq!(parent.parent, "setuptools");
}

#[test]
fn pips_own_vendored_libraries_come_from_vendor_txt() {
    let tree = Tree::new();
    let site = "usr/local/lib/python3.11/site-packages";
    tree.file("usr/local/bin/python3.11", "")
        .dist(site, "pip", "24.0")
        .file(
            &format!("{site}/pip/_vendor/vendor.txt"),
            "CacheControl==0.13.1  # Make sure to update the license in pyproject.toml for this.\n\
             urllib3==1.26.17\nsetuptools==68.0.0\n",
        );

    let found = detect(&tree, &amd64());

    let listing = format!("{site}/pip/_vendor/vendor.txt");
    let copies: Vec<(&str, &str)> = found
        .iter()
        .filter(|p| p.path == listing)
        .map(|p| (p.key.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(
        copies,
        [
            ("cachecontrol", "0.13.1"),
            ("urllib3", "1.26.17"),
            ("setuptools", "68.0.0")
        ]
    );
    let urllib3 = found.iter().find(|p| p.key == "urllib3").unwrap();
    assert_eq!(
        urllib3.origin,
        Origin::Vendored(VendoredIn {
            parent: "pip".into(),
            parent_path: format!("{site}/pip-24.0.dist-info/METADATA"),
        })
    );
}

#[test]
fn official_python_images_use_usr_local_site_packages_and_python_version() {
    let tree = Tree::new();
    let site = "usr/local/lib/python3.11/site-packages";
    tree.file("usr/local/bin/python3.11", "")
        .symlink("usr/local/bin/python3", "python3.11")
        .dist(site, "pip", "24.0")
        .wheel(site, "werkzeug-3.1.4.dist-info", Some("pip"));
    let context = ImageContext {
        env: vec![("PYTHON_VERSION".into(), "3.11.9".into())],
        ..amd64()
    };

    let found = detect(&tree, &context);

    let werkzeug = find(&found, &format!("{site}/werkzeug-3.1.4.dist-info/METADATA"));
    assert_eq!(
        (werkzeug.name.as_str(), werkzeug.key.as_str()),
        ("Werkzeug", "werkzeug")
    );
    assert_eq!(werkzeug.origin, Origin::Managed);
    assert_eq!(werkzeug.scope, site);
    assert_eq!(
        werkzeug.attribute("interpreter"),
        Some("/usr/local/bin/python3.11")
    );
    assert_eq!(werkzeug.attribute("python-full-version"), Some("3.11.9"));
    assert_eq!(werkzeug.attribute("externally-managed"), Some("false"));
    assert_eq!(
        werkzeug.attribute("libc"),
        None,
        "no C library in this tree"
    );
}

#[test]
fn user_sites_belong_to_their_user_and_the_system_interpreter() {
    let tree = Tree::new();
    let site = "home/app/.local/lib/python3.11/site-packages";
    tree.bookworm().dist(site, "rich", "13.0.0");

    let found = detect(&tree, &amd64());

    let rich = find(&found, &format!("{site}/rich-13.0.0.dist-info/METADATA"));
    assert_eq!(rich.origin, Origin::Managed);
    assert_eq!(rich.scope, site);
    assert_eq!(rich.attribute("environment"), Some("user"));
    assert_eq!(rich.attribute("user"), Some("app"));
    assert_eq!(rich.attribute("interpreter"), Some("/usr/bin/python3.11"));
    assert_eq!(rich.attribute("externally-managed"), Some("true"));
    // The user's pip is the system one.
    assert_eq!(rich.attribute("pip-version"), Some("23.0.1"));
}

#[test]
fn copies_pip_cannot_replace_say_why() {
    let tree = Tree::new();
    let site = "usr/local/lib/python3.11/site-packages";
    tree.file("usr/local/bin/python3.11", "")
        .dist(site, "pip", "24.0")
        .file(
            &format!("{site}/old-1.0.egg-info"),
            "Metadata-Version: 1.1\nName: old\nVersion: 1.0\n",
        )
        .file(
            &format!("{site}/norecord-2.0.dist-info/METADATA"),
            "Name: norecord\nVersion: 2.0\n",
        )
        .file(
            &format!("{site}/norecord-2.0.dist-info/INSTALLER"),
            "some-tool\n",
        )
        .dist(site, "editable", "0.1")
        .file(
            &format!("{site}/editable-0.1.dist-info/direct_url.json"),
            r#"{"url": "file:///src/editable", "dir_info": {"editable": true}}"#,
        )
        .dist(site, "fedora-thing", "1.0")
        .file(
            &format!("{site}/fedora_thing-1.0.dist-info/INSTALLER"),
            "rpm\n",
        );

    let found = detect(&tree, &amd64());
    let why = |path: &str| match &find(&found, &format!("{site}/{path}")).origin {
        Origin::Unsupported(why) | Origin::Foreign(why) => why.clone(),
        other => panic!("{path}: {other:?}"),
    };

    assert!(why("old-1.0.egg-info").contains("distutils"));
    assert!(why("norecord-2.0.dist-info/METADATA").contains("no RECORD"));
    assert!(why("norecord-2.0.dist-info/METADATA").contains("some-tool"));
    assert!(
        why("editable-0.1.dist-info/METADATA").contains("editable install of file:///src/editable")
    );
    assert!(why("fedora_thing-1.0.dist-info/METADATA").starts_with("installed by rpm"));
}

#[test]
fn environments_without_pip_get_salves_and_orphan_sites_are_unpatchable() {
    let tree = Tree::new();
    tree.file("usr/local/bin/python3.12", "")
        .dist("usr/local/lib/python3.12/site-packages", "attrs", "23.1.0")
        .dist("usr/lib/python3.9/site-packages", "leftover", "1.0");

    let found = detect(&tree, &amd64());

    let attrs = find(
        &found,
        "usr/local/lib/python3.12/site-packages/attrs-23.1.0.dist-info/METADATA",
    );
    assert_eq!(attrs.origin, Origin::Managed);
    assert_eq!(attrs.attribute("pip-version"), None);
    assert_eq!(attrs.attribute("pip-bootstrap"), Some("25.0.1"));

    let leftover = find(
        &found,
        "usr/lib/python3.9/site-packages/leftover-1.0.dist-info/METADATA",
    );
    assert_eq!(
        leftover.origin,
        Origin::Unsupported(
            "no Python interpreter for /usr/lib/python3.9/site-packages was found in the image"
                .into()
        )
    );
    assert_eq!(leftover.attribute("interpreter"), Some(""));
    assert_eq!(leftover.attribute("pip-bootstrap"), None);
}

#[test]
fn a_pip_that_honours_the_marker_but_cannot_override_it_is_unpatchable() {
    let tree = Tree::new();
    tree.bookworm().wheel(
        "usr/local/lib/python3.11/dist-packages",
        "requests-2.25.1.dist-info",
        Some("pip"),
    );
    // pip 23.0 reads EXTERNALLY-MANAGED; --break-system-packages came in 23.0.1.
    std::fs::write(
        tree.path("usr/lib/python3/dist-packages/pip-23.0.1.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: pip\nVersion: 23.0\n",
    )
    .unwrap();

    let found = detect(&tree, &amd64());

    let requests = find(
        &found,
        "usr/local/lib/python3.11/dist-packages/requests-2.25.1.dist-info/METADATA",
    );
    let Origin::Unsupported(why) = &requests.origin else {
        panic!("{:?}", requests.origin)
    };
    assert!(
        why.starts_with("pip 23.0 refuses to install into this externally managed"),
        "{why}"
    );
}

#[test]
fn a_site_directory_two_interpreters_share_is_reported_once() {
    let tree = Tree::new();
    let site = "usr/local/lib/python3.11/site-packages";
    // Fedora's python3.11 and a source-built one both look there.
    tree.file("usr/bin/python3.11", "")
        .file("usr/local/bin/python3.11", "")
        .dist(site, "pip", "24.0")
        .dist(site, "attrs", "23.1.0");

    let found = detect(&tree, &amd64());

    let attrs: Vec<&InstalledPackage> = found.iter().filter(|p| p.key == "attrs").collect();
    assert_eq!(attrs.len(), 1);
    assert_eq!(
        attrs[0].attribute("interpreter"),
        Some("/usr/local/bin/python3.11")
    );
}

#[test]
fn alpine_apk_packages_are_foreign() {
    let tree = Tree::new();
    let site = "usr/lib/python3.11/site-packages";
    tree.file("usr/bin/python3.11", "")
        .file("lib/ld-musl-x86_64.so.1", "")
        .dist(site, "idna", "3.6")
        .dist(site, "pip", "23.3.1")
        .file(
            "lib/apk/db/installed",
            &format!("P:musl\nV:1.2.4_git20230717-r4\n\nP:py3-idna\nV:3.6-r0\nF:{site}/idna-3.6.dist-info\nR:METADATA\n"),
        );

    let found = detect(&tree, &amd64());

    let idna = find(&found, &format!("{site}/idna-3.6.dist-info/METADATA"));
    assert_eq!(
        idna.origin,
        Origin::Foreign("installed by apk as py3-idna; patch with --pkg-types os".into())
    );
    let pip = find(&found, &format!("{site}/pip-23.3.1.dist-info/METADATA"));
    assert_eq!(pip.origin, Origin::Managed);
    assert_eq!(pip.scope, site);
    assert_eq!(pip.attribute("libc"), Some("musl 1.2"));
}

#[test]
fn names_and_versions_come_from_metadata() {
    let tree = Tree::new();
    tree.bookworm();
    // Debian's PKG-INFO says "Name: idna"; the directory could say anything.
    assert!(fixture("debian/idna-3.3.PKG-INFO").contains("Name: idna"));
    tree.file(
        "usr/local/lib/python3.11/dist-packages/weird_dir.dist-info/METADATA",
        "Metadata-Version: 2.1\nName: Jaraco.Context\nVersion: 5.3.0\n",
    )
    .file(
        "usr/local/lib/python3.11/dist-packages/weird_dir.dist-info/RECORD",
        "",
    );

    let found = detect(&tree, &amd64());

    let copy = find(
        &found,
        "usr/local/lib/python3.11/dist-packages/weird_dir.dist-info/METADATA",
    );
    assert_eq!(
        (copy.name.as_str(), copy.key.as_str(), copy.version.as_str()),
        ("Jaraco.Context", "jaraco-context", "5.3.0")
    );
}
