//! Saving and loading models: one JSON file with the model's kind and format version.
//!
//! ```json
//! {"flint_model": "LogisticRegressionModel", "version": 1, "model": { ... }}
//! ```
//!
//! Loading a file of another kind or version is a clear error naming the file, what it holds
//! and what was expected.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{MlError, Result};

#[derive(Serialize, serde::Deserialize)]
struct Envelope<M> {
    flint_model: String,
    version: u32,
    model: M,
}

#[derive(serde::Deserialize)]
struct Header {
    flint_model: String,
    version: u32,
}

/// Writes `model` as `kind` (e.g. `"KMeansModel"`), format `version`, to `path`.
pub fn save_model<M: Serialize>(path: &Path, kind: &str, version: u32, model: &M) -> Result<()> {
    let file_err = |detail: String| MlError::ModelFile {
        path: path.to_path_buf(),
        detail,
    };
    let envelope = Envelope {
        flint_model: kind.to_string(),
        version,
        model,
    };
    let json = serde_json::to_vec_pretty(&envelope).map_err(|e| file_err(format!("cannot encode: {e}")))?;
    std::fs::write(path, json).map_err(|e| file_err(format!("cannot write: {e}")))
}

/// Reads a model saved by [`save_model`] as `kind`, format `version`.
pub fn load_model<M: DeserializeOwned>(path: &Path, kind: &str, version: u32) -> Result<M> {
    let file_err = |detail: String| MlError::ModelFile {
        path: path.to_path_buf(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| file_err(format!("cannot read: {e}")))?;
    let header: Header =
        serde_json::from_slice(&bytes).map_err(|e| file_err(format!("not a flint model file ({e})")))?;
    if header.flint_model != kind {
        return Err(file_err(format!(
            "holds a {} but a {kind} was expected",
            header.flint_model
        )));
    }
    if header.version != version {
        return Err(file_err(format!(
            "is a {kind} of format version {}; this build reads version {version}",
            header.version
        )));
    }
    let envelope: Envelope<M> = serde_json::from_slice(&bytes).map_err(|e| file_err(format!("damaged {kind}: {e}")))?;
    Ok(envelope.model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_round_trip_and_other_kinds_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        save_model(&path, "KMeansModel", 1, &vec![1.0, 2.0]).unwrap();
        let back: Vec<f64> = load_model(&path, "KMeansModel", 1).unwrap();
        assert_eq!(back, vec![1.0, 2.0]);
        let e = load_model::<Vec<f64>>(&path, "LogisticRegressionModel", 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds a KMeansModel") && e.contains("m.json"), "{e}");
        let e = load_model::<Vec<f64>>(&path, "KMeansModel", 2).unwrap_err().to_string();
        assert!(e.contains("version 1"), "{e}");
    }
}
