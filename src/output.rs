//! Where gpunet's output goes, and what happens when it cannot get there.
//!
//! - [`stdout`] / [`stderr`]: the standard streams, each write error naming
//!   the stream ("writing to stdout: No space left on device"). A reader
//!   that went away (`gpunet predict … | head -1`) is marked so that
//!   [`is_closed_pipe`] can tell it apart: `main` then exits quietly, as Unix
//!   tools do, where `println!` would panic.
//! - [`Named`]: the same for any writer, e.g. the `--log` file.
//! - [`check_file`] / [`check_dir`]: before any work is done, that an output
//!   the user named (`--save`, `--plot`, `--log`, `--out`) can be written,
//!   with a message naming the flag and the path.

use anyhow::{bail, Result};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A writer whose errors say what was being written to.
pub struct Named<W> {
    inner: W,
    name: String,
    /// A closed pipe on this writer means "the reader has all it wants".
    quiet_on_closed_pipe: bool,
}

impl<W: Write> Named<W> {
    /// Errors read "writing to NAME: …".
    pub fn new(inner: W, name: impl Into<String>) -> Named<W> {
        Named {
            inner,
            name: name.into(),
            quiet_on_closed_pipe: false,
        }
    }

    fn wrap(&self, e: io::Error) -> io::Error {
        if self.quiet_on_closed_pipe && e.kind() == io::ErrorKind::BrokenPipe {
            return io::Error::new(
                io::ErrorKind::BrokenPipe,
                ClosedPipe {
                    stream: self.name.clone(),
                },
            );
        }
        io::Error::new(e.kind(), format!("writing to {}: {e}", self.name))
    }
}

impl<W: Write> Write for Named<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.wrap(e))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf).map_err(|e| self.wrap(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.wrap(e))
    }
}

/// The reader of stdout or stderr went away.
#[derive(Debug)]
pub struct ClosedPipe {
    pub stream: String,
}

impl fmt::Display for ClosedPipe {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} was closed by its reader", self.stream)
    }
}

impl std::error::Error for ClosedPipe {}

/// Standard output, locked for the life of the writer. Call `flush` at the
/// end: the exit-time flush of the standard library drops its errors.
pub fn stdout() -> Named<io::StdoutLock<'static>> {
    Named {
        quiet_on_closed_pipe: true,
        ..Named::new(io::stdout().lock(), "stdout")
    }
}

/// Standard error (unbuffered).
pub fn stderr() -> Named<io::Stderr> {
    Named {
        quiet_on_closed_pipe: true,
        ..Named::new(io::stderr(), "stderr")
    }
}

/// True when `error` comes from writing to stdout or stderr after their
/// reader went away.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<ClosedPipe>()
            || cause
                .downcast_ref::<io::Error>()
                .and_then(|e| e.get_ref())
                .is_some_and(|inner| inner.is::<ClosedPipe>())
    })
}

/// Checks that `path`, given with `flag`, is a file gpunet can write (the
/// way [`crate::checkpoint::write_atomically`] writes it): an existing
/// regular file or a new name in an existing, writable directory (tried by
/// creating and removing the temporary file a save would use), or a
/// character device or pipe (written in place). Stale temporary files of
/// runs that were killed are removed on the way.
pub fn check_file(flag: &str, path: &Path) -> Result<()> {
    let shown = path.display();
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => bail!("{flag} {shown}: is a directory, not a file"),
        Ok(meta) if !meta.is_file() => {
            if let Some(kind) = crate::checkpoint::unwritable_kind(&meta) {
                bail!("{flag} {shown}: is {kind}; gpunet writes only to regular files, character devices (such as /dev/null) and pipes");
            }
            // A device or a pipe is written in place; opening a pipe here
            // would wait for its reader, so only devices are tried.
            if !is_fifo(&meta) {
                if let Err(e) = fs::OpenOptions::new().write(true).open(path) {
                    bail!("{flag} {shown}: cannot be written: {e}");
                }
            }
            Ok(())
        }
        Ok(_) => probe_directory(flag, path),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            let dir = parent_dir(path);
            match fs::metadata(&dir) {
                Ok(meta) if meta.is_dir() => probe_directory(flag, path),
                Ok(_) => bail!("{flag} {shown}: {} is not a directory", dir.display()),
                Err(_) => bail!(
                    "{flag} {shown}: the directory {} does not exist",
                    dir.display()
                ),
            }
        }
        Err(e) => bail!("{flag} {shown}: {e}"),
    }
}

/// Checks that `path`, given with `flag`, is a directory gpunet can write
/// files into, or can be created: if it does not exist, its nearest
/// existing ancestor must be a writable directory.
pub fn check_dir(flag: &str, path: &Path) -> Result<()> {
    let shown = path.display();
    let mut existing = path.to_path_buf();
    loop {
        match fs::metadata(&existing) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) if existing == path => bail!("{flag} {shown}: is a file, not a directory"),
            Ok(_) => bail!(
                "{flag} {shown}: cannot be created, {} is a file",
                existing.display()
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                match existing.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => existing = parent.into(),
                    _ => {
                        existing = PathBuf::from(".");
                        break;
                    }
                }
            }
            Err(e) => bail!("{flag} {shown}: {e}"),
        }
    }
    let probe = existing.join(format!(".gpunet-write-test.tmp-{}", std::process::id()));
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => bail!(
            "{flag} {shown}: cannot write in {}: {e}",
            existing.display()
        ),
    }
}

/// Creates and removes the temporary file a save of `path` would use.
fn probe_directory(flag: &str, path: &Path) -> Result<()> {
    let target = crate::checkpoint::resolve_link(path);
    let temp = crate::checkpoint::temp_path_for(&target)?;
    crate::checkpoint::remove_stale_temps(&target);
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
    {
        Ok(_) => {
            let _ = fs::remove_file(&temp);
            Ok(())
        }
        // Our own name in use: a save of this very process is under way.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => bail!(
            "{flag} {}: cannot write in {}: {e}",
            path.display(),
            parent_dir(&target).display()
        ),
    }
}

/// The directory `path` is in (`.` for a bare name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.into(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn is_fifo(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_fifo()
}

#[cfg(not(unix))]
fn is_fifo(_: &fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_errors_name_the_stream_and_closed_pipes_are_marked() {
        struct Failing(io::ErrorKind);
        impl Write for Failing {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(self.0.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut full = Named {
            quiet_on_closed_pipe: true,
            ..Named::new(Failing(io::ErrorKind::StorageFull), "stdout")
        };
        let err = anyhow::Error::from(writeln!(full, "x").unwrap_err());
        assert!(
            format!("{err:#}").starts_with("writing to stdout: "),
            "{err:#}"
        );
        assert!(!is_closed_pipe(&err));

        let mut closed = Named {
            quiet_on_closed_pipe: true,
            ..Named::new(Failing(io::ErrorKind::BrokenPipe), "stdout")
        };
        let err = anyhow::Error::from(writeln!(closed, "x").unwrap_err()).context("printing");
        assert!(is_closed_pipe(&err), "{err:#}");

        // A closed pipe on a file the user named is an error like any other.
        let mut log = Named::new(Failing(io::ErrorKind::BrokenPipe), "--log fifo");
        let err = anyhow::Error::from(writeln!(log, "x").unwrap_err());
        assert!(!is_closed_pipe(&err));
        assert!(format!("{err:#}").contains("--log fifo"), "{err:#}");
    }

    #[test]
    fn outputs_are_checked_before_work() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir").join("m.safetensors");
        let err = format!("{:#}", check_file("--save", &missing).unwrap_err());
        assert!(
            err.starts_with("--save ")
                && err.contains("no-such-dir")
                && err.contains("does not exist"),
            "{err}"
        );
        let err = format!("{:#}", check_file("--plot", dir.path()).unwrap_err());
        assert!(
            err.contains("--plot") && err.contains("is a directory"),
            "{err}"
        );
        check_file("--save", &dir.path().join("m.safetensors")).unwrap();
        // Nothing is left behind by the check.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        check_dir("--out", &dir.path().join("a/b/report")).unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let err = format!(
            "{:#}",
            check_dir("--out", &file.join("report")).unwrap_err()
        );
        assert!(err.contains("--out") && err.contains("is a file"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
