//! The README's "Install on a cluster" and "Upgrade from the Go driver" commands, taken from the
//! README as written: the reference `skopeo copy` pushes is the archive `cargo xtask image`
//! writes, and the chart installed with the README's exact helm flags runs exactly that image.
//! (`cargo xtask image --check` pushes the same archive to a real registry; this closes the loop
//! to the chart.)

use super::*;

/// The shell lines of a README section's first `sh` block, continuation lines joined.
fn commands_of(section: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let start = readme
        .find(&format!("\n{section}\n"))
        .unwrap_or_else(|| panic!("the README has no section {section:?}"));
    let body = &readme[start..];
    let block_start = body.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let block = &body[block_start..block_start + body[block_start..].find("```").unwrap()];
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line.split(" # ").next().unwrap().trim_end();
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() && !current.trim_start().starts_with('#') {
                    lines.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
                }
                current.clear();
            }
        }
    }
    lines
}

/// `NAME=value` of a shell assignment among the commands.
fn variable(commands: &[String], name: &str) -> String {
    commands
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {commands:#?}"))
        .to_string()
}

fn command<'a>(commands: &'a [String], prefix: &str) -> &'a str {
    commands
        .iter()
        .find(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix} …` in {commands:#?}"))
}

/// The image `skopeo copy` pushes: checks the archive is the one `cargo xtask image` writes and
/// returns the destination reference.
fn pushed_reference(commands: &[String], registry: &str) -> String {
    assert!(
        commands.iter().any(|c| c == "cargo xtask image --release"),
        "the image is built with `cargo xtask image --release`: {commands:#?}"
    );
    let copy: Vec<&str> = command(commands, "skopeo copy").split(' ').collect();
    let [_, _, archive, destination] = copy.as_slice() else {
        panic!("skopeo copy SOURCE DESTINATION, found {copy:?}");
    };
    assert_eq!(
        *archive,
        format!(
            "oci-archive:target/image/cert-manager-csi-driver-{}.tar",
            app_version()
        ),
        "the archive `cargo xtask image` writes"
    );
    destination
        .strip_prefix("docker://")
        .expect("a docker:// destination")
        .replace("$REGISTRY", registry)
}

/// `helm template` with the flags of a README `helm install|upgrade` line.
fn render_as_readme(helm_command: &str, variables: &[(&str, &str)]) -> Rendered {
    let mut line = helm_command.to_string();
    for (name, value) in variables {
        line = line.replace(&format!("${name}"), value);
    }
    let words: Vec<&str> = line.split(' ').collect();
    let [
        "helm",
        "install" | "upgrade",
        release,
        "deploy/charts/cert-manager-csi-driver",
        flags @ ..,
    ] = words.as_slice()
    else {
        panic!("helm install|upgrade RELEASE deploy/charts/cert-manager-csi-driver …: {line}");
    };
    assert_eq!(*release, RELEASE);
    let mut kept: Vec<&str> = Vec::new();
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        match *flag {
            "--namespace" | "-n" => assert_eq!(flags.next(), Some(&NAMESPACE)),
            "--wait" => {}
            // `helm get values` of upstream's release: the upstream-style values file of the tests.
            "-f" => {
                assert_eq!(flags.next(), Some(&"upstream-values.yaml"));
                kept.extend(["-f", UPSTREAM_VALUES]);
            }
            "--set" => kept.extend(["--set", flags.next().expect("--set value")]),
            other => panic!("a helm flag this test does not know: {other} in {line}"),
        }
    }
    render(&kept)
}

fn driver_image(rendered: &Rendered) -> String {
    rendered.driver()["image"]
        .as_str()
        .expect("image")
        .to_string()
}

#[test]
fn install_on_a_cluster_runs_the_image_it_pushed() {
    let commands = commands_of("## Install on a cluster");
    let registry = variable(&commands, "REGISTRY");
    let pushed = pushed_reference(&commands, &registry);
    assert_eq!(
        pushed,
        format!("{registry}/cert-manager-csi-driver:{}", app_version())
    );
    let rendered = render_as_readme(
        command(&commands, "helm install"),
        &[("REGISTRY", &registry)],
    );
    assert_eq!(driver_image(&rendered), pushed);
    // The sample the section applies is one of the tested examples.
    assert!(
        commands
            .iter()
            .any(|c| c == "kubectl apply -f docs/examples/pod.yaml")
    );
}

#[test]
fn upgrade_from_the_go_driver_runs_the_image_it_pushed_with_upstreams_values() {
    let commands = commands_of("### Upgrade from the Go driver");
    let registry = variable(&commands, "REGISTRY");
    let release = variable(&commands, "RELEASE");
    assert_eq!(release, RELEASE);
    let pushed = pushed_reference(&commands, &registry);
    let rendered = render_as_readme(
        command(&commands, "helm upgrade"),
        &[("REGISTRY", &registry), ("RELEASE", &release)],
    );
    // upstream-values.yaml names quay.io/jetstack's image; the README's --set flags replace it.
    assert_eq!(driver_image(&rendered), pushed);
    assert!(
        command(&commands, "helm get values").contains("-o yaml > upstream-values.yaml"),
        "the values file the upgrade reads is the one `helm get values` wrote"
    );
}
