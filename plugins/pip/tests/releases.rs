//! `info`, the version functions and `releases` through the plugin trait,
//! with the host's fetch answered from recorded index pages.

mod common;

use std::cell::RefCell;
use std::cmp::Ordering;
use std::rc::Rc;

use common::{Tree, fixture};
use salve_plugin_pip::Pip;
use salve_plugin_sdk::host::{FetchError, Response, testing};
use salve_plugin_sdk::prelude::*;

#[test]
fn info_claims_installed_package_types_only() {
    let info = Pip::info();
    assert_eq!(info.name, "pip");
    assert_eq!(info.kind, PackageKind::Library);
    assert_eq!(info.report_types, ["python-pkg", "python"]);
    for lockfile_type in ["pip", "pipenv", "poetry"] {
        assert!(!info.report_types.iter().any(|t| t == lockfile_type));
    }
    assert_eq!(
        info.default_sources,
        [
            "https://pypi.org/simple/",
            "https://files.pythonhosted.org/"
        ]
    );
    assert_eq!(info.always_latest, ["certifi"]);
}

#[test]
fn version_functions_follow_pep_440() {
    assert_eq!(Pip::compare("1.0", "1.0.0"), Ok(Ordering::Equal));
    assert_eq!(Pip::compare("10.0a1", "9.0"), Ok(Ordering::Greater));
    assert_eq!(Pip::classify("2.0.0", "2.0.0.post1"), Ok(Bump::Patch));
    assert_eq!(Pip::classify("4.0.0", "4.0.0.1"), Ok(Bump::Patch));
    assert_eq!(Pip::classify("1.26.16", "2.0.6"), Ok(Bump::Major));
    let info = Pip::parse_version("1.0.1RC1").unwrap();
    assert_eq!(
        (info.normalized.as_str(), info.prerelease),
        ("1.0.1rc1", true)
    );
    assert!(Pip::parse_version("latest").is_err());
}

#[test]
fn report_spellings_of_a_name_have_the_key_detect_gives() {
    let tree = Tree::new();
    let site = "usr/local/lib/python3.11/site-packages";
    tree.file("usr/local/bin/python3.11", "")
        .wheel(site, "jaraco.context-5.3.0.dist-info", Some("pip"))
        .wheel(site, "werkzeug-3.1.4.dist-info", Some("pip"));
    let Ok(Detected::Packages(found)) =
        Pip::detect(&tree.image(), &ImageContext::default(), &Answers::default())
    else {
        panic!("detect failed")
    };
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();

    for spelling in [
        "jaraco.context",
        "Jaraco-Context",
        "jaraco_context",
        "Werkzeug",
        "werkzeug",
    ] {
        let key = Pip::package_key(spelling);
        assert!(
            keys.contains(&key.as_str()),
            "{spelling} -> {key}, detected {keys:?}"
        );
    }
}

/// requests 2.25.1 in a bookworm venv, as `detect` reports it.
fn requests_in_venv() -> InstalledPackage {
    let tree = Tree::new();
    tree.bookworm().bookworm_venv("opt/venv").wheel(
        "opt/venv/lib/python3.11/site-packages",
        "requests-2.25.1.dist-info",
        Some("pip"),
    );
    let Ok(Detected::Packages(found)) = Pip::detect(
        &tree.image(),
        &ImageContext {
            architecture: "amd64".into(),
            ..ImageContext::default()
        },
        &Answers::default(),
    ) else {
        panic!("detect failed")
    };
    found.into_iter().find(|p| p.key == "requests").unwrap()
}

fn page(status: u16, content_type: &str, body: String) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: body.into_bytes(),
    }
}

#[test]
fn releases_come_from_the_first_source_as_pep_691_json() {
    let asked = Rc::new(RefCell::new(Vec::new()));
    let log = asked.clone();
    testing::set_fetch(move |url, _| {
        log.borrow_mut().push(url.to_string());
        Ok(page(
            200,
            "application/vnd.pypi.simple.v1+json",
            fixture("index/requests.json"),
        ))
    });

    let sources = [
        "https://pypi.org/simple/".to_string(),
        "https://files.pythonhosted.org/".to_string(),
    ];
    let releases = Pip::releases(&requests_in_venv(), &sources)
        .unwrap()
        .unwrap();

    assert_eq!(*asked.borrow(), ["https://pypi.org/simple/requests/"]);
    let find = |v: &str| releases.iter().find(|r| r.version == v).unwrap();
    assert_eq!(find("2.32.3").unusable, None);
    assert!(
        find("2.32.0")
            .unusable
            .as_deref()
            .unwrap()
            .starts_with("yanked: ")
    );
    // Newest first.
    let newest: pep440_rs::Version = releases[0].version.parse().unwrap();
    assert!(newest >= "2.32.3".parse().unwrap());
}

#[test]
fn every_index_is_asked_and_a_version_any_of_them_installs_is_usable() {
    let asked = Rc::new(RefCell::new(Vec::new()));
    let log = asked.clone();
    // The mirror has a wheel of 2.99.0 (not on PyPI) and only a yanked
    // 2.32.3; PyPI's 2.32.3 is fine.
    let mirror = r#"{"meta": {"api-version": "1.0"}, "name": "requests",
        "files": [
          {"filename": "requests-2.99.0-py3-none-any.whl", "url": "x", "hashes": {}},
          {"filename": "requests-2.32.3-py3-none-any.whl", "url": "y", "hashes": {},
           "yanked": "mirror copy is broken"}
        ]}"#;
    testing::set_fetch(move |url, _| {
        log.borrow_mut().push(url.to_string());
        let body = if url.starts_with("https://mirror.corp/") {
            mirror.to_string()
        } else {
            fixture("index/requests.json")
        };
        Ok(page(200, "application/vnd.pypi.simple.v1+json", body))
    });

    let sources = [
        "https://mirror.corp/simple".to_string(),
        "https://files.mirror.corp/".to_string(),
        "https://pypi.org/simple/".to_string(),
    ];
    let releases = Pip::releases(&requests_in_venv(), &sources)
        .unwrap()
        .unwrap();
    assert_eq!(
        *asked.borrow(),
        [
            "https://mirror.corp/simple/requests/",
            "https://pypi.org/simple/requests/"
        ],
        "indexes only, not the file host"
    );
    assert_eq!(releases[0].version, "2.99.0");
    let find = |v: &str| releases.iter().find(|r| r.version == v).unwrap();
    assert_eq!(find("2.32.3").unusable, None);
    assert_eq!(
        releases.iter().filter(|r| r.version == "2.32.3").count(),
        1,
        "one row per version"
    );
}

#[test]
fn an_unreachable_index_gives_none_so_the_report_decides() {
    testing::set_fetch(|url, _| {
        Err(FetchError::Transport(format!(
            "connecting to {url}: refused"
        )))
    });
    let sources = ["https://mirror.corp/simple".to_string()];
    assert_eq!(Pip::releases(&requests_in_venv(), &sources), Ok(None));

    testing::set_fetch(|_, _| Ok(page(502, "text/html", "bad gateway".into())));
    assert_eq!(Pip::releases(&requests_in_venv(), &sources), Ok(None));
}

#[test]
fn a_project_the_index_does_not_have_has_no_releases() {
    testing::set_fetch(|_, _| Ok(page(404, "text/html", "Not Found".into())));
    let sources = ["https://mirror.corp/simple/".to_string()];
    assert_eq!(
        Pip::releases(&requests_in_venv(), &sources),
        Ok(Some(vec![]))
    );
}

#[test]
fn an_index_answering_garbage_is_an_error_naming_the_page() {
    testing::set_fetch(|_, _| {
        Ok(page(
            200,
            "application/vnd.pypi.simple.v1+json",
            "<html>".into(),
        ))
    });
    let sources = ["https://mirror.corp/simple/".to_string()];
    let Err(Error::Failed(why)) = Pip::releases(&requests_in_venv(), &sources) else {
        panic!("expected a failure")
    };
    assert!(
        why.starts_with("https://mirror.corp/simple/requests/: not a PEP 691 project page: "),
        "{why}"
    );
}

#[test]
fn releases_refuse_a_key_that_is_not_a_project_name() {
    let mut package = requests_in_venv();
    package.key = "../../admin".into();
    let sources = ["https://pypi.org/simple/".to_string()];
    assert!(matches!(
        Pip::releases(&package, &sources),
        Err(Error::InvalidInput(_))
    ));
}
