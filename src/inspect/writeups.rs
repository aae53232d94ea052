//! Write-ups of units, layers and the network, written by the language-model
//! pipeline into `<out>/writeups.json` and shown by the report beside what
//! they describe.
//!
//! The file's shape:
//!
//! ```json
//! {"units": {"0:5": "…", "3.body.0:12": "…"}, "layers": {"0": "…"}, "network": "…"}
//! ```
//!
//! A layer's key is [`layer_key`]: its node's name without the leading
//! `layers.` — the spec index for a top-level layer, as in `inspect --unit
//! LAYER:UNIT` (`layers.3` → `"3"`), the nested path inside a residual
//! block (`layers.3.body.0` → `"3.body.0"`). A unit's key is
//! `"<layer key>:<unit index>"`, the unit index as in the report (for a
//! conv layer, the channel). Every part is optional; the text is plain
//! text (it is HTML-escaped when shown).

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The file's name inside the report's directory.
pub const FILE: &str = "writeups.json";

/// What `writeups.json` holds; empty when there is no file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Writeups {
    #[serde(default)]
    pub units: HashMap<String, String>,
    #[serde(default)]
    pub layers: HashMap<String, String>,
    #[serde(default)]
    pub network: Option<String>,
}

/// The key of the layer whose node is named `node_name` (`layers.3` →
/// `"3"`).
pub fn layer_key(node_name: &str) -> String {
    node_name
        .strip_prefix("layers.")
        .unwrap_or(node_name)
        .to_string()
}

/// The key of unit `unit` of that layer (`"3:12"`).
pub fn unit_key(node_name: &str, unit: usize) -> String {
    format!("{}:{unit}", layer_key(node_name))
}

impl Writeups {
    /// Reads `dir/writeups.json`: empty when absent, an error naming the
    /// file when it cannot be read or is not of the shape above.
    pub fn load(dir: &Path) -> Result<Writeups> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Writeups::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a write-up file: expected {{\"units\": {{\"LAYER:UNIT\": text}}, \
                 \"layers\": {{\"LAYER\": text}}, \"network\": text}}",
                path.display()
            )
        })
    }

    pub fn unit(&self, node_name: &str, unit: usize) -> Option<&str> {
        self.units
            .get(&unit_key(node_name, unit))
            .map(String::as_str)
    }

    pub fn layer(&self, node_name: &str) -> Option<&str> {
        self.layers.get(&layer_key(node_name)).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_absent_present_and_malformed_files() {
        assert_eq!(unit_key("layers.3", 12), "3:12");
        assert_eq!(unit_key("layers.3.body.0", 1), "3.body.0:1");
        let dir = tempfile::tempdir().unwrap();
        let none = Writeups::load(dir.path()).unwrap();
        assert!(none.units.is_empty() && none.network.is_none());

        std::fs::write(
            dir.path().join(FILE),
            r#"{"units": {"0:5": "loops <b>"}, "network": "digits"}"#,
        )
        .unwrap();
        let w = Writeups::load(dir.path()).unwrap();
        assert_eq!(w.unit("layers.0", 5), Some("loops <b>"));
        assert_eq!(w.unit("layers.0", 6), None);
        assert_eq!(w.network.as_deref(), Some("digits"));

        for bad in [r#"{"units": ["a"]}"#, "not json", r#"{"unit": {}}"#] {
            std::fs::write(dir.path().join(FILE), bad).unwrap();
            let e = format!("{:#}", Writeups::load(dir.path()).unwrap_err());
            assert!(e.contains("writeups.json") && e.contains("expected"), "{e}");
        }
    }
}
