//! The datasets `gpunet data fetch` knows: where each file is published, its
//! size and checksums, and what is done with it once it is verified. Also
//! where datasets live on disk, and `gpunet data list`.
//!
//! Checksums and where they come from (none of them computed here: this
//! machine cannot reach the dataset hosts):
//! - MD5: torchvision's published list (`torchvision/datasets/mnist.py`) for
//!   MNIST, Fashion-MNIST and KMNIST. torchvision downloads CIFAR's *Python*
//!   archives, so for the *binary* archives used here the MD5s are the ones
//!   the dataset's authors publish on <https://www.cs.toronto.edu/~kriz/cifar.html>.
//! - SHA-256 and sizes: TensorFlow Datasets' published checksum lists
//!   (`tensorflow_datasets/url_checksums/*.txt`), recorded for the same URLs
//!   as ours, except MNIST's, which TFDS records for its copy of the same
//!   files on `storage.googleapis.com/cvdf-datasets/mnist/` (same sizes as
//!   the originals).
//!
//! A download must match its size, its MD5 and its SHA-256.
//!
//! On disk: `ROOT/NAME/FILE` for each file (`ROOT/mnist/train-images-idx3-ubyte.gz`,
//! which the IDX reader reads as it is); an archive's members are written
//! beside it with the archive's top folder stripped
//! (`ROOT/cifar10/data_batch_1.bin`). ROOT is `--dir`, else `GPUNET_DATA`,
//! else `gpunet` in the user's cache directory.

use super::fetch::{self, FetchError, FileState};
use indicatif::HumanBytes;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Overrides the host of every dataset: files are fetched from
/// `MIRROR/NAME/FILE` instead (a local mirror laid out as the data directory,
/// or the tests' server).
pub const MIRROR_ENV: &str = "GPUNET_DATA_MIRROR";
/// The data directory when `--dir` is not given.
pub const DATA_DIR_ENV: &str = "GPUNET_DATA";

/// One file as it is published.
#[derive(Debug, Clone)]
pub struct RemoteFile {
    /// The name on the server and on disk.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex.
    pub md5: String,
    /// Lower-case hex.
    pub sha256: String,
}

/// What is done with a verified download.
#[derive(Debug, Clone)]
pub enum Unpack {
    /// Kept as it is (gzip-compressed IDX files: the reader decompresses them).
    Keep,
    /// A `.tar.gz` whose members all sit in one folder `prefix/`; they are
    /// written into the dataset's directory without that folder.
    TarGz {
        prefix: String,
        /// Members that must be there afterwards (the archive may hold more).
        members: Vec<Member>,
    },
}

/// A file an archive must yield.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    /// Checked where the format fixes it (CIFAR's record files).
    pub size: Option<u64>,
}

/// A dataset that can be fetched.
#[derive(Debug, Clone)]
pub struct Source {
    /// What the user types: `gpunet data fetch NAME`; also the folder name.
    pub name: String,
    /// One line for `data list`.
    pub title: String,
    /// The files are fetched from `base_url` + file name.
    pub base_url: String,
    pub files: Vec<RemoteFile>,
    pub unpack: Unpack,
}

impl Source {
    pub fn url(&self, file: &RemoteFile) -> String {
        format!("{}{}", self.base_url, file.name)
    }

    /// The same dataset fetched from `MIRROR/NAME/FILE`.
    pub fn with_mirror(&self, mirror: &str) -> Source {
        Source {
            base_url: format!("{}/{}/", mirror.trim_end_matches('/'), self.name),
            ..self.clone()
        }
    }

    /// Where this dataset lives under the data directory `root`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(&self.name)
    }
}

fn file(name: &str, size: u64, md5: &str, sha256: &str) -> RemoteFile {
    RemoteFile {
        name: name.into(),
        size,
        md5: md5.into(),
        sha256: sha256.into(),
    }
}

fn member(name: &str, size: Option<u64>) -> Member {
    Member {
        name: name.into(),
        size,
    }
}

/// CIFAR's binary records: a label byte (two for CIFAR-100: coarse, fine)
/// then 3×32×32 pixel bytes.
const CIFAR10_BATCH: u64 = 10_000 * (1 + 3072);
const CIFAR100_RECORD: u64 = 2 + 3072;

/// Every dataset gpunet can fetch, from its canonical public host.
/// The class names of an IDX dataset whose classes are not digits, written
/// beside its files as `classes.txt` (which the IDX reader reads): from
/// Fashion-MNIST's README and KMNIST's `kmnist_classmap.csv`.
pub fn class_names(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "fashion-mnist" => Some(&[
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ]),
        "kmnist" => Some(&[
            "o (お)",
            "ki (き)",
            "su (す)",
            "tsu (つ)",
            "na (な)",
            "ha (は)",
            "ma (ま)",
            "ya (や)",
            "re (れ)",
            "wo (を)",
        ]),
        _ => None,
    }
}

pub fn known() -> Vec<Source> {
    let idx = |name: &str, title: &str, base_url: &str, files: [RemoteFile; 4]| Source {
        name: name.into(),
        title: title.into(),
        base_url: base_url.into(),
        files: files.into(),
        unpack: Unpack::Keep,
    };
    vec![
        idx(
            "mnist",
            "MNIST: handwritten digits, 28×28 grey, 10 classes",
            // The mirror torchvision uses (yann.lecun.com no longer serves them reliably).
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            [
                file(
                    "train-images-idx3-ubyte.gz",
                    9_912_422,
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                ),
                file(
                    "train-labels-idx1-ubyte.gz",
                    28_881,
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                ),
                file(
                    "t10k-images-idx3-ubyte.gz",
                    1_648_877,
                    "9fb629c4189551a2d022fa330f9573f3",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                ),
                file(
                    "t10k-labels-idx1-ubyte.gz",
                    4_542,
                    "ec29112dd5afa0611ce80d1b7f02629c",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                ),
            ],
        ),
        idx(
            "fashion-mnist",
            "Fashion-MNIST: clothing, 28×28 grey, 10 classes",
            // Zalando's S3 bucket (its website endpoint serves plain HTTP only).
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            [
                file(
                    "train-images-idx3-ubyte.gz",
                    26_421_880,
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                ),
                file(
                    "train-labels-idx1-ubyte.gz",
                    29_515,
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                ),
                file(
                    "t10k-images-idx3-ubyte.gz",
                    4_422_102,
                    "bef4ecab320f06d8554ea6380940ec79",
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                ),
                file(
                    "t10k-labels-idx1-ubyte.gz",
                    5_148,
                    "bb300cfdad3c16e7a12a480ee83cd310",
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                ),
            ],
        ),
        idx(
            "kmnist",
            "Kuzushiji-MNIST: cursive Japanese characters, 28×28 grey, 10 classes",
            "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
            [
                file(
                    "train-images-idx3-ubyte.gz",
                    18_165_135,
                    "bdb82020997e1d708af4cf47b453dcf7",
                    "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
                ),
                file(
                    "train-labels-idx1-ubyte.gz",
                    29_497,
                    "e144d726b3acfaa3e44228e80efcd344",
                    "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
                ),
                file(
                    "t10k-images-idx3-ubyte.gz",
                    3_041_136,
                    "5c965bf0a639b31b8f53240b1b52f4d7",
                    "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
                ),
                file(
                    "t10k-labels-idx1-ubyte.gz",
                    5_120,
                    "7320c461ea6c1c855c0b718fb2a4b134",
                    "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
                ),
            ],
        ),
        Source {
            name: "cifar10".into(),
            title: "CIFAR-10: photos, 32×32 colour, 10 classes (binary version)".into(),
            base_url: "https://www.cs.toronto.edu/~kriz/".into(),
            files: vec![file(
                "cifar-10-binary.tar.gz",
                170_052_171,
                "c32a1d4ab5d03f1284b67883e8d87530",
                "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            )],
            unpack: Unpack::TarGz {
                prefix: "cifar-10-batches-bin".into(),
                members: vec![
                    member("data_batch_1.bin", Some(CIFAR10_BATCH)),
                    member("data_batch_2.bin", Some(CIFAR10_BATCH)),
                    member("data_batch_3.bin", Some(CIFAR10_BATCH)),
                    member("data_batch_4.bin", Some(CIFAR10_BATCH)),
                    member("data_batch_5.bin", Some(CIFAR10_BATCH)),
                    member("test_batch.bin", Some(CIFAR10_BATCH)),
                    member("batches.meta.txt", None),
                ],
            },
        },
        Source {
            name: "cifar100".into(),
            title: "CIFAR-100: photos, 32×32 colour, 100 fine / 20 coarse classes (binary version)"
                .into(),
            base_url: "https://www.cs.toronto.edu/~kriz/".into(),
            files: vec![file(
                "cifar-100-binary.tar.gz",
                168_513_733,
                "03b5dce01913d631647c71ecec9e9cb8",
                "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
            )],
            unpack: Unpack::TarGz {
                prefix: "cifar-100-binary".into(),
                members: vec![
                    member("train.bin", Some(50_000 * CIFAR100_RECORD)),
                    member("test.bin", Some(10_000 * CIFAR100_RECORD)),
                    member("fine_label_names.txt", None),
                    member("coarse_label_names.txt", None),
                ],
            },
        },
    ]
}

/// The known dataset called `name` (case and `_`/`-` do not matter), fetched
/// from `GPUNET_DATA_MIRROR` when that is set.
pub fn find(name: &str) -> Result<Source, FetchError> {
    let wanted = name.trim().to_ascii_lowercase().replace('_', "-");
    let all = known();
    match all.iter().find(|s| s.name == wanted) {
        Some(source) => Ok(match mirror() {
            Some(m) => source.with_mirror(&m),
            None => source.clone(),
        }),
        None => Err(FetchError::UnknownDataset {
            name: name.to_string(),
            known: all.iter().map(|s| s.name.clone()).collect(),
        }),
    }
}

/// `GPUNET_DATA_MIRROR`, when set and not empty.
pub fn mirror() -> Option<String> {
    std::env::var(MIRROR_ENV)
        .ok()
        .filter(|m| !m.trim().is_empty())
}

/// The data directory and what chose it (for messages).
#[derive(Debug, Clone)]
pub struct DataRoot {
    pub path: PathBuf,
    pub chosen_by: &'static str,
}

/// `--dir` if given, else `GPUNET_DATA`, else `gpunet` under the user's cache
/// directory (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on
/// macOS, `%LOCALAPPDATA%` on Windows).
pub fn data_root(dir_flag: Option<&Path>) -> anyhow::Result<DataRoot> {
    if let Some(dir) = dir_flag {
        return Ok(DataRoot {
            path: dir.to_path_buf(),
            chosen_by: "--dir",
        });
    }
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(DataRoot {
            path: PathBuf::from(dir),
            chosen_by: DATA_DIR_ENV,
        });
    }
    match dirs::cache_dir() {
        Some(cache) => Ok(DataRoot {
            path: cache.join("gpunet"),
            chosen_by: "the user's cache directory",
        }),
        None => anyhow::bail!(
            "cannot tell where the user's cache directory is (no HOME?): pass --dir DIR or set {DATA_DIR_ENV}"
        ),
    }
}

/// The folder of a fetched dataset, or an error that says how to fetch it.
pub fn locate(name: &str, root: &DataRoot) -> anyhow::Result<PathBuf> {
    let source = find(name)?;
    let dir = source.dir(&root.path);
    let ready = fetch::state(&source, &dir)
        .map(|s| s.ready())
        .unwrap_or(false);
    if ready {
        Ok(dir)
    } else {
        anyhow::bail!(
            "dataset {} is not in {} (data directory from {}): run `gpunet data fetch {}`",
            source.name,
            dir.display(),
            root.chosen_by,
            source.name
        )
    }
}

/// `gpunet data list`: each dataset, its files with their sizes, and whether
/// each is present and matches its checksums in `root`. Hashes every file
/// that is there (about a second for both CIFAR archives).
pub fn write_list(sources: &[Source], root: &DataRoot, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "data directory: {} (from {})",
        root.path.display(),
        root.chosen_by
    )?;
    for source in sources {
        let dir = source.dir(&root.path);
        writeln!(out)?;
        let state = match fetch::state(source, &dir) {
            Ok(state) => state,
            Err(e) => {
                writeln!(out, "{}: cannot read {}: {e}", source.name, dir.display())?;
                continue;
            }
        };
        writeln!(out, "{}: {}", source.name, state.summary(&source.name))?;
        writeln!(out, "  {}", source.title)?;
        for (file, file_state) in source.files.iter().zip(&state.files) {
            writeln!(
                out,
                "  {:<28} {:>11}  {}",
                file.name,
                HumanBytes(file.size).to_string(),
                describe(file_state)
            )?;
        }
        if let Unpack::TarGz { members, .. } = &source.unpack {
            let missing = &state.members_missing;
            if missing.is_empty() {
                writeln!(out, "  extracted: {} files", members.len())?;
            } else if missing.len() == members.len() {
                writeln!(out, "  not extracted")?;
            } else {
                writeln!(out, "  extracted, but lacks {}", missing.join(", "))?;
            }
        }
    }
    Ok(())
}

fn describe(state: &FileState) -> String {
    match state {
        FileState::Missing => "missing".into(),
        FileState::Partial { have } => format!(
            "partial: {} downloaded, the next fetch resumes",
            HumanBytes(*have)
        ),
        FileState::Verified => "present, verified".into(),
        FileState::WrongSize { have } => {
            format!("present but WRONG SIZE ({have} bytes)")
        }
        FileState::Mismatch(m) => format!("present but CHECKSUM MISMATCH ({})", fetch::join(m)),
    }
}
