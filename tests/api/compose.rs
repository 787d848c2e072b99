//! docker-compose.yml and the Dockerfile, checked for structure (no Docker engine runs here):
//! the same topology the process tests run natively.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::fixtures::test_python;

fn compose() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml");
    // PyYAML (a schemathesis dependency in the test venv) resolves anchors and merge keys.
    let out = std::process::Command::new(test_python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn compose_runs_postgres_minio_an_api_and_scalable_workers() {
    let c = compose();
    let services = c["services"].as_object().unwrap();
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    for needed in [
        "postgres",
        "minio",
        "create-bucket",
        "migrate",
        "api",
        "worker",
    ] {
        assert!(names.contains(needed), "service {needed} in {names:?}");
    }
    for role in ["migrate", "api", "worker"] {
        let s = &services[role];
        assert_eq!(s["build"], ".", "{role} builds the Dockerfile");
        assert_eq!(s["command"][0], role);
        let env = &s["environment"];
        let db = env["DATABASE_URL"].as_str().unwrap();
        assert!(
            db.starts_with("postgres://") && db.contains("@postgres:5432/"),
            "{role}: {db}"
        );
        let store = env["STORAGE_URL"].as_str().unwrap();
        assert!(
            store.starts_with("s3://offload?") && store.contains("endpoint=http://minio:9000"),
            "{role}: {store}"
        );
        assert_eq!(
            env["AWS_ACCESS_KEY_ID"], services["minio"]["environment"]["MINIO_ROOT_USER"],
            "{role}"
        );
        assert_eq!(
            env["AWS_SECRET_ACCESS_KEY"], services["minio"]["environment"]["MINIO_ROOT_PASSWORD"],
            "{role}"
        );
    }
    for role in ["api", "worker"] {
        let deps = &services[role]["depends_on"];
        assert_eq!(deps["postgres"]["condition"], "service_healthy", "{role}");
        assert_eq!(
            deps["migrate"]["condition"], "service_completed_successfully",
            "{role}"
        );
        assert_eq!(
            deps["create-bucket"]["condition"], "service_completed_successfully",
            "{role}"
        );
    }
    for healthy in ["postgres", "minio", "api", "worker"] {
        assert!(
            services[healthy]["healthcheck"]["test"].is_array(),
            "{healthy} has a healthcheck"
        );
    }
    assert!(
        services["api"]["healthcheck"]["test"]
            .to_string()
            .contains("/readyz")
    );
    let api_env = &services["api"]["environment"];
    assert_eq!(api_env["BIND_ADDR"], "0.0.0.0:8080");
    // Beyond loopback the service wants API keys; compose insists the user provides them.
    let keys = api_env["API_KEYS"].as_str().unwrap();
    assert!(keys.starts_with("${OFFLOAD_API_KEYS:?"), "{keys}");
    let mut settings = offload::settings::Settings::defaults();
    settings.http.bind = api_env["BIND_ADDR"].as_str().unwrap().parse().unwrap();
    settings.http.board = api_env["BOARD_ADDR"].as_str().unwrap().parse().unwrap();
    assert!(
        settings.validate().is_err(),
        "without keys it would refuse to start"
    );
    settings.http.api_keys = "a-key".parse().unwrap();
    settings.validate().expect("with a key it starts");
    // Workers convert in a bubblewrap sandbox: the container must allow user namespaces.
    let opts = services["worker"]["security_opt"].to_string();
    assert!(opts.contains("seccomp=unconfined"), "{opts}");
    // `--scale worker=4` needs a worker without fixed host ports or container name.
    assert!(
        services["worker"].get("ports").is_none()
            && services["worker"].get("container_name").is_none()
    );
}

#[test]
fn the_image_installs_libreoffice_and_the_fonts_the_scripts_install() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let lib = std::fs::read_to_string(root.join("scripts/lib.sh")).unwrap();
    let list = lib
        .split("LIBREOFFICE_PACKAGES=(")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let packages: Vec<&str> = list.split_whitespace().collect();
    assert!(packages.len() >= 7, "{packages:?}");
    for p in packages {
        assert!(dockerfile.contains(p), "the Dockerfile installs {p}");
    }
    assert!(dockerfile.contains(r#"ENTRYPOINT ["offload"]"#));
}
