//! Plan shapes on directories standing in for images.

mod common;

use common::{TestImage, answers, at, detect, detect_with};
use salve_plugin_npm::Npm;
use salve_plugin_sdk::{
    Answers, Command, Error, InstalledPackage, Origin, OutputMatch, PackageUpdate, PlanContext,
    Planned, Plugin, Probe, ProbeResult, Step, Task,
};
use serde_json::{Value, json};

fn context() -> PlanContext {
    PlanContext {
        staging_dir: "/.salve/staging".into(),
        ca_bundle: Some("/.salve/ca.pem".into()),
        sources: vec!["https://registry.npmjs.org/".into()],
        network: true,
        ..PlanContext::default()
    }
}

fn update(found: &[InstalledPackage], path: &str, target: &str) -> PackageUpdate {
    PackageUpdate {
        package: at(found, path).clone(),
        target: target.into(),
        vulnerabilities: vec!["GHSA-test".into()],
    }
}

fn plan(image: &TestImage, updates: &[PackageUpdate], context: &PlanContext) -> Vec<Task> {
    plan_with(image, updates, context, &Answers::default())
}

fn plan_with(
    image: &TestImage,
    updates: &[PackageUpdate],
    context: &PlanContext,
    answers: &Answers,
) -> Vec<Task> {
    match Npm::plan(&image.image(), updates, context, answers) {
        Ok(Planned::Tasks(tasks)) => tasks,
        other => panic!("plan answered {other:?}"),
    }
}

fn probes(image: &TestImage, updates: &[PackageUpdate]) -> Vec<Probe> {
    match Npm::plan(&image.image(), updates, &context(), &Answers::default()) {
        Ok(Planned::Probes(probes)) => probes,
        other => panic!("plan answered {other:?}"),
    }
}

/// The dry run's answer: the copies the direct moves would leave.
fn dry_run_answer(copies: Value) -> Answers {
    Answers(vec![ProbeResult {
        id: "dry-run:/app".into(),
        exit_code: 0,
        stdout: json!({ "copies": copies }).to_string(),
        stderr: String::new(),
    }])
}

fn plan_err(image: &TestImage, updates: &[PackageUpdate]) -> Error {
    Npm::plan(&image.image(), updates, &context(), &Answers::default()).unwrap_err()
}

/// The commands of a task's run steps.
fn runs(task: &Task) -> Vec<&Command> {
    task.steps
        .iter()
        .map(|s| match s {
            Step::Run(c) => c,
            other => panic!("unexpected step {other:?}"),
        })
        .collect()
}

/// A command's words, with scripts' sources elided.
fn words(command: &Command) -> Vec<String> {
    let mut out: Vec<String> = command.argv.clone();
    if out.get(1).map(String::as_str) == Some("-e") {
        out[2] = "<script>".into();
    }
    out
}

/// The edits JSON of each `manifest.js` step.
fn edits(task: &Task) -> Vec<Value> {
    runs(task)
        .into_iter()
        .filter(|c| c.argv.get(3).map(String::as_str) == Some("edit"))
        .map(|c| serde_json::from_str(&c.argv[5]).unwrap())
        .collect()
}

/// The npm installs of a task.
fn installs(task: &Task) -> Vec<Vec<String>> {
    runs(task)
        .into_iter()
        .filter(|c| c.argv[0] == "npm")
        .map(words)
        .collect()
}

const BASE: [&str; 10] = [
    "npm",
    "install",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--cache",
    "/.salve/staging/npm-cache",
    "--cafile",
    "/.salve/ca.pem",
    "--include=dev",
];

/// The demo application's updates at the minor level: express and lodash
/// (direct), qs and both minimists (transitive).
fn demo_updates(found: &[InstalledPackage]) -> Vec<PackageUpdate> {
    vec![
        update(found, "app/node_modules/qs/package.json", "6.7.3"),
        update(found, "app/node_modules/express/package.json", "4.19.2"),
        update(found, "app/node_modules/minimist/package.json", "0.2.4"),
        update(
            found,
            "app/node_modules/rc/node_modules/minimist/package.json",
            "1.2.6",
        ),
        update(found, "app/node_modules/lodash/package.json", "4.17.21"),
    ]
}

#[test]
fn direct_and_transitive_moves_together_ask_for_a_dry_run_of_the_direct_ones() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);
    let probes = probes(&image, &demo_updates(&found));
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0].id, "dry-run:/app");
    let argv = words(&probes[0].command);
    assert_eq!(
        argv[3..6],
        ["dry-run", "/app", "/.salve/staging/npm-dry-run"]
    );
    let edits: Value = serde_json::from_str(&argv[6]).unwrap();
    assert_eq!(
        edits["specs"],
        json!([
            ["dependencies", "express", "4.19.2"],
            ["devDependencies", "lodash", "4.17.21"]
        ])
    );
    assert_eq!(argv[7], r#"["minimist","qs"]"#);
    assert_eq!(argv[8..], BASE[2..]);
}

#[test]
fn after_a_dry_run_direct_moves_come_first_and_what_they_fix_is_only_checked() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);
    // express 4.19.2 brings qs 6.11.0; the minimists stay where they were.
    let answers = dry_run_answer(json!([
        {"name": "qs", "location": "node_modules/qs", "version": "6.11.0", "dependents": [
            {"location": "node_modules/express", "name": "express", "version": "4.19.2"},
            {"location": "node_modules/body-parser", "name": "body-parser", "version": "1.20.2"}]},
        {"name": "minimist", "location": "node_modules/minimist", "version": "0.0.8",
         "dependents": [{"location": "node_modules/mkdirp", "name": "mkdirp", "version": "0.5.1"}]},
        {"name": "minimist", "location": "node_modules/rc/node_modules/minimist",
         "version": "1.2.0",
         "dependents": [{"location": "node_modules/rc", "name": "rc", "version": "1.2.8"}]},
    ]));
    let tasks = plan_with(&image, &demo_updates(&found), &context(), &answers);
    let shape: Vec<(&str, &[u32])> = tasks
        .iter()
        .map(|t| (t.description.as_str(), t.updates.as_slice()))
        .collect();
    assert_eq!(
        shape,
        [
            (
                "move express 4.17.1 to 4.19.2 in /app (dependencies \"^4.17.1\" -> \"^4.19.2\")",
                &[1][..]
            ),
            (
                "move lodash 4.17.15 to 4.17.21 in /app (devDependencies \"4.17.15\" -> \"4.17.21\")",
                &[4][..]
            ),
            (
                "pin minimist 0.0.8 to 0.2.4, 1.2.0 to 1.2.6 in /app (npm overrides)",
                &[2, 3][..]
            ),
            (
                "check qs in /app: 6.7.0 replaced by the direct moves",
                &[0][..]
            ),
        ]
    );
    let qs = &tasks[3];
    assert!(qs.steps.is_empty());
    assert_eq!(qs.checks.len(), 1);
    assert_eq!(
        words(&qs.checks[0].command)[3..],
        ["fixed", "/app", "node_modules/qs", "6.7.3"]
    );
    assert_eq!(qs.checks[0].stdout, OutputMatch::Equals("fixed".into()));
}

#[test]
fn a_copy_a_direct_move_leaves_below_its_target_is_pinned_under_the_new_parent() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);
    let updates = [
        update(&found, "app/node_modules/cookie/package.json", "0.7.0"),
        update(&found, "app/node_modules/express/package.json", "4.20.0"),
    ];
    // express 4.20.0 pins cookie 0.6.0: still below the fix.
    let answers = dry_run_answer(json!([
        {"name": "cookie", "location": "node_modules/cookie", "version": "0.6.0", "dependents": [
            {"location": "node_modules/express", "name": "express", "version": "4.20.0"}]},
    ]));
    let tasks = plan_with(&image, &updates, &context(), &answers);
    assert_eq!(
        tasks[1].description,
        "pin cookie 0.6.0 to 0.7.0 in /app (npm overrides)"
    );
    assert_eq!(
        edits(&tasks[1]),
        [json!({"specs": [], "remove": [], "overrides": [
            [["express@4.20.0", "."], "$express"],
            [["express@4.20.0", "cookie"], "0.7.0"],
        ]})]
    );
    assert_eq!(
        words(&tasks[1].checks[0].command)[3..],
        ["versions", "/app", "cookie", "node_modules/express"]
    );
}

#[test]
fn a_failed_dry_run_falls_back_to_pinning_what_is_installed_today() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);
    let mut answers = dry_run_answer(json!([]));
    answers.0[0].exit_code = 1;
    answers.0[0].stderr = "npm ERR! code ERESOLVE".into();
    let tasks = plan_with(&image, &demo_updates(&found), &context(), &answers);
    let descriptions: Vec<&str> = tasks.iter().map(|t| t.description.as_str()).collect();
    assert_eq!(
        descriptions,
        [
            "pin minimist 0.0.8 to 0.2.4, 1.2.0 to 1.2.6 in /app (npm overrides)",
            "pin qs 6.7.0 to 6.7.3 in /app (npm overrides)",
            "move express 4.17.1 to 4.19.2 in /app (dependencies \"^4.17.1\" -> \"^4.19.2\")",
            "move lodash 4.17.15 to 4.17.21 in /app (devDependencies \"4.17.15\" -> \"4.17.21\")",
        ]
    );
}

#[test]
fn an_unreadable_dry_run_answer_also_falls_back() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);
    let mut answers = dry_run_answer(json!([]));
    answers.0[0].stdout = "npm WARN something\n{\"copies\": [".into();
    let tasks = plan_with(&image, &demo_updates(&found), &context(), &answers);
    assert_eq!(
        tasks[1].description,
        "pin qs 6.7.0 to 6.7.3 in /app (npm overrides)"
    );
}

#[test]
fn transitive_packages_are_pinned_before_the_packages_that_require_them() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);
    let updates = [
        update(
            &found,
            "app/node_modules/body-parser/package.json",
            "1.20.3",
        ),
        update(&found, "app/node_modules/qs/package.json", "6.7.3"),
        update(&found, "app/node_modules/cookie/package.json", "0.7.0"),
    ];
    let tasks = plan(&image, &updates, &context());
    let descriptions: Vec<&str> = tasks.iter().map(|t| t.description.as_str()).collect();
    assert_eq!(
        descriptions,
        [
            "pin cookie 0.4.0 to 0.7.0 in /app (npm overrides)",
            "pin qs 6.7.0 to 6.7.3 in /app (npm overrides)",
            "pin body-parser 1.19.0 to 1.20.3 in /app (npm overrides)",
        ]
    );
}

#[test]
fn npm_9_pins_through_each_dependent_and_references_direct_ones() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);
    let updates = [
        update(&found, "app/node_modules/qs/package.json", "6.7.3"),
        update(&found, "app/node_modules/minimist/package.json", "0.2.4"),
        update(
            &found,
            "app/node_modules/rc/node_modules/minimist/package.json",
            "1.2.6",
        ),
    ];
    let tasks = plan(&image, &updates, &context());
    assert_eq!(
        edits(&tasks[0]),
        [json!({"specs": [], "remove": [], "overrides": [
            [["mkdirp@0.5.1", "."], "$mkdirp"],
            [["mkdirp@0.5.1", "minimist"], "0.2.4"],
            [["rc@1.2.8", "."], "$rc"],
            [["rc@1.2.8", "minimist"], "1.2.6"],
        ]})]
    );
    assert_eq!(
        edits(&tasks[1]),
        [json!({"specs": [], "remove": [], "overrides": [
            [["body-parser@1.19.0", "qs"], "6.7.3"],
            [["express@4.17.1", "."], "$express"],
            [["express@4.17.1", "qs"], "6.7.3"],
        ]})]
    );
    assert_eq!(installs(&tasks[1]), [BASE.to_vec()]);
    let install = runs(&tasks[1])[2];
    assert_eq!(install.cwd.as_deref(), Some("/app"));
    assert!(
        install
            .env
            .contains(&("npm_config_update_notifier".into(), "false".into()))
    );
}

#[test]
fn npm_11_2_pins_with_a_version_selector() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect_with(&image, &answers("11.2.0", "v22.14.0"));
    let updates = [update(&found, "app/node_modules/qs/package.json", "6.7.3")];
    let tasks = plan(&image, &updates, &context());
    assert_eq!(
        edits(&tasks[0]),
        [json!({"specs": [], "remove": [], "overrides": [[["qs@6.7.0"], "6.7.3"]]})]
    );
}

#[test]
fn every_task_checks_what_dependents_load_npm_ls_the_tree_and_the_lockfile() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);
    let updates = [update(&found, "app/node_modules/qs/package.json", "6.7.3")];
    let task = &plan(&image, &updates, &context())[0];

    let steps: Vec<Vec<String>> = runs(task)
        .into_iter()
        .map(|c| words(c).into_iter().take(4).collect())
        .collect();
    assert_eq!(
        steps,
        [
            vec!["node", "-e", "<script>", "snapshot"],
            vec!["node", "-e", "<script>", "edit"],
            vec!["npm", "install", "--ignore-scripts", "--no-audit"],
            vec!["node", "-e", "<script>", "forget"],
            vec!["node", "-e", "<script>", "stage-lock"],
        ]
    );

    let checks: Vec<(&str, Vec<String>, &OutputMatch)> = task
        .checks
        .iter()
        .map(|c| (c.description.as_str(), words(&c.command), &c.stdout))
        .collect();
    assert_eq!(checks[0].0, "what required qs in /app loads 6.7.3");
    assert_eq!(
        checks[0].1[3..],
        [
            "versions",
            "/app",
            "qs",
            "node_modules/body-parser",
            "node_modules/express"
        ]
    );
    assert_eq!(checks[0].2, &OutputMatch::Equals("6.7.3".into()));
    assert_eq!(checks[1].0, "npm ls is clean in /app");
    assert_eq!(checks[1].1[..3], ["npm", "ls", "--all"]);
    assert_eq!(checks[1].1.last().unwrap(), "--include=dev");
    assert_eq!(
        checks[2].0,
        "only the targets and what they need changed in /app"
    );
    let targets: Value = serde_json::from_str(&checks[2].1[6]).unwrap();
    assert_eq!(
        targets,
        json!([{"name": "qs", "location": "node_modules/qs", "version": "6.7.3",
                "dependents": [{"location": "node_modules/body-parser", "version": "1.19.0"},
                               {"location": "node_modules/express", "version": "4.17.1"}]}])
    );
    assert_eq!(
        checks[3].0,
        "package-lock.json agrees with package.json in /app (npm ci --dry-run)"
    );
    assert_eq!(checks[3].1[..3], ["npm", "ci", "--dry-run"]);
    assert_eq!(
        task.checks[3].command.cwd.as_deref(),
        Some("/.salve/staging/npm-ci")
    );
}

#[test]
fn a_direct_dependency_is_installed_exactly_then_written_in_the_users_style() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);
    let updates = [update(
        &found,
        "app/node_modules/express/package.json",
        "4.19.2",
    )];
    let task = &plan(&image, &updates, &context())[0];
    assert_eq!(
        edits(task),
        [
            json!({"specs": [["dependencies", "express", "4.19.2"]], "overrides": [], "remove": []}),
            json!({"specs": [["dependencies", "express", "^4.19.2"]], "overrides": [], "remove": []}),
        ]
    );
    let mut lock_only = BASE.to_vec();
    lock_only.push("--package-lock-only");
    assert_eq!(installs(task), [BASE.to_vec(), lock_only]);
}

#[test]
fn development_dependencies_not_on_disk_stay_off_disk() {
    let image = TestImage::app("app/package-lock.json", false);
    let found = detect(&image);
    let updates = [update(&found, "app/node_modules/qs/package.json", "6.7.3")];
    let task = &plan(&image, &updates, &context())[0];
    let install = &installs(task)[0];
    assert_eq!(install.last().unwrap(), "--omit=dev");
    assert!(!install.contains(&"--include=dev".to_string()));
}

#[test]
fn a_project_without_a_lockfile_gets_none() {
    let image = TestImage::app("app/package-lock.json", true);
    std::fs::remove_file(image.root().join("app/package-lock.json")).unwrap();
    let found = detect(&image);
    let updates = [update(&found, "app/node_modules/qs/package.json", "6.7.3")];
    let task = &plan(&image, &updates, &context())[0];
    assert!(installs(task)[0].contains(&"--no-package-lock".to_string()));
    assert!(
        task.checks
            .iter()
            .all(|c| !c.description.contains("npm ci"))
    );
}

#[test]
fn the_hidden_lockfile_is_kept_where_the_image_had_one() {
    let image = TestImage::app("app/package-lock.json", true);
    image.write("app/node_modules/.package-lock.json", "{}");
    let found = detect(&image);
    let updates = [update(&found, "app/node_modules/qs/package.json", "6.7.3")];
    let task = &plan(&image, &updates, &context())[0];
    assert!(
        runs(task)
            .iter()
            .all(|c| c.argv.get(3).map(String::as_str) != Some("forget"))
    );
}

#[test]
fn a_global_package_moves_with_install_g_and_its_dependency_inside_its_tree() {
    let image = TestImage::new();
    image.copy_tree("global/mkdirp", "usr/local/lib/node_modules/mkdirp");
    image.write("usr/local/bin/npm", "");
    let found = detect(&image);

    let moved = plan(
        &image,
        &[update(
            &found,
            "usr/local/lib/node_modules/mkdirp/package.json",
            "0.5.6",
        )],
        &context(),
    );
    assert_eq!(
        moved[0].description,
        "npm install -g mkdirp@0.5.6 (was 0.5.1)"
    );
    let install = &installs(&moved[0])[0];
    assert_eq!(install[..4], ["npm", "install", "-g", "mkdirp@0.5.6"]);
    assert_eq!(install[install.len() - 2..], ["--prefix", "/usr/local"]);
    assert_eq!(
        moved[0].checks[0].stdout,
        OutputMatch::Equals("0.5.6".into())
    );

    let inner = plan(
        &image,
        &[update(
            &found,
            "usr/local/lib/node_modules/mkdirp/node_modules/minimist/package.json",
            "0.2.4",
        )],
        &context(),
    );
    let task = &inner[0];
    assert_eq!(
        task.description,
        "move minimist 0.0.8 to 0.2.4 in /usr/local/lib/node_modules/mkdirp \
         (dependencies \"0.0.8\" -> \"0.2.4\")"
    );
    let install = &installs(task)[0];
    assert_eq!(
        install[install.len() - 2..],
        ["--omit=dev", "--no-package-lock"]
    );
    assert_eq!(
        runs(task)[2].cwd.as_deref(),
        Some("/usr/local/lib/node_modules/mkdirp")
    );
}

#[test]
fn sources_other_than_the_default_become_the_registry() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);
    let updates = [update(&found, "app/node_modules/qs/package.json", "6.7.3")];
    let mut mirror = context();
    mirror.sources = vec!["https://npm.example.com/repository/npm/".into()];
    mirror.ca_bundle = None;
    let install = &installs(&plan(&image, &updates, &mirror)[0])[0];
    let at = install.iter().position(|w| w == "--registry").unwrap();
    assert_eq!(install[at + 1], "https://npm.example.com/repository/npm/");
    assert!(!install.contains(&"--cafile".to_string()));
}

#[test]
fn updates_that_must_not_reach_npm_are_refused_with_their_path() {
    let image = TestImage::app("app/package-lock.json", true);
    let found = detect(&image);
    let qs = update(&found, "app/node_modules/qs/package.json", "6.7.3");

    let mut bad_target = qs.clone();
    bad_target.target = "6.7.3; rm -rf /".into();
    let err = plan_err(&image, &[bad_target]).to_string();
    assert!(
        err.contains("/app/node_modules/qs/package.json: target"),
        "{err}"
    );

    let mut bad_name = qs.clone();
    bad_name.package.name = "--registry=http://evil".into();
    assert!(matches!(
        plan_err(&image, &[bad_name]),
        Error::InvalidInput(_)
    ));

    let mut foreign = qs.clone();
    foreign.package.origin = Origin::Foreign("installed by apt as node-qs".into());
    let err = plan_err(&image, &[foreign]).to_string();
    assert!(err.contains("not a copy salve may move"), "{err}");

    let mut stale = qs.clone();
    stale.package.version = "6.5.2".into();
    let err = plan_err(&image, &[stale]).to_string();
    assert!(
        err.contains("the image has version 6.7.0; detect again"),
        "{err}"
    );
}
