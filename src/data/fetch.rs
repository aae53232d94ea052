//! `gpunet data fetch`: download a dataset's files, check them, unpack them.
//!
//! For each file of a [`Source`]:
//! 1. if `DIR/NAME/FILE` is there and matches its size, MD5 and SHA-256,
//!    nothing is downloaded;
//! 2. else the bytes go to `FILE.part`; a `.part` left by an interrupted run
//!    is resumed with an HTTP `Range: bytes=N-` request (a server that answers
//!    `200` instead of `206` sends the whole file, and the download starts
//!    over);
//! 3. the finished `.part` is checked against the size, MD5 and SHA-256; a
//!    mismatch removes it and puts nothing in place;
//! 4. only then is it renamed to `FILE` (atomic on one file system);
//! 5. an archive (CIFAR's `.tar.gz`) is unpacked only after step 3, member by
//!    member through `MEMBER.part` files and renames.
//!
//! A connection that drops or stalls mid-body keeps the `.part` for the next
//! run. Connect and per-read timeouts bound every network wait.

use super::catalog::{RemoteFile, Source, Unpack};
use flate2::read::GzDecoder;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, IsTerminal, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// What can go wrong while fetching; every variant names the URL or the file.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("unknown dataset {name:?}; the known ones are: {}", .known.join(", "))]
    UnknownDataset { name: String, known: Vec<String> },
    #[error("{url}: the server answered HTTP {status} {reason}")]
    HttpStatus {
        url: String,
        status: u16,
        reason: &'static str,
    },
    #[error("{url}: {error}")]
    Transport { url: String, error: ureq::Error },
    #[error(
        "{url}: the download stopped after {} of {} ({cause}); the partial file {} is kept \
         and the next `gpunet data fetch` resumes it",
        HumanBytes(*.have), HumanBytes(*.expected), .part.display()
    )]
    Interrupted {
        url: String,
        part: PathBuf,
        have: u64,
        expected: u64,
        cause: String,
    },
    #[error("{url}: the server announces {announced} bytes, but the file should have {expected}")]
    UnexpectedLength {
        url: String,
        announced: u64,
        expected: u64,
    },
    #[error(
        "checksum mismatch in the download of {url} for {}: {}; the download was removed \
         and nothing was put in place",
        .path.display(), join(.mismatches)
    )]
    ChecksumMismatch {
        url: String,
        path: PathBuf,
        mismatches: Vec<Mismatch>,
    },
    #[error(
        "{}: already there but does not match its published checksums ({}); remove it and \
         fetch again",
        .path.display(), join(.mismatches)
    )]
    ExistingMismatch {
        path: PathBuf,
        mismatches: Vec<Mismatch>,
    },
    #[error("{}: cannot {action}: {error}{}", .path.display(), disk_full_hint(.error))]
    Io {
        path: PathBuf,
        action: &'static str,
        error: io::Error,
    },
    #[error("{}: {reason}", .path.display())]
    Archive { path: PathBuf, reason: String },
}

/// One hash (or the size) that differs from the published value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub what: &'static str,
    pub expected: String,
    pub found: String,
}

/// "MD5 expected …, found …; SHA-256 expected …, found …".
pub fn join(mismatches: &[Mismatch]) -> String {
    mismatches
        .iter()
        .map(|m| format!("{} expected {}, found {}", m.what, m.expected, m.found))
        .collect::<Vec<_>>()
        .join("; ")
}

fn disk_full_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::StorageFull {
        " (the disk is full: free some space; a partial download is kept and resumes)"
    } else {
        ""
    }
}

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> FetchError + 'a {
    move |error| FetchError::Io {
        path: path.to_path_buf(),
        action,
        error,
    }
}

/// How patient to be, and whether to draw a progress bar.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Opening the connection, TLS included.
    pub connect_timeout: Duration,
    /// Each read from the socket (a server that goes quiet this long mid-body
    /// ends the download; the partial file is kept).
    pub read_timeout: Duration,
    /// A progress bar on stderr.
    pub progress: bool,
    /// Use the proxy named by `ALL_PROXY`, `HTTPS_PROXY` or `HTTP_PROXY`
    /// (`NO_PROXY` honoured), as curl does.
    pub proxy_from_env: bool,
}

impl Default for FetchOptions {
    /// 30 s to connect, 60 s per read, a progress bar when stderr is a
    /// terminal, proxies from the environment.
    fn default() -> Self {
        FetchOptions {
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            progress: io::stderr().is_terminal(),
            proxy_from_env: true,
        }
    }
}

/// Fetch every file of `source` into `root/NAME/`, verify, unpack; returns
/// that folder. Notes on what is done go to `log` (stderr in the CLI).
pub fn fetch(
    source: &Source,
    root: &Path,
    opts: &FetchOptions,
    log: &mut dyn Write,
) -> Result<PathBuf, FetchError> {
    let dir = source.dir(root);
    fs::create_dir_all(&dir).map_err(io_err(&dir, "create the directory"))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_per_read(Some(opts.read_timeout))
        // Statuses are ours to report, with the URL.
        .http_status_as_error(false)
        .proxy(if opts.proxy_from_env {
            ureq::Proxy::try_from_env()
        } else {
            None
        })
        .user_agent(concat!("gpunet/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut downloaded = false;
    for file in &source.files {
        downloaded |= fetch_file(&agent, &source.url(file), file, &dir, opts, log)?;
    }
    if let Unpack::TarGz { prefix, members } = &source.unpack {
        let missing = missing_members(&dir, members.iter().map(|m| (&m.name, m.size)));
        if downloaded || !missing.is_empty() {
            for file in &source.files {
                let archive = dir.join(&file.name);
                note(log, format_args!("unpacking {}", archive.display()));
                extract_tar_gz(&archive, prefix, &dir)?;
            }
            let still = missing_members(&dir, members.iter().map(|m| (&m.name, m.size)));
            if let Some(first) = still.first() {
                return Err(FetchError::Archive {
                    path: dir.join(&source.files[0].name),
                    reason: format!(
                        "the archive does not yield {first} (or yields it with the wrong size)"
                    ),
                });
            }
        }
    }
    if let Some(names) = super::catalog::class_names(&source.name) {
        let path = dir.join("classes.txt");
        let mut text = names.join("\n");
        text.push('\n');
        fs::write(&path, text).map_err(io_err(&path, "write"))?;
    }
    Ok(dir)
}

/// A line for the user; a log that cannot be written must not stop a download.
fn note(log: &mut dyn Write, line: std::fmt::Arguments) {
    let _ = writeln!(log, "{line}");
}

/// `FILE.part` beside `FILE`.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

/// Downloads one file unless it is already in place; true if it downloaded.
fn fetch_file(
    agent: &ureq::Agent,
    url: &str,
    file: &RemoteFile,
    dir: &Path,
    opts: &FetchOptions,
    log: &mut dyn Write,
) -> Result<bool, FetchError> {
    let dest = dir.join(&file.name);
    if dest.exists() {
        let digests = Digests::of(&dest).map_err(io_err(&dest, "read"))?;
        let mismatches = digests.compare(file);
        if mismatches.is_empty() {
            note(log, format_args!("{}: present, verified", dest.display()));
            return Ok(false);
        }
        return Err(FetchError::ExistingMismatch {
            path: dest,
            mismatches,
        });
    }
    let part = part_path(&dest);
    note(log, format_args!("downloading {url}"));
    download(agent, url, file.size, &part, opts, log)?;
    let digests = Digests::of(&part).map_err(io_err(&part, "read"))?;
    let mismatches = digests.compare(file);
    if !mismatches.is_empty() {
        // The bytes are wrong, so resuming from them could never succeed.
        let _ = fs::remove_file(&part);
        return Err(FetchError::ChecksumMismatch {
            url: url.to_string(),
            path: dest,
            mismatches,
        });
    }
    fs::rename(&part, &dest).map_err(io_err(&dest, "rename the verified download into place"))?;
    note(
        log,
        format_args!("{}: verified (MD5 and SHA-256)", dest.display()),
    );
    Ok(true)
}

/// Brings `part` to `size` bytes from `url`, resuming what is there.
fn download(
    agent: &ureq::Agent,
    url: &str,
    size: u64,
    part: &Path,
    opts: &FetchOptions,
    log: &mut dyn Write,
) -> Result<(), FetchError> {
    let mut have = match fs::metadata(part) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io_err(part, "read")(e)),
    };
    if have == size {
        note(log, format_args!("{}: complete, checking", part.display()));
        return Ok(());
    }
    if have > size {
        note(
            log,
            format_args!(
                "{}: longer than the file should be; starting over",
                part.display()
            ),
        );
        have = 0;
    }
    // A `416 Range Not Satisfiable` sends us round once more, from byte 0.
    let response = loop {
        let mut request = agent.get(url);
        if have > 0 {
            note(
                log,
                format_args!("resuming {} from byte {have}", part.display()),
            );
            request = request.header("Range", format!("bytes={have}-"));
        }
        let response = request.call().map_err(|error| FetchError::Transport {
            url: url.to_string(),
            error,
        })?;
        match response.status().as_u16() {
            206 if have > 0 => {
                let start = response
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                if start == Some(have) {
                    break response;
                }
                note(
                    log,
                    format_args!("the server sent a different range; starting over"),
                );
                have = 0;
            }
            200 => {
                if have > 0 {
                    note(
                        log,
                        format_args!(
                            "the server ignored the resume request (HTTP 200); starting over"
                        ),
                    );
                    have = 0;
                }
                break response;
            }
            416 if have > 0 => {
                note(
                    log,
                    format_args!("the server refused to resume (HTTP 416); starting over"),
                );
                have = 0;
            }
            status => {
                return Err(FetchError::HttpStatus {
                    url: url.to_string(),
                    status,
                    reason: response.status().canonical_reason().unwrap_or(""),
                })
            }
        }
    };
    let announced = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = announced {
        if have + len != size {
            return Err(FetchError::UnexpectedLength {
                url: url.to_string(),
                announced: have + len,
                expected: size,
            });
        }
    }
    let mut out = if have == 0 {
        File::create(part)
    } else {
        OpenOptions::new().append(true).open(part)
    }
    .map_err(io_err(part, "open for writing"))?;

    let bar = if opts.progress {
        let bar = ProgressBar::new(size).with_position(have);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(
            Path::new(url)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let mut body = response.into_body().into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    let interrupted = |have: u64, cause: String| FetchError::Interrupted {
        url: url.to_string(),
        part: part.to_path_buf(),
        have,
        expected: size,
        cause,
    };
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                out.sync_all().map_err(io_err(part, "write"))?;
                return Err(interrupted(have, e.to_string()));
            }
        };
        if have + n as u64 > size {
            bar.abandon();
            drop(out);
            let _ = fs::remove_file(part);
            return Err(FetchError::UnexpectedLength {
                url: url.to_string(),
                announced: have + n as u64,
                expected: size,
            });
        }
        out.write_all(&buf[..n]).map_err(io_err(part, "write"))?;
        have += n as u64;
        bar.set_position(have);
    }
    out.sync_all().map_err(io_err(part, "write"))?;
    if have < size {
        bar.abandon();
        return Err(interrupted(
            have,
            "the server closed the connection early".into(),
        ));
    }
    bar.finish_and_clear();
    Ok(())
}

/// `bytes START-END/TOTAL` → START.
fn content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes")?.trim_start();
    range.split('-').next()?.trim().parse().ok()
}

/// A file's size and both hashes, from one read.
#[derive(Debug, Clone)]
pub struct Digests {
    pub len: u64,
    pub md5: String,
    pub sha256: String,
}

impl Digests {
    pub fn of(path: &Path) -> io::Result<Digests> {
        Self::of_reader(File::open(path)?)
    }

    pub fn of_reader(mut reader: impl Read) -> io::Result<Digests> {
        let mut md5 = Md5::new();
        let mut sha256 = Sha256::new();
        let mut len = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            md5.update(&buf[..n]);
            sha256.update(&buf[..n]);
            len += n as u64;
        }
        Ok(Digests {
            len,
            md5: hex(&md5.finalize()),
            sha256: hex(&sha256.finalize()),
        })
    }

    pub fn of_bytes(bytes: &[u8]) -> Digests {
        Digests {
            len: bytes.len() as u64,
            md5: hex(&Md5::digest(bytes)),
            sha256: hex(&Sha256::digest(bytes)),
        }
    }

    /// What differs from the published values (empty: the file is good).
    pub fn compare(&self, file: &RemoteFile) -> Vec<Mismatch> {
        let mut out = Vec::new();
        if self.len != file.size {
            out.push(Mismatch {
                what: "size",
                expected: format!("{} bytes", file.size),
                found: format!("{} bytes", self.len),
            });
        }
        for (what, expected, found) in [
            ("MD5", &file.md5, &self.md5),
            ("SHA-256", &file.sha256, &self.sha256),
        ] {
            if !expected.eq_ignore_ascii_case(found) {
                out.push(Mismatch {
                    what,
                    expected: expected.clone(),
                    found: found.clone(),
                });
            }
        }
        out
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unpacks the members under `prefix/` of a `.tar.gz` into `into`, each
/// through a `.part` file and a rename. Anything else in the archive (another
/// folder, a link, a path with `..`) is refused.
fn extract_tar_gz(archive: &Path, prefix: &str, into: &Path) -> Result<(), FetchError> {
    let bad = |reason: String| FetchError::Archive {
        path: archive.to_path_buf(),
        reason,
    };
    let file = File::open(archive).map_err(io_err(archive, "open"))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let entries = tar
        .entries()
        .map_err(|e| bad(format!("not a readable tar.gz: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a readable tar.gz: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("a member has an unreadable name: {e}")))?
            .into_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        let Some(name) = member_name(&path, prefix) else {
            return Err(bad(format!(
                "member {} is not a file directly inside {prefix}/",
                path.display()
            )));
        };
        if !kind.is_file() {
            return Err(bad(format!(
                "member {} is not a regular file",
                path.display()
            )));
        }
        let out_path = into.join(name);
        let tmp = part_path(&out_path);
        let mut out = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    drop(out);
                    let _ = fs::remove_file(&tmp);
                    return Err(bad(format!("reading member {}: {e}", path.display())));
                }
            };
            out.write_all(&buf[..n]).map_err(io_err(&tmp, "write"))?;
        }
        out.sync_all().map_err(io_err(&tmp, "write"))?;
        fs::rename(&tmp, &out_path).map_err(io_err(&out_path, "rename into place"))?;
    }
    Ok(())
}

/// `prefix/NAME` → `NAME`, for a plain file name only.
fn member_name<'a>(path: &'a Path, prefix: &str) -> Option<&'a str> {
    let mut parts = path.components().filter(|c| *c != Component::CurDir);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Component::Normal(top)), Some(Component::Normal(name)), None)
            if top == std::ffi::OsStr::new(prefix) =>
        {
            name.to_str()
        }
        _ => None,
    }
}

/// Members (name, expected size) that are absent from `dir` or have the wrong size.
fn missing_members<'a>(
    dir: &Path,
    members: impl Iterator<Item = (&'a String, Option<u64>)>,
) -> Vec<String> {
    members
        .filter(|(name, size)| match fs::metadata(dir.join(name)) {
            Ok(meta) => !meta.is_file() || size.is_some_and(|s| s != meta.len()),
            Err(_) => true,
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Where one file of a dataset stands on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Missing,
    /// A `.part` from an interrupted download.
    Partial {
        have: u64,
    },
    Verified,
    WrongSize {
        have: u64,
    },
    Mismatch(Vec<Mismatch>),
}

/// Where a dataset stands on disk.
#[derive(Debug, Clone)]
pub struct DatasetState {
    /// One per file of the source, in order.
    pub files: Vec<FileState>,
    /// An archive's members that are not (correctly) unpacked.
    pub members_missing: Vec<String>,
}

impl DatasetState {
    /// Every file verified and every member unpacked.
    pub fn ready(&self) -> bool {
        self.files.iter().all(|f| *f == FileState::Verified) && self.members_missing.is_empty()
    }

    /// One word or phrase for `data list`.
    pub fn summary(&self, name: &str) -> String {
        let bad = self
            .files
            .iter()
            .any(|f| matches!(f, FileState::WrongSize { .. } | FileState::Mismatch(_)));
        if bad {
            "CORRUPT (see below)".into()
        } else if self.ready() {
            "ready".into()
        } else if self.files.iter().all(|f| *f == FileState::Missing) {
            format!("not fetched (`gpunet data fetch {name}`)")
        } else {
            format!("incomplete (`gpunet data fetch {name}` completes it)")
        }
    }
}

/// Checks each file of `source` in `dir` against its size and checksums.
pub fn state(source: &Source, dir: &Path) -> io::Result<DatasetState> {
    let mut files = Vec::with_capacity(source.files.len());
    for file in &source.files {
        let path = dir.join(&file.name);
        let state = match fs::metadata(&path) {
            Ok(meta) if meta.len() != file.size => FileState::WrongSize { have: meta.len() },
            Ok(_) => {
                let mismatches = Digests::of(&path)?.compare(file);
                if mismatches.is_empty() {
                    FileState::Verified
                } else {
                    FileState::Mismatch(mismatches)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::metadata(part_path(&path)) {
                Ok(meta) => FileState::Partial { have: meta.len() },
                Err(_) => FileState::Missing,
            },
            Err(e) => return Err(e),
        };
        files.push(state);
    }
    let members_missing = match &source.unpack {
        Unpack::Keep => Vec::new(),
        Unpack::TarGz { members, .. } => {
            missing_members(dir, members.iter().map(|m| (&m.name, m.size)))
        }
    };
    Ok(DatasetState {
        files,
        members_missing,
    })
}
