//! What identifies a build: a hash of the running executable.
//!
//! Executors must run the *same build* as their driver: tasks name code by its position in the
//! executable (`flint_engine::code_identity`). Every connection starts by comparing this hash
//! (and the protocol version); a mismatch is refused with both sides' paths and hashes.

use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

/// This process's executable and the hash of its contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildId {
    /// Path of the executable.
    pub executable: PathBuf,
    /// blake3 hash of its bytes, hex (the first 16 digits are enough to show).
    pub hash: String,
}

impl BuildId {
    /// A short form for messages.
    pub fn short(&self) -> &str {
        &self.hash[..16.min(self.hash.len())]
    }
}

/// The build id of this process (hashed once, ~0.1 s for a large test binary).
pub fn current() -> &'static BuildId {
    static ID: OnceLock<BuildId> = OnceLock::new();
    ID.get_or_init(|| {
        let executable = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("<unknown executable>"));
        let hash = hash_file(&executable).unwrap_or_else(|e| format!("unreadable: {e}"));
        BuildId { executable, hash }
    })
}

/// The blake3 hash (hex) of some bytes, as [`hash_file`] computes it for a file.
pub fn hash_bytes(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The blake3 hash (hex) of a file's contents.
pub fn hash_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_changes_with_one_byte() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"same build").unwrap();
        let h1 = hash_file(&a).unwrap();
        assert_eq!(h1, hash_file(&a).unwrap());
        std::fs::write(&a, b"same build!").unwrap();
        assert_ne!(h1, hash_file(&a).unwrap());
        assert_eq!(current().hash.len(), 64);
    }
}
