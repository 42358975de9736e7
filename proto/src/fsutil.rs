//! Small file-system helpers shared by the daemons and the command line:
//! replacing a file atomically, so a crash leaves the old contents or the
//! new, never a short file.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// [`write_atomic`], creating the file's directory first (mode 0700, with
/// its parents) if it is missing: for private state such as keys and
/// certificates.
pub fn write_atomic_private(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    write_atomic(path, contents, mode)
}

/// Replaces `path` with `contents`, atomically, with exactly `mode` (the
/// umask does not narrow it): a temp file `.{name}.tmp` in the same
/// directory, written and fsynced, renamed over `path`, then the directory
/// fsynced so the rename itself is durable.
///
/// The directory must exist; callers create it with the mode they need.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    // A stale temp file may have other permissions; start afresh.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_the_contents_with_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomic(&path, b"secret", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"secret");
        assert_eq!(mode_of(&path), 0o600);
        let wide = dir.path().join("ca.pem");
        write_atomic(&wide, b"public", 0o644).unwrap();
        assert_eq!(mode_of(&wide), 0o644);
    }

    #[test]
    fn replaces_an_existing_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        fs::write(&path, b"old contents, longer than the new").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        // A stale temp file of an interrupted write is replaced too.
        fs::write(dir.path().join(".config.toml.tmp"), b"stale").unwrap();
        write_atomic(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode_of(&path), 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["config.toml"]);
    }

    #[test]
    fn the_private_variant_creates_the_directory_0700() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tls").join("deep").join("ca.key");
        write_atomic_private(&path, b"k", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"k");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("tls")), 0o700);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("f");
        let e = write_atomic(&path, b"x", 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
