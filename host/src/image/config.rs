//! The image configuration: kept as the original JSON, with typed read access.
//!
//! salve never rebuilds a config from a model: fields it does not know (healthchecks,
//! `ArgsEscaped`, vendor extensions...) survive because the output is the input JSON with
//! fields appended.

use std::collections::BTreeMap;

use oci_spec::image::Digest;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Error;

/// An image configuration blob, validated once when the image is opened.
#[derive(Debug, Clone)]
pub struct Config {
    raw: Map<String, Value>,
    known: Known,
}

/// The fields salve reads, checked for type when the config is parsed.
#[derive(Debug, Clone, Default, Deserialize)]
struct Known {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    config: Option<Runtime>,
    rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Runtime {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RootFs {
    diff_ids: Vec<Digest>,
}

impl Config {
    /// Parses a config blob; `what` names it in errors ("config sha256:... in DIR").
    pub(crate) fn parse(bytes: &[u8], what: &str) -> Result<Config, Error> {
        let invalid = |field: String, reason: String| Error::InvalidField {
            file: what.to_owned(),
            field,
            reason,
        };
        let raw: Map<String, Value> = serde_json::from_slice(bytes)
            .map_err(|e| invalid("(document)".to_owned(), e.to_string()))?;
        let known: Known = serde_path_to_error::deserialize(Value::Object(raw.clone()))
            .map_err(|e| invalid(e.path().to_string(), e.inner().to_string()))?;
        Ok(Config { raw, known })
    }

    /// The config's JSON object as it was read (plus anything salve appended).
    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }

    /// The environment (`KEY=value` strings) the image's processes start with.
    pub fn env(&self) -> &[String] {
        self.runtime()
            .and_then(|r| r.env.as_deref())
            .unwrap_or_default()
    }

    /// The working directory, when the image sets one.
    pub fn working_dir(&self) -> Option<&str> {
        self.runtime()
            .and_then(|r| r.working_dir.as_deref())
            .filter(|s| !s.is_empty())
    }

    /// The user the image's processes run as, when the image sets one.
    pub fn user(&self) -> Option<&str> {
        self.runtime()
            .and_then(|r| r.user.as_deref())
            .filter(|s| !s.is_empty())
    }

    /// The operating system (`linux`).
    pub fn os(&self) -> &str {
        &self.known.os
    }

    /// The CPU architecture (`amd64`, `arm64`...).
    pub fn architecture(&self) -> &str {
        &self.known.architecture
    }

    /// The CPU variant (`v7`, `v8`), when given.
    pub fn variant(&self) -> Option<&str> {
        self.known.variant.as_deref()
    }

    /// The image's labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.runtime()
            .and_then(|r| r.labels.clone())
            .unwrap_or_default()
    }

    /// The uncompressed digests of the layers, bottom first.
    pub fn diff_ids(&self) -> &[Digest] {
        &self.known.rootfs.diff_ids
    }

    /// The number of `history` entries that describe a layer (not `empty_layer`).
    fn layer_history_positions(&self) -> Vec<usize> {
        let Some(Value::Array(history)) = self.raw.get("history") else {
            return Vec::new();
        };
        history
            .iter()
            .enumerate()
            .filter(|(_, h)| h.get("empty_layer").and_then(Value::as_bool) != Some(true))
            .map(|(i, _)| i)
            .collect()
    }

    fn runtime(&self) -> Option<&Runtime> {
        self.known.config.as_ref()
    }

    /// The config for a patched image: `keep` of the layers, then the new layer if any.
    ///
    /// History entries of dropped layers go, a history entry for the new layer is appended,
    /// labels are merged in and `created` is set. Every other field stays as it was.
    pub(crate) fn patched(
        &self,
        keep: usize,
        new_diff_id: Option<&Digest>,
        history_comment: &str,
        labels: &BTreeMap<String, String>,
        created: &str,
    ) -> Config {
        let mut raw = self.raw.clone();

        // rootfs.diff_ids: the kept layers, then the new one.
        let mut diff_ids: Vec<Value> = self.diff_ids()[..keep]
            .iter()
            .map(|d| Value::String(d.to_string()))
            .collect();
        diff_ids.extend(new_diff_id.map(|d| Value::String(d.to_string())));
        let rootfs = raw
            .entry("rootfs")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(rootfs) = rootfs {
            rootfs.insert("type".to_owned(), Value::String("layers".to_owned()));
            rootfs.insert("diff_ids".to_owned(), Value::Array(diff_ids));
        }

        // history: drop the entries of dropped layers (a previous salve patch), then add ours.
        let positions = self.layer_history_positions();
        let mut history = match raw.remove("history") {
            Some(Value::Array(history)) => history,
            _ => Vec::new(),
        };
        if positions.len() == self.diff_ids().len() && keep < positions.len() {
            history.truncate(positions[keep]);
        }
        if new_diff_id.is_some() {
            let mut entry = Map::new();
            entry.insert("created".to_owned(), Value::String(created.to_owned()));
            entry.insert(
                "created_by".to_owned(),
                Value::String("salve patch".to_owned()),
            );
            entry.insert(
                "comment".to_owned(),
                Value::String(history_comment.to_owned()),
            );
            history.push(Value::Object(entry));
        }
        raw.insert("history".to_owned(), Value::Array(history));

        // config.Labels: merged, ours winning.
        let runtime = raw
            .entry("config")
            .or_insert_with(|| Value::Object(Map::new()));
        if runtime.is_null() {
            *runtime = Value::Object(Map::new());
        }
        if let Value::Object(runtime) = runtime {
            let merged = runtime
                .entry("Labels")
                .or_insert_with(|| Value::Object(Map::new()));
            if merged.is_null() {
                *merged = Value::Object(Map::new());
            }
            if let Value::Object(merged) = merged {
                for (key, value) in labels {
                    merged.insert(key.clone(), Value::String(value.clone()));
                }
            }
        }

        raw.insert("created".to_owned(), Value::String(created.to_owned()));
        let mut known = self.known.clone();
        known.rootfs.diff_ids.truncate(keep);
        known.rootfs.diff_ids.extend(new_diff_id.cloned());
        let runtime = known.config.get_or_insert_with(Runtime::default);
        runtime
            .labels
            .get_or_insert_with(BTreeMap::new)
            .extend(labels.clone());
        Config { raw, known }
    }

    /// The JSON bytes of this config.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        // Serializing a map of JSON values cannot fail.
        serde_json::to_vec(&self.raw).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn config() -> Config {
        let json = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {
                "Env": ["PATH=/usr/bin"], "Cmd": ["bash"], "WorkingDir": "/app", "User": "1000",
                "Labels": {"a": "1"}, "ExposedPorts": {"80/tcp": {}},
                "Healthcheck": {"Test": ["CMD", "true"]}
            },
            "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
            "history": [
                {"created_by": "ADD rootfs"}, {"created_by": "ENV x", "empty_layer": true},
                {"created_by": "RUN apt-get"}
            ],
            "vendor.extension": 7
        });
        Config::parse(json.to_string().as_bytes(), "config").unwrap()
    }

    #[test]
    fn accessors_read_the_known_fields() {
        let c = config();
        assert_eq!(c.env(), ["PATH=/usr/bin"]);
        assert_eq!(c.working_dir(), Some("/app"));
        assert_eq!(c.user(), Some("1000"));
        assert_eq!(
            (c.os(), c.architecture(), c.variant()),
            ("linux", "amd64", None)
        );
        assert_eq!(c.labels()["a"], "1");
        assert_eq!(c.diff_ids().len(), 2);
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let json = br#"{"config": {"Env": ["A=1", 5]}, "rootfs": {"diff_ids": []}}"#;
        let err = Config::parse(json, "config blob X")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config blob X") && err.contains("config.Env[1]"),
            "{err}"
        );
        let json = br#"{"rootfs": {"diff_ids": ["sha256:zz"]}}"#;
        let err = Config::parse(json, "cfg").unwrap_err().to_string();
        assert!(err.contains("rootfs.diff_ids[0]"), "{err}");
    }

    #[test]
    fn patched_keeps_unknown_fields_and_appends_layer_history_and_labels() {
        let labels = BTreeMap::from([("salve.base.layers".to_owned(), "2".to_owned())]);
        let new = Digest::try_from(D3).unwrap();
        let c = config().patched(
            2,
            Some(&new),
            "fixed openssl",
            &labels,
            "2026-01-01T00:00:00Z",
        );
        let raw = Value::Object(c.raw().clone());
        assert_eq!(raw["vendor.extension"], 7);
        assert_eq!(raw["config"]["Healthcheck"]["Test"][1], "true");
        assert_eq!(
            raw["config"]["ExposedPorts"]["80/tcp"],
            serde_json::json!({})
        );
        assert_eq!(raw["config"]["Cmd"][0], "bash");
        assert_eq!(raw["rootfs"]["diff_ids"], serde_json::json!([D1, D2, D3]));
        assert_eq!(raw["history"].as_array().unwrap().len(), 4);
        assert_eq!(raw["history"][3]["comment"], "fixed openssl");
        assert_eq!(raw["created"], "2026-01-01T00:00:00Z");
        assert_eq!(c.labels()["a"], "1");
        assert_eq!(c.labels()["salve.base.layers"], "2");
    }

    #[test]
    fn patched_on_fewer_layers_drops_the_dropped_layers_history() {
        let new = Digest::try_from(D3).unwrap();
        let c = config().patched(1, Some(&new), "again", &BTreeMap::new(), "t");
        let raw = Value::Object(c.raw().clone());
        assert_eq!(raw["rootfs"]["diff_ids"], serde_json::json!([D1, D3]));
        let created_by: Vec<&str> = raw["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["created_by"].as_str().unwrap())
            .collect();
        assert_eq!(created_by, ["ADD rootfs", "ENV x", "salve patch"]);
    }
}
