//! `gpunet data fetch` / `data list` against an HTTP server that each test
//! starts on 127.0.0.1, serving fixture files written by the test. The real
//! dataset hosts are never contacted: the fixtures' checksums go into a
//! test catalog ([`Source`]), or, for the binary, the server stands in for
//! the hosts through `GPUNET_DATA_MIRROR`. Every test runs under a time bound.

use flate2::write::GzEncoder;
use gpunet::data::catalog::{self, DataRoot, Member, RemoteFile, Source, Unpack};
use gpunet::data::fetch::{self, Digests, FetchError, FetchOptions, FileState};
use gpunet::data::{idx, load_mnist, Split};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

// ---------------------------------------------------------------- harness

/// Runs `test` on its own thread and fails if it takes longer than `secs`.
fn bounded(secs: u64, test: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let handle = thread::spawn(move || {
        test();
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test did not finish within {secs} s"),
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    range: Option<String>,
}

/// A server on 127.0.0.1 that answers each connection with `handler` and
/// remembers every request. Its thread lives until the test process ends.
struct Server {
    base: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start(handler: impl Fn(usize, &Request, &mut TcpStream) + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                log.lock().unwrap().push(request.clone());
                handler(n, &request, &mut stream);
                let _ = stream.flush();
                // Dropping the stream closes the connection.
            }
        });
        Server { base, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let path = first.split_whitespace().nth(1)?.to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    Some(Request { path, range })
}

fn head(stream: &mut TcpStream, status: &str, headers: &[(&str, String)]) {
    let mut text = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let _ = stream.write_all(text.as_bytes());
}

/// `bytes=N-` → N.
fn range_start(request: &Request) -> Option<usize> {
    request
        .range
        .as_deref()?
        .strip_prefix("bytes=")?
        .strip_suffix('-')?
        .parse()
        .ok()
}

/// Answers with `files[path]`: 206 from the requested byte when
/// `honour_range`, else always 200 and the whole file; 404 for other paths.
fn serve_file(
    stream: &mut TcpStream,
    request: &Request,
    files: &[(String, Vec<u8>)],
    honour_range: bool,
) {
    let Some((_, bytes)) = files.iter().find(|(path, _)| *path == request.path) else {
        head(stream, "404 Not Found", &[("Content-Length", "0".into())]);
        return;
    };
    match range_start(request).filter(|_| honour_range) {
        Some(start) if start < bytes.len() => {
            head(
                stream,
                "206 Partial Content",
                &[
                    ("Content-Length", (bytes.len() - start).to_string()),
                    (
                        "Content-Range",
                        format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len()),
                    ),
                ],
            );
            let _ = stream.write_all(&bytes[start..]);
        }
        _ => {
            head(
                stream,
                "200 OK",
                &[("Content-Length", bytes.len().to_string())],
            );
            let _ = stream.write_all(bytes);
        }
    }
}

fn options() -> FetchOptions {
    FetchOptions {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        progress: false,
        // The server is on 127.0.0.1; a proxy from the environment must not get in between.
        proxy_from_env: false,
    }
}

/// Bytes that do not compress: a simple LCG.
fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn remote(name: &str, bytes: &[u8]) -> RemoteFile {
    let digests = Digests::of_bytes(bytes);
    RemoteFile {
        name: name.into(),
        size: digests.len,
        md5: digests.md5,
        sha256: digests.sha256,
    }
}

/// A test catalog entry for one file kept as it is.
fn single(name: &str, base: &str, file: &str, bytes: &[u8]) -> Source {
    Source {
        name: name.into(),
        title: format!("fixture {name}"),
        base_url: format!("{base}/{name}/"),
        files: vec![remote(file, bytes)],
        unpack: Unpack::Keep,
    }
}

fn fetch_quietly(source: &Source, root: &Path) -> (Result<PathBuf, FetchError>, String) {
    let mut log = Vec::new();
    let result = fetch::fetch(source, root, &options(), &mut log);
    (result, String::from_utf8(log).unwrap())
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------- tests

#[test]
fn good_files_are_verified_kept_gzipped_and_read_by_the_idx_reader() {
    bounded(60, || {
        // A four-file MNIST-style dataset, as the real hosts publish it.
        let n = 20;
        let mut published = Vec::new();
        for prefix in ["train", "t10k"] {
            let images = noise(n * 784, 7);
            let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
            published.push((
                format!("{prefix}-images-idx3-ubyte.gz"),
                gz(&idx::encode(&[n, 28, 28], &images)),
            ));
            published.push((
                format!("{prefix}-labels-idx1-ubyte.gz"),
                gz(&idx::encode(&[n], &labels)),
            ));
        }
        let files: Vec<(String, Vec<u8>)> = published
            .iter()
            .map(|(name, bytes)| (format!("/digits/{name}"), bytes.clone()))
            .collect();
        let server = Server::start(move |_, req, s| serve_file(s, req, &files, true));
        // Named as Fashion-MNIST, so that its class names are written too.
        let source = Source {
            name: "fashion-mnist".into(),
            title: "fixture digits".into(),
            base_url: format!("{}/digits/", server.base),
            files: published.iter().map(|(name, b)| remote(name, b)).collect(),
            unpack: Unpack::Keep,
        };
        let root = tempfile::tempdir().unwrap();

        let (result, log) = fetch_quietly(&source, root.path());
        let dir = result.unwrap_or_else(|e| panic!("{e}\n{log}"));
        assert_eq!(dir, root.path().join("fashion-mnist"));
        for (name, bytes) in &published {
            assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
        }
        assert!(
            listing(&dir).iter().all(|n| !n.ends_with(".part")),
            "{:?}",
            listing(&dir)
        );
        assert_eq!(server.requests().len(), 4);
        assert!(server.requests().iter().all(|r| r.range.is_none()));
        let test = load_mnist(&dir, Split::Test).expect("the IDX reader reads the fetched files");
        assert_eq!(test.len(), n);
        assert_eq!(test.classes[1], "Trouser", "classes.txt names the classes");
        assert_eq!(test.classes.len(), 10);

        // A second fetch finds everything verified and asks for nothing.
        let (again, log) = fetch_quietly(&source, root.path());
        again.unwrap();
        assert_eq!(server.requests().len(), 4, "{log}");
        assert!(log.contains("present, verified"), "{log}");
    });
}

#[test]
fn a_wrong_checksum_names_both_hashes_and_puts_nothing_in_place() {
    bounded(60, || {
        let served = noise(10_000, 1);
        let files = vec![("/set/data.gz".to_string(), served.clone())];
        let server = Server::start(move |_, req, s| serve_file(s, req, &files, true));
        // The catalog expects other bytes of the same length.
        let expected = noise(10_000, 2);
        let source = single("set", &server.base, "data.gz", &expected);
        let root = tempfile::tempdir().unwrap();

        let (result, _) = fetch_quietly(&source, root.path());
        let err = result.unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, FetchError::ChecksumMismatch { .. }),
            "{message}"
        );
        let want = Digests::of_bytes(&expected);
        let got = Digests::of_bytes(&served);
        for hash in [&want.md5, &got.md5, &want.sha256, &got.sha256] {
            assert!(message.contains(hash.as_str()), "{hash} not in: {message}");
        }
        assert!(message.contains("data.gz"), "{message}");
        assert!(message.contains("nothing was put in place"), "{message}");
        assert!(
            listing(&root.path().join("set")).is_empty(),
            "{:?}",
            listing(&root.path().join("set"))
        );
    });
}

#[test]
fn a_truncated_download_resumes_with_a_range_request() {
    bounded(60, || {
        let bytes = noise(50_000, 3);
        let files = vec![("/set/data.gz".to_string(), bytes.clone())];
        let server = Server::start(move |_, req, s| serve_file(s, req, &files, true));
        let source = single("set", &server.base, "data.gz", &bytes);
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("set");
        std::fs::create_dir_all(&dir).unwrap();
        // What an interrupted earlier run left behind.
        std::fs::write(dir.join("data.gz.part"), &bytes[..12_345]).unwrap();

        let (result, log) = fetch_quietly(&source, root.path());
        result.unwrap_or_else(|e| panic!("{e}\n{log}"));
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].range.as_deref(), Some("bytes=12345-"));
        assert!(log.contains("resuming"), "{log}");
        assert_eq!(std::fs::read(dir.join("data.gz")).unwrap(), bytes);
        assert_eq!(listing(&dir), ["data.gz"]);
    });
}

#[test]
fn a_server_that_ignores_range_restarts_the_download_cleanly() {
    bounded(60, || {
        let bytes = noise(50_000, 4);
        let files = vec![("/set/data.gz".to_string(), bytes.clone())];
        let server = Server::start(move |_, req, s| serve_file(s, req, &files, false));
        let source = single("set", &server.base, "data.gz", &bytes);
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("set");
        std::fs::create_dir_all(&dir).unwrap();
        // A partial file whose bytes are wrong: appending to it would fail the
        // checksum, so passing shows that it was thrown away.
        std::fs::write(dir.join("data.gz.part"), vec![0xAA; 20_000]).unwrap();

        let (result, log) = fetch_quietly(&source, root.path());
        result.unwrap_or_else(|e| panic!("{e}\n{log}"));
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].range.as_deref(), Some("bytes=20000-"));
        assert!(log.contains("ignored the resume request"), "{log}");
        assert_eq!(std::fs::read(dir.join("data.gz")).unwrap(), bytes);
        assert_eq!(listing(&dir), ["data.gz"]);
    });
}

#[test]
fn a_404_names_the_status_and_the_url() {
    bounded(60, || {
        let server = Server::start(|_, req, s| serve_file(s, req, &[], true));
        let source = single("set", &server.base, "data.gz", b"anything");
        let root = tempfile::tempdir().unwrap();

        let (result, _) = fetch_quietly(&source, root.path());
        let err = result.unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, FetchError::HttpStatus { status: 404, .. }),
            "{message}"
        );
        assert!(message.contains("HTTP 404 Not Found"), "{message}");
        assert!(
            message.contains(&format!("{}/set/data.gz", server.base)),
            "{message}"
        );
        assert!(listing(&root.path().join("set")).is_empty());
    });
}

#[test]
fn a_server_closing_mid_body_keeps_the_partial_file_and_the_next_fetch_resumes() {
    bounded(60, || {
        let bytes = noise(60_000, 5);
        let half = 25_000;
        let files = vec![("/set/data.gz".to_string(), bytes.clone())];
        let server = Server::start(move |n, req, s| {
            if n == 0 {
                // Promise the whole file, send part of it, hang up.
                head(
                    s,
                    "200 OK",
                    &[("Content-Length", files[0].1.len().to_string())],
                );
                let _ = s.write_all(&files[0].1[..half]);
                let _ = s.flush();
                let _ = s.shutdown(std::net::Shutdown::Both);
            } else {
                serve_file(s, req, &files, true);
            }
        });
        let source = single("set", &server.base, "data.gz", &bytes);
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("set");

        let (result, log) = fetch_quietly(&source, root.path());
        let err = result.unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, FetchError::Interrupted { have, .. } if have == half as u64),
            "{message}\n{log}"
        );
        assert!(message.contains("data.gz.part"), "{message}");
        assert!(message.contains("is kept"), "{message}");
        assert!(message.contains("resumes"), "{message}");
        assert_eq!(listing(&dir), ["data.gz.part"]);
        assert_eq!(
            std::fs::read(dir.join("data.gz.part")).unwrap(),
            &bytes[..half]
        );

        let (result, log) = fetch_quietly(&source, root.path());
        result.unwrap_or_else(|e| panic!("{e}\n{log}"));
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests[1].range.as_deref(),
            Some(format!("bytes={half}-").as_str())
        );
        assert_eq!(std::fs::read(dir.join("data.gz")).unwrap(), bytes);
        assert_eq!(listing(&dir), ["data.gz"]);
    });
}

#[test]
fn a_server_that_stalls_mid_body_times_out_and_keeps_the_partial_file() {
    bounded(60, || {
        let bytes = noise(30_000, 6);
        let sent = 10_000;
        let served = bytes.clone();
        let server = Server::start(move |_, _, s| {
            head(s, "200 OK", &[("Content-Length", served.len().to_string())]);
            let _ = s.write_all(&served[..sent]);
            let _ = s.flush();
            thread::sleep(Duration::from_secs(4));
        });
        let source = single("set", &server.base, "data.gz", &bytes);
        let root = tempfile::tempdir().unwrap();
        let opts = FetchOptions {
            read_timeout: Duration::from_millis(500),
            ..options()
        };

        let started = std::time::Instant::now();
        let err = fetch::fetch(&source, root.path(), &opts, &mut Vec::new()).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(
            matches!(err, FetchError::Interrupted { have, .. } if have == sent as u64),
            "{err}"
        );
        assert_eq!(
            std::fs::read(root.path().join("set/data.gz.part")).unwrap(),
            &bytes[..sent]
        );
    });
}

#[test]
fn a_file_of_the_wrong_length_is_refused_before_it_is_written() {
    bounded(60, || {
        let served = noise(1_000, 13);
        let files = vec![("/set/data.gz".to_string(), served)];
        let server = Server::start(move |_, req, s| serve_file(s, req, &files, true));
        let source = single("set", &server.base, "data.gz", &noise(2_000, 13));
        let root = tempfile::tempdir().unwrap();

        let (result, _) = fetch_quietly(&source, root.path());
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::UnexpectedLength {
                    announced: 1_000,
                    expected: 2_000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("{}/set/data.gz", server.base)),
            "{err}"
        );
        assert!(listing(&root.path().join("set")).is_empty());
    });
}

#[test]
fn locating_a_dataset_that_was_not_fetched_says_how_to_fetch_it() {
    let root = tempfile::tempdir().unwrap();
    let data_root = DataRoot {
        path: root.path().to_path_buf(),
        chosen_by: "GPUNET_DATA",
    };
    let err = catalog::locate("cifar10", &data_root)
        .unwrap_err()
        .to_string();
    assert!(err.contains("run `gpunet data fetch cifar10`"), "{err}");
    assert!(err.contains("GPUNET_DATA"), "{err}");
}

#[test]
fn a_refused_connection_names_the_url() {
    bounded(60, || {
        // A port that was free a moment ago and has no listener now.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let source = single("set", &base, "data.gz", b"anything");
        let root = tempfile::tempdir().unwrap();
        let (result, _) = fetch_quietly(&source, root.path());
        let err = result.unwrap_err();
        assert!(matches!(err, FetchError::Transport { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("{base}/set/data.gz")),
            "{err}"
        );
    });
}

/// A `.tar.gz` laid out as CIFAR's: every member inside one folder.
fn cifar_like_archive(extra: Option<(&str, &[u8])>) -> (Vec<u8>, Vec<(&'static str, Vec<u8>)>) {
    let members = vec![
        ("data_batch_1.bin", noise(3 * 3073, 8)),
        ("test_batch.bin", noise(2 * 3073, 9)),
        ("batches.meta.txt", b"airplane\nautomobile\n".to_vec()),
    ];
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mode(0o755);
    builder
        .append_data(&mut dir, "fixture-batches-bin/", std::io::empty())
        .unwrap();
    let all = members
        .iter()
        .map(|(n, b)| (format!("fixture-batches-bin/{n}"), b.as_slice()))
        .chain(extra.map(|(n, b)| (n.to_string(), b)));
    for (path, bytes) in all {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, bytes).unwrap();
    }
    let archive = builder.into_inner().unwrap().finish().unwrap();
    (archive, members)
}

fn archive_source(base: &str, archive: &[u8]) -> Source {
    Source {
        name: "tiny-cifar".into(),
        title: "fixture CIFAR-like archive".into(),
        base_url: format!("{base}/tiny-cifar/"),
        files: vec![remote("fixture-binary.tar.gz", archive)],
        unpack: Unpack::TarGz {
            prefix: "fixture-batches-bin".into(),
            members: vec![
                Member {
                    name: "data_batch_1.bin".into(),
                    size: Some(3 * 3073),
                },
                Member {
                    name: "test_batch.bin".into(),
                    size: Some(2 * 3073),
                },
                Member {
                    name: "batches.meta.txt".into(),
                    size: None,
                },
            ],
        },
    }
}

#[test]
fn a_tar_gz_is_extracted_after_verification_without_its_top_folder() {
    bounded(60, || {
        let (archive, members) = cifar_like_archive(None);
        let files = vec![(
            "/tiny-cifar/fixture-binary.tar.gz".to_string(),
            archive.clone(),
        )];
        let server = Server::start(move |_, req, s| serve_file(s, req, &files, true));
        let source = archive_source(&server.base, &archive);
        let root = tempfile::tempdir().unwrap();

        let (result, log) = fetch_quietly(&source, root.path());
        let dir = result.unwrap_or_else(|e| panic!("{e}\n{log}"));
        for (name, bytes) in &members {
            assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
        }
        assert_eq!(
            listing(&dir),
            [
                "batches.meta.txt",
                "data_batch_1.bin",
                "fixture-binary.tar.gz",
                "test_batch.bin"
            ]
        );
        assert!(
            log.find("verified").unwrap() < log.find("unpacking").unwrap(),
            "{log}"
        );

        // A member lost later is restored from the verified archive, with no download.
        std::fs::remove_file(dir.join("test_batch.bin")).unwrap();
        let (again, log) = fetch_quietly(&source, root.path());
        again.unwrap_or_else(|e| panic!("{e}\n{log}"));
        assert_eq!(
            std::fs::read(dir.join("test_batch.bin")).unwrap(),
            members[1].1
        );
        assert_eq!(server.requests().len(), 1);
    });
}

#[test]
fn a_tar_gz_that_fails_its_checksum_is_not_extracted() {
    bounded(60, || {
        let (archive, _) = cifar_like_archive(None);
        let mut served = archive.clone();
        let last = served.len() - 1;
        served[last] ^= 1;
        let files = vec![("/tiny-cifar/fixture-binary.tar.gz".to_string(), served)];
        let server = Server::start(move |_, req, s| serve_file(s, req, &files, true));
        let source = archive_source(&server.base, &archive);
        let root = tempfile::tempdir().unwrap();

        let (result, _) = fetch_quietly(&source, root.path());
        assert!(
            matches!(result, Err(FetchError::ChecksumMismatch { .. })),
            "{result:?}"
        );
        assert!(listing(&root.path().join("tiny-cifar")).is_empty());
    });
}

#[test]
fn an_archive_member_outside_its_folder_is_refused() {
    bounded(60, || {
        let (archive, _) = cifar_like_archive(Some(("elsewhere/evil.bin", b"x")));
        let files = vec![(
            "/tiny-cifar/fixture-binary.tar.gz".to_string(),
            archive.clone(),
        )];
        let server = Server::start(move |_, req, s| serve_file(s, req, &files, true));
        let source = archive_source(&server.base, &archive);
        let root = tempfile::tempdir().unwrap();

        let (result, _) = fetch_quietly(&source, root.path());
        let err = result.unwrap_err();
        assert!(matches!(err, FetchError::Archive { .. }), "{err}");
        assert!(err.to_string().contains("elsewhere/evil.bin"), "{err}");
        assert!(!root.path().join("elsewhere").exists());
    });
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_names_the_file() {
    bounded(60, || {
        let bytes = noise(10_000, 10);
        let files = vec![("/set/data.gz".to_string(), bytes.clone())];
        let server = Server::start(move |_, req, s| serve_file(s, req, &files, true));
        let source = single("set", &server.base, "data.gz", &bytes);
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("set");
        std::fs::create_dir_all(&dir).unwrap();
        // Every write to /dev/full fails with ENOSPC, as on a full disk.
        std::os::unix::fs::symlink("/dev/full", dir.join("data.gz.part")).unwrap();

        let (result, _) = fetch_quietly(&source, root.path());
        let err = result.unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, FetchError::Io { .. }), "{message}");
        assert!(message.contains("data.gz.part"), "{message}");
        assert!(message.contains("the disk is full"), "{message}");
        assert!(!dir.join("data.gz").exists());
    });
}

#[test]
fn data_list_shows_what_is_present_partial_corrupt_and_missing() {
    bounded(60, || {
        let good = noise(5_000, 11);
        let files = vec![("/present/data.gz".to_string(), good.clone())];
        let server = Server::start(move |_, req, s| serve_file(s, req, &files, true));
        let root = tempfile::tempdir().unwrap();
        let present = single("present", &server.base, "data.gz", &good);
        fetch_quietly(&present, root.path()).0.unwrap();

        let missing = single("missing", &server.base, "data.gz", &good);
        let partial = single("partial", &server.base, "data.gz", &good);
        std::fs::create_dir_all(root.path().join("partial")).unwrap();
        std::fs::write(root.path().join("partial/data.gz.part"), &good[..1000]).unwrap();
        let corrupt = single("corrupt", &server.base, "data.gz", &good);
        std::fs::create_dir_all(root.path().join("corrupt")).unwrap();
        std::fs::write(root.path().join("corrupt/data.gz"), noise(5_000, 12)).unwrap();

        let sources = [present.clone(), missing, partial, corrupt];
        let states: Vec<FileState> = sources
            .iter()
            .map(|s| fetch::state(s, &s.dir(root.path())).unwrap().files[0].clone())
            .collect();
        assert_eq!(states[0], FileState::Verified);
        assert_eq!(states[1], FileState::Missing);
        assert_eq!(states[2], FileState::Partial { have: 1000 });
        assert!(matches!(states[3], FileState::Mismatch(_)));

        let data_root = DataRoot {
            path: root.path().to_path_buf(),
            chosen_by: "--dir",
        };
        let mut out = Vec::new();
        catalog::write_list(&sources, &data_root, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in [
            "present: ready",
            "missing: not fetched (`gpunet data fetch missing`)",
            "partial: incomplete",
            "corrupt: CORRUPT",
            "present, verified",
            "partial: 1000 B downloaded, the next fetch resumes",
            "CHECKSUM MISMATCH (MD5 expected",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        assert!(text.contains(&format!("data directory: {}", root.path().display())));
    });
}

// ---------------------------------------------------------------- the binary

fn gpunet(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gpunet"));
    command
        .args(args)
        .env_remove(catalog::MIRROR_ENV)
        .env_remove(catalog::DATA_DIR_ENV);
    // The server is on 127.0.0.1; a proxy from the environment must not get in between.
    for proxy in ["ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY"] {
        command.env_remove(proxy).env_remove(proxy.to_lowercase());
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the gpunet binary runs")
}

#[test]
fn cli_unknown_dataset_lists_the_known_ones() {
    bounded(60, || {
        let out = gpunet(&["data", "fetch", "imagenet"], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("unknown dataset \"imagenet\"; the known ones are: mnist, fashion-mnist, kmnist, cifar10, cifar100"),
            "{err}"
        );
    });
}

#[test]
fn cli_list_uses_gpunet_data_and_shows_every_dataset() {
    bounded(60, || {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().to_str().unwrap();
        let out = gpunet(&["data", "list"], &[("GPUNET_DATA", dir)]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("data directory: {dir} (from GPUNET_DATA)")),
            "{text}"
        );
        for name in ["mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100"] {
            assert!(
                text.contains(&format!("{name}: not fetched (`gpunet data fetch {name}`)")),
                "{name}:\n{text}"
            );
        }
        assert!(text.contains("cifar-10-binary.tar.gz"), "{text}");

        // --dir wins over GPUNET_DATA.
        let other = tempfile::tempdir().unwrap();
        let out = gpunet(
            &["data", "list", "--dir", other.path().to_str().unwrap()],
            &[("GPUNET_DATA", dir)],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("(from --dir)"), "{text}");
    });
}

#[test]
fn cli_fetch_goes_to_the_mirror_and_refuses_a_file_that_is_not_mnist() {
    bounded(120, || {
        // The mirror serves zeros of the right length in place of MNIST's first
        // file: the real published checksums must refuse them.
        const SIZE: usize = 9_912_422;
        let server = Server::start(|_, req, s| {
            if req.path == "/mnist/train-images-idx3-ubyte.gz" {
                head(s, "200 OK", &[("Content-Length", SIZE.to_string())]);
                let _ = s.write_all(&vec![0u8; SIZE]);
            } else {
                head(s, "404 Not Found", &[("Content-Length", "0".into())]);
            }
        });
        let root = tempfile::tempdir().unwrap();
        let out = gpunet(
            &[
                "data",
                "fetch",
                "mnist",
                "--dir",
                root.path().to_str().unwrap(),
            ],
            &[(catalog::MIRROR_ENV, &server.base)],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "downloading {}/mnist/train-images-idx3-ubyte.gz",
                server.base
            )),
            "{err}"
        );
        let zeros = Digests::of_bytes(&vec![0u8; SIZE]);
        for hash in [
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            &zeros.md5,
            &zeros.sha256,
        ] {
            assert!(err.contains(hash), "{hash} not in:\n{err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        assert!(listing(&root.path().join("mnist")).is_empty());
        assert_eq!(server.requests().len(), 1);
    });
}

#[test]
fn cli_fetch_reports_a_404_from_the_mirror() {
    bounded(60, || {
        let server = Server::start(|_, req, s| serve_file(s, req, &[], true));
        let root = tempfile::tempdir().unwrap();
        let out = gpunet(
            &[
                "data",
                "fetch",
                "cifar10",
                "--dir",
                root.path().to_str().unwrap(),
            ],
            &[(catalog::MIRROR_ENV, &server.base)],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "error: {}/cifar10/cifar-10-binary.tar.gz: the server answered HTTP 404 Not Found",
                server.base
            )),
            "{err}"
        );
    });
}
