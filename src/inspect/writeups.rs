//! The language model's answers to the write-up prompts, kept in
//! `<out>/writeups.json` as they arrive:
//!
//! ```json
//! {"units": {"0:5": "text"}, "layers": {"0": "text"}, "network": "text"}
//! ```
//!
//! A unit's key is `LAYER:UNIT` and a layer's `LAYER`, the layer numbered
//! as in the model spec (as `inspect --unit LAYER:UNIT` takes it): the
//! layer's node name without the leading `layers.` ([`layer_key`]), so a
//! layer inside a residual block is `3.body.0`. The unit index is as in
//! the report (for a conv layer, the channel). `"network"` is absent until
//! the network prompt is answered. The report shows each text, HTML-escaped,
//! beside what it describes (the unit pages, the layer sections). The file is
//! rewritten whole, atomically, after every answer, so an interrupted run
//! leaves every answer received so far and a rerun asks only for the rest.

use crate::checkpoint::write_atomically;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The file's name inside inspect's `--out`.
pub const FILE: &str = "writeups.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Writeups {
    #[serde(default)]
    pub units: BTreeMap<String, String>,
    #[serde(default)]
    pub layers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// `"LAYER:UNIT"` for the top-level layer at spec index `layer`.
pub fn unit_key(layer: usize, unit: usize) -> String {
    format!("{layer}:{unit}")
}

/// The key of the layer whose node is named `node_name` (`layers.3` →
/// `"3"`, `layers.3.body.0` → `"3.body.0"`).
pub fn layer_key(node_name: &str) -> String {
    node_name
        .strip_prefix("layers.")
        .unwrap_or(node_name)
        .to_string()
}

/// The key of unit `unit` of the layer whose node is named `node_name`.
pub fn node_unit_key(node_name: &str, unit: usize) -> String {
    format!("{}:{unit}", layer_key(node_name))
}

impl Writeups {
    /// The answers in `path`, or none when it does not exist.
    pub fn load(path: &Path) -> Result<Writeups> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Writeups::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a write-ups file: expected {{\"units\": {{\"LAYER:UNIT\": text}}, \"layers\": {{\"LAYER\": text}}, \"network\": text}}; move it away to start the write-ups afresh",
                path.display()
            )
        })
    }

    /// The answers in `dir/writeups.json` (see [`Writeups::load`]).
    pub fn load_dir(dir: &Path) -> Result<Writeups> {
        Writeups::load(&dir.join(FILE))
    }

    /// Writes all answers to `path` (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        write_atomically(path, text.as_bytes())
    }

    pub fn unit(&self, layer: usize, unit: usize) -> Option<&str> {
        self.units.get(&unit_key(layer, unit)).map(String::as_str)
    }

    pub fn layer(&self, layer: usize) -> Option<&str> {
        self.layers.get(&layer.to_string()).map(String::as_str)
    }

    /// The write-up of a unit of the layer whose node is named `node_name`.
    pub fn unit_of(&self, node_name: &str, unit: usize) -> Option<&str> {
        self.units
            .get(&node_unit_key(node_name, unit))
            .map(String::as_str)
    }

    /// The write-up of the layer whose node is named `node_name`.
    pub fn layer_of(&self, node_name: &str) -> Option<&str> {
        self.layers.get(&layer_key(node_name)).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty() && self.layers.is_empty() && self.network.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_has_the_agreed_shape_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        assert_eq!(Writeups::load(&path).unwrap(), Writeups::default());
        let mut w = Writeups::default();
        w.units.insert(unit_key(0, 5), "loops".into());
        w.layers.insert("0".into(), "strokes".into());
        w.save(&path).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"units": {"0:5": "loops"}, "layers": {"0": "strokes"}})
        );
        w.network = Some("votes".into());
        w.save(&path).unwrap();
        let back = Writeups::load(&path).unwrap();
        assert_eq!(back, w);
        assert_eq!(back.unit(0, 5), Some("loops"));
        assert_eq!(back.layer(0), Some("strokes"));
    }

    #[test]
    fn node_names_give_the_keys_of_the_file() {
        assert_eq!(node_unit_key("layers.3", 12), "3:12");
        assert_eq!(node_unit_key("layers.3.body.0", 1), "3.body.0:1");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            r#"{"units": {"0:5": "loops <b>"}, "network": "digits"}"#,
        )
        .unwrap();
        let w = Writeups::load_dir(dir.path()).unwrap();
        assert_eq!(w.unit_of("layers.0", 5), Some("loops <b>"));
        assert_eq!(w.unit_of("layers.0", 6), None);
        assert_eq!(w.network.as_deref(), Some("digits"));
        for bad in [r#"{"units": ["a"]}"#, "not json", r#"{"unit": {}}"#] {
            std::fs::write(dir.path().join(FILE), bad).unwrap();
            let e = format!("{:#}", Writeups::load_dir(dir.path()).unwrap_err());
            assert!(e.contains("writeups.json") && e.contains("expected"), "{e}");
        }
    }

    #[test]
    fn a_damaged_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, "{\"units\": [").unwrap();
        let err = format!("{:#}", Writeups::load(&path).unwrap_err());
        assert!(
            err.contains("writeups.json") && err.contains("afresh"),
            "{err}"
        );
    }
}
