//! `plan` against directories standing in for images.

mod common;

use common::Tree;
use salve_plugin_pip::{DEFAULT_SOURCES, Pip};
use salve_plugin_sdk::prelude::*;

const VENV_SITE: &str = "opt/venv/lib/python3.11/site-packages";
const DEBIAN_LOCAL: &str = "usr/local/lib/python3.11/dist-packages";

fn context() -> PlanContext {
    PlanContext {
        image: ImageContext {
            os: "linux".into(),
            architecture: "amd64".into(),
            ..ImageContext::default()
        },
        staging_dir: "/.salve/staging".into(),
        ca_bundle: Some("/.salve/ca.pem".into()),
        sources: DEFAULT_SOURCES.map(String::from).to_vec(),
        network: true,
    }
}

fn packages(tree: &Tree) -> Vec<InstalledPackage> {
    match Pip::detect(&tree.image(), &context().image, &Answers::default()) {
        Ok(Detected::Packages(found)) => found,
        other => panic!("detect: {other:?}"),
    }
}

fn update(found: &[InstalledPackage], path: &str, target: &str) -> PackageUpdate {
    let package = found
        .iter()
        .find(|p| p.path == path)
        .unwrap_or_else(|| panic!("no {path}"));
    PackageUpdate {
        package: package.clone(),
        target: target.into(),
        vulnerabilities: vec!["CVE-2023-32681".into()],
    }
}

fn plan(tree: &Tree, updates: &[PackageUpdate], context: &PlanContext) -> Result<Vec<Task>, Error> {
    match Pip::plan(&tree.image(), updates, context, &Answers::default())? {
        Planned::Tasks(tasks) => Ok(tasks),
        Planned::Probes(p) => panic!("asked for probes: {p:?}"),
    }
}

fn runs(task: &Task) -> Vec<&Command> {
    task.steps
        .iter()
        .filter_map(|s| if let Step::Run(c) = s { Some(c) } else { None })
        .collect()
}

fn argv(command: &Command) -> Vec<&str> {
    command.argv.iter().map(String::as_str).collect()
}

/// The real install: the last run step.
fn install(task: &Task) -> Vec<&str> {
    argv(runs(task).last().unwrap())
}

fn venv_tree() -> Tree {
    let tree = Tree::new();
    tree.bookworm().bookworm_venv("opt/venv");
    tree.wheel(VENV_SITE, "requests-2.25.1.dist-info", Some("pip"))
        .wheel(VENV_SITE, "urllib3-1.26.5.dist-info", Some("pip"));
    tree
}

#[test]
fn a_venv_install_runs_the_venvs_python_with_guards_around_pip() {
    let tree = venv_tree();
    let found = packages(&tree);
    let updates = [update(
        &found,
        &format!("{VENV_SITE}/requests-2.25.1.dist-info/METADATA"),
        "2.31.0",
    )];

    let tasks = plan(&tree, &updates, &context()).unwrap();

    assert_eq!(tasks.len(), 1);
    let task = &tasks[0];
    assert_eq!(
        task.description,
        format!("pip install requests==2.31.0 in /{VENV_SITE}")
    );
    assert_eq!(task.updates, vec![0]);

    let Step::WriteFile(guard) = &task.steps[0] else {
        panic!("{:?}", task.steps[0])
    };
    assert_eq!(guard.path, "/.salve/staging/salve-pip-guard.py");
    assert!(String::from_utf8_lossy(&guard.contents).contains("def review(args):"));

    let runs = runs(task);
    assert_eq!(
        argv(runs[0]),
        [
            "/opt/venv/bin/python",
            "/.salve/staging/salve-pip-guard.py",
            "workdir",
            "--path",
            "/.salve/staging/pip-task-0",
        ]
    );
    assert_eq!(
        argv(runs[1]),
        [
            "/opt/venv/bin/python",
            "/.salve/staging/salve-pip-guard.py",
            "snapshot",
            "--state",
            "/.salve/staging/pip-task-0/before.json",
            "--module",
            "requests",
        ]
    );
    let pip_options = [
        "/opt/venv/bin/python",
        "-m",
        "pip",
        "install",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--no-input",
        "--upgrade-strategy",
        "only-if-needed",
        "--cert",
        "/.salve/ca.pem",
    ];
    let mut dry_run = pip_options.to_vec();
    dry_run.extend([
        "--dry-run",
        "--quiet",
        "--report",
        "/.salve/staging/pip-task-0/report.json",
        "requests==2.31.0",
    ]);
    assert_eq!(argv(runs[2]), dry_run);
    assert_eq!(
        argv(runs[3]),
        [
            "/opt/venv/bin/python",
            "/.salve/staging/salve-pip-guard.py",
            "review",
            "--report",
            "/.salve/staging/pip-task-0/report.json",
            "--name",
            "requests",
            "--version",
            "2.31.0",
        ]
    );
    let mut real = pip_options.to_vec();
    real.push("requests==2.31.0");
    assert_eq!(argv(runs[4]), real);
    assert_eq!(runs.len(), 5);

    for command in &runs {
        assert_eq!(command.cwd.as_deref(), Some("/"));
        assert!(
            command
                .env
                .contains(&("PYTHONDONTWRITEBYTECODE".into(), "1".into()))
        );
        // pip's scratch files stay out of the image's /tmp.
        let tmpdir = ("TMPDIR".into(), "/.salve/staging/pip-task-0".into());
        assert!(command.env.contains(&tmpdir));
        assert_eq!(command.user, None);
    }
}

#[test]
fn checks_pin_version_location_imports_and_pip_check() {
    let tree = venv_tree();
    let found = packages(&tree);
    let updates = [update(
        &found,
        &format!("{VENV_SITE}/requests-2.25.1.dist-info/METADATA"),
        "2.31",
    )];

    let tasks = plan(&tree, &updates, &context()).unwrap();

    let checks = &tasks[0].checks;
    assert_eq!(checks.len(), 3);
    assert_eq!(
        argv(&checks[0].command),
        [
            "/opt/venv/bin/python",
            "/.salve/staging/salve-pip-guard.py",
            "installed",
            "--site",
            &format!("/{VENV_SITE}"),
            "--name",
            "requests",
        ]
    );
    // The target is compared in its canonical spelling.
    assert_eq!(checks[0].stdout, OutputMatch::Equals("2.31".into()));
    assert_eq!(checks[0].exit_code, 0);
    assert_eq!(
        argv(&checks[1].command)[2..],
        [
            "imports",
            "--state",
            "/.salve/staging/pip-task-0/before.json"
        ]
    );
    assert!(checks[1].description.contains("(requests)"));
    assert_eq!(
        argv(&checks[2].command)[2..],
        [
            "pip-check",
            "--state",
            "/.salve/staging/pip-task-0/before.json"
        ]
    );
}

#[test]
fn debian_system_installs_break_system_packages_and_protect_apt_copies() {
    let tree = Tree::new();
    tree.bookworm()
        .wheel(DEBIAN_LOCAL, "requests-2.25.1.dist-info", Some("pip"));
    let found = packages(&tree);
    let updates = [update(
        &found,
        &format!("{DEBIAN_LOCAL}/requests-2.25.1.dist-info/METADATA"),
        "2.31.0",
    )];

    let tasks = plan(&tree, &updates, &context()).unwrap();

    let install = install(&tasks[0]);
    assert_eq!(install[0], "/usr/bin/python3.11");
    assert!(install.contains(&"--break-system-packages"));
    let review = argv(runs(&tasks[0])[3]);
    let protected: Vec<&str> = review
        .windows(2)
        .filter(|w| w[0] == "--protect")
        .map(|w| w[1])
        .collect();
    assert_eq!(
        protected,
        [
            "idna=installed by apt as python3-idna; patch with --pkg-types os",
            "pip=installed by apt as python3-pip; patch with --pkg-types os",
        ]
    );
}

#[test]
fn apt_copies_already_shadowed_by_pip_copies_are_not_protected() {
    let tree = Tree::new();
    tree.bookworm()
        .wheel(DEBIAN_LOCAL, "requests-2.25.1.dist-info", Some("pip"))
        .dist(DEBIAN_LOCAL, "idna", "2.10");
    let found = packages(&tree);
    let updates = [update(
        &found,
        &format!("{DEBIAN_LOCAL}/requests-2.25.1.dist-info/METADATA"),
        "2.31.0",
    )];

    let tasks = plan(&tree, &updates, &context()).unwrap();

    let review = argv(runs(&tasks[0])[3]);
    let protected: Vec<&str> = review
        .windows(2)
        .filter(|w| w[0] == "--protect")
        .map(|w| w[1])
        .collect();
    assert_eq!(
        protected,
        ["pip=installed by apt as python3-pip; patch with --pkg-types os"]
    );
}

#[test]
fn venvs_never_break_system_packages() {
    let tree = venv_tree();
    let found = packages(&tree);
    let updates = [update(
        &found,
        &format!("{VENV_SITE}/urllib3-1.26.5.dist-info/METADATA"),
        "1.26.18",
    )];

    let tasks = plan(&tree, &updates, &context()).unwrap();

    assert!(!install(&tasks[0]).contains(&"--break-system-packages"));
    assert!(!argv(runs(&tasks[0])[3]).contains(&"--protect"));
}

#[test]
fn tasks_run_dependents_first_and_pip_last() {
    let tree = venv_tree();
    let found = packages(&tree);
    let updates = [
        update(
            &found,
            &format!("{VENV_SITE}/urllib3-1.26.5.dist-info/METADATA"),
            "1.26.18",
        ),
        update(
            &found,
            &format!("{VENV_SITE}/pip-23.0.1.dist-info/METADATA"),
            "23.3",
        ),
        update(
            &found,
            &format!("{VENV_SITE}/requests-2.25.1.dist-info/METADATA"),
            "2.31.0",
        ),
    ];

    let tasks = plan(&tree, &updates, &context()).unwrap();

    let order: Vec<&str> = tasks.iter().map(|t| *install(t).last().unwrap()).collect();
    assert_eq!(order, ["requests==2.31.0", "urllib3==1.26.18", "pip==23.3"]);
    let indexes: Vec<Vec<u32>> = tasks.iter().map(|t| t.updates.clone()).collect();
    assert_eq!(indexes, [vec![2], vec![0], vec![1]]);
    // Each task keeps its own files in staging.
    assert!(argv(runs(&tasks[2])[1]).contains(&"/.salve/staging/pip-task-2/before.json"));
}

#[test]
fn user_sources_become_index_options_and_defaults_do_not() {
    let tree = venv_tree();
    let found = packages(&tree);
    let updates = [update(
        &found,
        &format!("{VENV_SITE}/urllib3-1.26.5.dist-info/METADATA"),
        "1.26.18",
    )];

    let defaults_without_slash = PlanContext {
        sources: vec![
            "https://pypi.org/simple".into(),
            "https://files.pythonhosted.org".into(),
        ],
        ..context()
    };
    let tasks = plan(&tree, &updates, &defaults_without_slash).unwrap();
    assert!(!install(&tasks[0]).iter().any(|a| a.contains("index-url")));

    let mirror = PlanContext {
        sources: vec![
            "https://nexus.corp/repository/pypi/simple/".into(),
            "https://nexus.corp/repository/pypi/packages/".into(),
            "https://devpi.corp/root/internal/+simple/".into(),
        ],
        ca_bundle: None,
        ..context()
    };
    let tasks = plan(&tree, &updates, &mirror).unwrap();
    let install = install(&tasks[0]);
    assert_eq!(
        install[9..],
        [
            "--index-url",
            "https://nexus.corp/repository/pypi/simple/",
            "--extra-index-url",
            "https://devpi.corp/root/internal/+simple/",
            "urllib3==1.26.18",
        ]
    );
}

#[test]
fn user_sites_install_with_user_as_that_user() {
    let tree = Tree::new();
    let site = "home/app/.local/lib/python3.11/site-packages";
    tree.bookworm().dist(site, "rich", "13.0.0");
    let found = packages(&tree);
    let updates = [update(
        &found,
        &format!("{site}/rich-13.0.0.dist-info/METADATA"),
        "13.3.0",
    )];

    let tasks = plan(&tree, &updates, &context()).unwrap();

    let install_step = runs(&tasks[0]).last().copied().unwrap();
    assert!(argv(install_step).contains(&"--user"));
    assert!(argv(install_step).contains(&"--break-system-packages"));
    assert_eq!(install_step.user.as_deref(), Some("app"));
    assert!(
        install_step
            .env
            .contains(&("HOME".into(), "/home/app".into()))
    );
    assert_eq!(tasks[0].checks[0].command.user.as_deref(), Some("app"));
    // The task's directory is made by root and handed to the user.
    let workdir = runs(&tasks[0])[0];
    assert_eq!(
        argv(workdir)[2..],
        [
            "workdir",
            "--path",
            "/.salve/staging/pip-task-0",
            "--owner",
            "app"
        ]
    );
    assert_eq!(workdir.user, None);
    assert_eq!(runs(&tasks[0])[1].user.as_deref(), Some("app"));
}

#[test]
fn environments_without_pip_fetch_and_run_salves_pip_wheel() {
    let tree = Tree::new();
    let site = "app/.venv/lib/python3.12/site-packages";
    tree.file("usr/local/bin/python3.12", "")
        .file(
            "app/.venv/pyvenv.cfg",
            "home = /usr/local/bin\nversion_info = 3.12.4\n",
        )
        .symlink("app/.venv/bin/python", "/usr/local/bin/python3.12")
        .dist(site, "flask", "2.0.0");
    let found = packages(&tree);
    let updates = [update(
        &found,
        &format!("{site}/flask-2.0.0.dist-info/METADATA"),
        "2.2.5",
    )];

    let tasks = plan(&tree, &updates, &context()).unwrap();

    let Step::Fetch(fetch) = &tasks[0].steps[1] else {
        panic!("{:?}", tasks[0].steps[1])
    };
    assert_eq!(fetch.file_name, "pip-25.0.1-py3-none-any.whl");
    assert!(
        fetch
            .url
            .starts_with("https://files.pythonhosted.org/packages/")
    );
    assert_eq!(fetch.sha256.as_deref().map(str::len), Some(64));

    let wheel_pip = "/.salve/staging/pip-25.0.1-py3-none-any.whl/pip";
    let runs = runs(&tasks[0]);
    let install = argv(runs.last().unwrap());
    assert_eq!(
        install[..3],
        ["/app/.venv/bin/python", wheel_pip, "install"]
    );
    // pip 25.0.1 has --dry-run --report, so the review runs.
    assert!(argv(runs[2]).contains(&"--dry-run"));
    for command in runs
        .iter()
        .copied()
        .chain(tasks[0].checks.iter().map(|c| &c.command))
    {
        assert!(
            command
                .env
                .contains(&("SALVE_PIP".into(), wheel_pip.into())),
            "{command:?}"
        );
    }
}

#[test]
fn old_pips_skip_the_dry_run_review() {
    let tree = Tree::new();
    let site = "usr/local/lib/python3.9/site-packages";
    tree.file("usr/local/bin/python3.9", "")
        .dist(site, "pip", "21.2.4")
        .dist(site, "flask", "2.0.0");
    let found = packages(&tree);
    let updates = [update(
        &found,
        &format!("{site}/flask-2.0.0.dist-info/METADATA"),
        "2.2.5",
    )];

    let tasks = plan(&tree, &updates, &context()).unwrap();

    let runs = runs(&tasks[0]);
    assert_eq!(runs.len(), 3, "workdir, snapshot and install only");
    assert!(!argv(runs[2]).contains(&"--dry-run"));
    assert_eq!(tasks[0].checks.len(), 3);
}

#[test]
fn a_stale_path_falls_back_to_scope_and_key() {
    let tree = venv_tree();
    let found = packages(&tree);
    let mut stale = update(
        &found,
        &format!("{VENV_SITE}/urllib3-1.26.5.dist-info/METADATA"),
        "1.26.18",
    );
    stale.package.path = format!("{VENV_SITE}/urllib3-1.26.0.dist-info/METADATA");
    stale.package.name = "URLLib3".into();

    let tasks = plan(&tree, &[stale], &context()).unwrap();

    assert_eq!(*install(&tasks[0]).last().unwrap(), "URLLib3==1.26.18");
}

#[test]
fn bad_updates_are_refused_as_invalid_input() {
    let tree = Tree::new();
    tree.bookworm()
        .wheel(DEBIAN_LOCAL, "requests-2.25.1.dist-info", Some("pip"));
    let found = packages(&tree);
    let good = update(
        &found,
        &format!("{DEBIAN_LOCAL}/requests-2.25.1.dist-info/METADATA"),
        "2.31.0",
    );

    let mut bad_name = good.clone();
    bad_name.package.name = "--index-url=https://evil/".into();
    let mut bad_version = good.clone();
    bad_version.target = "2.31.0 --pre".into();
    let apt = update(
        &found,
        "usr/lib/python3/dist-packages/idna-3.3.egg-info/PKG-INFO",
        "3.7",
    );
    let mut missing = good.clone();
    missing.package.path = "nowhere/x-1.dist-info/METADATA".into();
    missing.package.scope = "nowhere".into();

    let refusal = |updates: &[PackageUpdate]| match plan(&tree, updates, &context()) {
        Err(Error::InvalidInput(why)) => why,
        other => panic!("{other:?}"),
    };
    assert!(refusal(&[bad_name]).contains("not a valid Python project name"));
    assert!(refusal(&[bad_version]).contains("is not a PEP 440 version"));
    assert!(refusal(&[apt]).contains("installed by apt as python3-idna"));
    assert!(refusal(&[missing]).contains("no copy of requests"));
    assert!(refusal(&[good.clone(), good]).contains("both move requests"));
}

#[test]
fn plans_need_the_network() {
    let tree = venv_tree();
    let found = packages(&tree);
    let updates = [update(
        &found,
        &format!("{VENV_SITE}/urllib3-1.26.5.dist-info/METADATA"),
        "1.26.18",
    )];
    let offline = PlanContext {
        network: false,
        ..context()
    };

    assert!(matches!(
        plan(&tree, &updates, &offline),
        Err(Error::Unsupported(_))
    ));
}
