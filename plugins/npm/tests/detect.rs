//! Detection on directories standing in for images.

mod common;

use common::{TestImage, answers, at, detect, detect_with};
use salve_plugin_npm::Npm;
use salve_plugin_sdk::{Answers, Detected, ImageContext, Origin, Plugin, VendoredIn};

fn attr<'a>(p: &'a salve_plugin_sdk::InstalledPackage, key: &str) -> Option<&'a str> {
    p.attribute(key)
}

#[test]
fn asks_the_image_for_its_npm_and_node_first() {
    let image = TestImage::app("app/package-lock.json", true);
    let asked = Npm::detect(
        &image.image(),
        &ImageContext::default(),
        &Answers::default(),
    )
    .unwrap();
    let Detected::Probes(probes) = asked else {
        panic!("expected probes, got {asked:?}")
    };
    let argv: Vec<_> = probes.iter().map(|p| p.command.argv.join(" ")).collect();
    assert_eq!(argv, ["npm --version", "node --version"]);
}

#[test]
fn every_copy_of_an_application_with_its_path_scope_and_kind() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);

    let qs = at(&found, "app/node_modules/qs/package.json");
    assert_eq!(
        (qs.name.as_str(), qs.key.as_str(), qs.version.as_str()),
        ("qs", "qs", "6.7.0")
    );
    assert_eq!(qs.scope, "app");
    assert_eq!(qs.origin, Origin::Managed);
    assert_eq!(attr(qs, "dependency"), Some("transitive"));
    assert_eq!(attr(qs, "parents"), Some("express@4.17.1"));
    assert_eq!(attr(qs, "lockfile"), Some("package-lock.json"));
    assert_eq!(attr(qs, "lockfile-version"), Some("3"));
    assert_eq!(attr(qs, "locked-version"), Some("6.7.0"));
    assert_eq!(attr(qs, "npm-version"), Some("9.2.0"));
    assert_eq!(attr(qs, "node-version"), Some("18.20.4"));

    let express = at(&found, "app/node_modules/express/package.json");
    assert_eq!(attr(express, "dependency"), Some("direct"));
    assert_eq!(attr(express, "section"), Some("dependencies"));
    assert_eq!(attr(express, "parents"), None);

    let lodash = at(&found, "app/node_modules/lodash/package.json");
    assert_eq!(attr(lodash, "section"), Some("devDependencies"));
    assert_eq!(attr(lodash, "dev"), Some("true"));
    assert_eq!(attr(lodash, "dev-installed"), Some("true"));

    let hoek = at(&found, "app/node_modules/@hapi/hoek/package.json");
    assert_eq!(
        (hoek.key.as_str(), hoek.version.as_str()),
        ("@hapi/hoek", "8.5.0")
    );
}

#[test]
fn one_package_at_two_versions_is_two_copies() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);
    let mut minimist: Vec<_> = found
        .iter()
        .filter(|p| p.key == "minimist")
        .map(|p| {
            (
                p.path.as_str(),
                p.version.as_str(),
                attr(p, "parents").unwrap_or(""),
            )
        })
        .collect();
    minimist.sort();
    assert_eq!(
        minimist,
        [
            (
                "app/node_modules/minimist/package.json",
                "0.0.8",
                "mkdirp@0.5.1"
            ),
            (
                "app/node_modules/rc/node_modules/minimist/package.json",
                "1.2.0",
                "rc@1.2.8"
            ),
        ]
    );
}

#[test]
fn lockfile_versions_1_and_2_give_the_same_flags() {
    for (fixture, version) in [
        ("app/package-lock.v1.json", "1"),
        ("app/package-lock.v2.json", "2"),
    ] {
        let image = TestImage::app(fixture, true);
        let found = detect(&image);
        let lodash = at(&found, "app/node_modules/lodash/package.json");
        assert_eq!(attr(lodash, "dev"), Some("true"), "{fixture}");
        assert_eq!(attr(lodash, "lockfile-version"), Some(version));
        let nested = at(
            &found,
            "app/node_modules/rc/node_modules/minimist/package.json",
        );
        assert_eq!(attr(nested, "locked-version"), Some("1.2.0"), "{fixture}");
    }
}

#[test]
fn development_dependencies_left_out_are_noticed() {
    let image = TestImage::app("app/package-lock.json", false);
    let found = detect(&image);
    assert!(found.iter().all(|p| p.key != "lodash"));
    let qs = at(&found, "app/node_modules/qs/package.json");
    assert_eq!(attr(qs, "dev-installed"), Some("false"));
}

#[test]
fn a_global_package_and_its_own_dependencies_share_its_scope() {
    let image = TestImage::new();
    image.copy_tree("global/mkdirp", "usr/local/lib/node_modules/mkdirp");
    image.write("usr/local/bin/npm", "");
    let found = detect(&image);

    let mkdirp = at(&found, "usr/local/lib/node_modules/mkdirp/package.json");
    assert_eq!(mkdirp.version, "0.5.1");
    assert_eq!(mkdirp.scope, "usr/local/lib/node_modules/mkdirp");
    assert_eq!(attr(mkdirp, "dependency"), Some("global"));
    assert_eq!(mkdirp.origin, Origin::Managed);

    let minimist = at(
        &found,
        "usr/local/lib/node_modules/mkdirp/node_modules/minimist/package.json",
    );
    assert_eq!(minimist.scope, "usr/local/lib/node_modules/mkdirp");
    assert_eq!(attr(minimist, "dependency"), Some("direct"));
    assert_eq!(attr(minimist, "lockfile"), Some("none"));
    assert_eq!(minimist.origin, Origin::Managed);
}

#[test]
fn npm_moves_as_a_whole_but_its_bundled_tree_is_skipped() {
    let image = TestImage::new();
    image.write(
        "usr/local/lib/node_modules/npm/package.json",
        r#"{"name":"npm","version":"10.8.2","dependencies":{"cross-spawn":"^7.0.3"},
            "bundleDependencies":["cross-spawn"]}"#,
    );
    image.write(
        "usr/local/lib/node_modules/npm/node_modules/cross-spawn/package.json",
        r#"{"name":"cross-spawn","version":"7.0.3"}"#,
    );
    image.write("usr/local/bin/npm", "");
    let found = detect(&image);
    assert_eq!(
        at(&found, "usr/local/lib/node_modules/npm/package.json").origin,
        Origin::Managed
    );
    let cross = at(
        &found,
        "usr/local/lib/node_modules/npm/node_modules/cross-spawn/package.json",
    );
    let Origin::Unsupported(why) = &cross.origin else {
        panic!("{:?}", cross.origin)
    };
    assert!(
        why.starts_with("part of the npm CLI's own bundled tree"),
        "{why}"
    );
    assert!(why.contains("npm install -g npm@<version>"), "{why}");
}

#[test]
fn copies_apt_installed_are_foreign_with_their_debian_package() {
    let image = TestImage::new();
    image.copy_tree("debian", "");
    let found = detect(&image);
    let minimist = at(&found, "usr/share/nodejs/minimist/package.json");
    assert_eq!(
        minimist.origin,
        Origin::Foreign("installed by apt as node-minimist; patch with --pkg-types os".into())
    );
    assert_eq!(minimist.scope, "usr/share/nodejs");
    let bundled = at(
        &found,
        "usr/share/nodejs/npm/node_modules/cli-columns/package.json",
    );
    assert_eq!(
        bundled.origin,
        Origin::Foreign("installed by apt as npm; patch with --pkg-types os".into())
    );
    assert!(matches!(
        at(&found, "usr/share/nodejs/npm/package.json").origin,
        Origin::Foreign(_)
    ));
}

#[test]
fn yarn_and_pnpm_projects_are_skipped_with_their_manager() {
    for (tool, marker) in [("yarn", "yarn.lock"), ("pnpm", "pnpm-lock.yaml")] {
        let image = TestImage::new();
        image.copy_tree(tool, "srv/site");
        image.write(
            "srv/site/node_modules/ms/package.json",
            r#"{"name":"ms","version":"2.0.0"}"#,
        );
        let found = detect(&image);
        let ms = at(&found, "srv/site/node_modules/ms/package.json");
        assert_eq!(
            ms.origin,
            Origin::Unsupported(format!(
                "the project at /srv/site uses {tool} ({marker}); salve patches npm projects only"
            ))
        );
    }
}

#[test]
fn without_npm_nothing_is_movable() {
    let image = TestImage::app("app/package-lock.json", true);
    let mut no_npm = answers("9.2.0", "v18.20.4");
    no_npm.0[0].exit_code = 127;
    let found = detect_with(&image, &no_npm);
    let qs = at(&found, "app/node_modules/qs/package.json");
    assert!(matches!(&qs.origin, Origin::Unsupported(w) if w.contains("no working npm")));
}

#[test]
fn npm_without_overrides_moves_only_direct_dependencies() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect_with(&image, &answers("8.1.0", "v16.13.0"));
    assert_eq!(
        at(&found, "app/node_modules/express/package.json").origin,
        Origin::Managed
    );
    let qs = at(&found, "app/node_modules/qs/package.json");
    assert!(matches!(&qs.origin, Origin::Unsupported(w) if w.contains("npm 8.3")));
}

#[test]
fn bundled_and_aliased_copies_are_not_moved_on_their_own() {
    let image = TestImage::new();
    image.write(
        "opt/svc/package.json",
        r#"{"name":"svc","dependencies":{"tool":"1.0.0","old-qs":"npm:qs@6.5.2"}}"#,
    );
    image.write(
        "opt/svc/node_modules/tool/package.json",
        r#"{"name":"tool","version":"1.0.0","dependencies":{"ms":"2.0.0"},"bundleDependencies":["ms"]}"#,
    );
    image.write(
        "opt/svc/node_modules/tool/node_modules/ms/package.json",
        r#"{"name":"ms","version":"2.0.0"}"#,
    );
    image.write(
        "opt/svc/node_modules/old-qs/package.json",
        r#"{"name":"qs","version":"6.5.2"}"#,
    );
    image.write("usr/bin/npm", "");
    let found = detect(&image);
    assert_eq!(
        at(
            &found,
            "opt/svc/node_modules/tool/node_modules/ms/package.json"
        )
        .origin,
        Origin::Vendored(VendoredIn {
            parent: "tool".into(),
            parent_path: "opt/svc/node_modules/tool/package.json".into(),
        })
    );
    let alias = at(&found, "opt/svc/node_modules/old-qs/package.json");
    assert_eq!(alias.key, "qs");
    assert!(matches!(&alias.origin, Origin::Unsupported(w) if w.contains("alias \"old-qs\"")));
}

#[test]
fn workspaces_and_stray_trees_say_why_they_are_skipped() {
    let image = TestImage::new();
    image.write(
        "mono/package.json",
        r#"{"name":"mono","workspaces":["packages/*"]}"#,
    );
    image.write(
        "mono/package-lock.json",
        r#"{"lockfileVersion":3,"packages":{}}"#,
    );
    image.write(
        "mono/node_modules/ms/package.json",
        r#"{"name":"ms","version":"2.0.0"}"#,
    );
    image.write(
        "opt/loose/node_modules/ms/package.json",
        r#"{"name":"ms","version":"2.0.0"}"#,
    );
    let found = detect(&image);
    let ws = at(&found, "mono/node_modules/ms/package.json");
    assert!(matches!(&ws.origin, Origin::Unsupported(w) if w.contains("npm workspaces")));
    let stray = at(&found, "opt/loose/node_modules/ms/package.json");
    assert_eq!(stray.scope, "opt/loose");
    assert!(
        matches!(&stray.origin, Origin::Unsupported(w) if w.contains("no package.json beside it"))
    );
}

#[test]
fn a_package_json_with_nothing_installed_is_not_a_project() {
    let image = TestImage::new();
    image.write(
        "usr/lib/python3/dist-packages/x/package.json",
        r#"{"name":"x"}"#,
    );
    assert!(detect(&image).is_empty());
}

#[test]
fn a_broken_root_manifest_names_the_file() {
    let image = TestImage::new();
    image.write("app/package.json", "{ nope");
    image.write(
        "app/node_modules/ms/package.json",
        r#"{"name":"ms","version":"2.0.0"}"#,
    );
    let err = Npm::detect(
        &image.image(),
        &ImageContext::default(),
        &answers("9.2.0", "v18.0.0"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/app/package.json: not valid JSON"), "{err}");
}

#[test]
fn copies_from_git_or_local_paths_are_not_registry_packages() {
    let image = TestImage::new();
    image.write(
        "opt/svc/package.json",
        r#"{"name":"svc","dependencies":{"forked":"github:someone/forked#v1.0.0","a":"^1.0.0"}}"#,
    );
    image.write(
        "opt/svc/package-lock.json",
        r#"{"lockfileVersion":3,"packages":{
            "node_modules/forked":{"version":"1.0.0","resolved":"git+ssh://git@github.com/someone/forked.git#0123abc"},
            "node_modules/a":{"version":"1.0.0","resolved":"https://registry.npmjs.org/a/-/a-1.0.0.tgz"},
            "node_modules/b":{"version":"2.0.0","resolved":"file:../b"}}}"#,
    );
    for (dir, name, version) in [
        ("forked", "forked", "1.0.0"),
        ("a", "a", "1.0.0"),
        ("b", "b", "2.0.0"),
    ] {
        image.write(
            &format!("opt/svc/node_modules/{dir}/package.json"),
            &format!(r#"{{"name":"{name}","version":"{version}"}}"#),
        );
    }
    image.write("usr/bin/npm", "");
    let found = detect(&image);
    let forked = at(&found, "opt/svc/node_modules/forked/package.json");
    assert_eq!(
        forked.origin,
        Origin::Unsupported(
            "installed from \"github:someone/forked#v1.0.0\", not from a registry; salve moves \
             registry packages only"
                .into()
        )
    );
    let local = at(&found, "opt/svc/node_modules/b/package.json");
    assert!(
        matches!(&local.origin, Origin::Unsupported(w) if w.starts_with("installed from file:../b"))
    );
    assert_eq!(
        at(&found, "opt/svc/node_modules/a/package.json").origin,
        Origin::Managed
    );
}
