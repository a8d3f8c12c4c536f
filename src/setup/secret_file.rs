//! `--secret-out FILE`: a secret written with mode 0600, left alone when it already holds it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use super::Change;

/// Writes `secret` to `path` (created 0600; an existing file is set to 0600 and replaced only
/// when it holds something else).
pub(crate) fn write_secret(path: &Path, secret: &SecretString) -> anyhow::Result<Change> {
    let wanted = secret.expose_secret();
    if let Ok(existing) = std::fs::read_to_string(path) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("--secret-out {}: cannot set mode 0600", path.display()))?;
        if existing.trim() == wanted {
            return Ok(Change::Unchanged);
        }
    }
    let existed = path.exists();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("--secret-out {}: cannot write", path.display()))?;
    file.write_all(wanted.as_bytes())
        .with_context(|| format!("--secret-out {}: cannot write", path.display()))?;
    Ok(if existed {
        Change::Updated
    } else {
        Change::Created
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_private_and_rewritten_only_when_it_differs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        let s = SecretString::from("abc");
        assert_eq!(write_secret(&path, &s).expect("write"), Change::Created);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(write_secret(&path, &s).expect("write"), Change::Unchanged);
        let t = SecretString::from("def");
        assert_eq!(write_secret(&path, &t).expect("write"), Change::Updated);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "def");
    }
}
