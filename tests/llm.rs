//! `inspect --prompts --llm-url`: the neuron write-up prompts, asked of a
//! chat-completions server that each test starts on 127.0.0.1, in order,
//! with the statistics and images, retried, resumed, and their answers in
//! writeups.json and the report.

mod common;

use base64::Engine as _;
use common::mnist_dir;
use gpunet::backend::Optimizer;
use gpunet::inspect::analysis::{self, UnitStats};
use gpunet::inspect::report;
use gpunet::model_file;
use gpunet::schedule::ScheduleKind;
use gpunet::spec::ModelSpec;
use gpunet::train::{train, DeviceChoice, TrainConfig};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The test images every run inspects.
const TEST_IMAGES: usize = 60;
/// The hidden unit the fixture kills (weights 0, bias −1: zero after relu).
const DEAD: usize = 2;
const MODEL_NAME: &str = "test-vision-model";

// ---------------------------------------------------------------- fixture

/// A `dense6,relu,dense10` trained briefly on the CPU, with unit DEAD of
/// its hidden layer made dead; built once per test binary.
fn model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        // One fixed place, rebuilt by each run, so runs leave no litter.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("llm-fixture");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("small.safetensors");
        let cfg = TrainConfig {
            spec: Some(ModelSpec::parse("dense6,relu,dense10").unwrap()),
            expected_input: None,
            device: DeviceChoice::Cpu,
            epochs: 1,
            batch: 64,
            optimizer: Optimizer::Sgd {
                momentum: 0.9,
                weight_decay: 0.0,
                nesterov: false,
            },
            lr: 0.02,
            schedule: ScheduleKind::Constant,
            warmup_steps: 0,
            step_epochs: 1,
            gamma: 1.0,
            seed: 3,
            label_smoothing: 0.0,
            no_bias_decay: false,
            data: mnist_dir(),
            train_limit: Some(1000),
            test_limit: Some(200),
            save: Some(path.clone()),
            checkpoint_every: 0,
            resume: None,
            log: None,
            log_every: 0,
            plot: None,
            snapshot_every: 0,
            normalize: Default::default(),
            augment: Default::default(),
            image_size: None,
        };
        train(&cfg, &mut std::io::sink(), &mut |_| Ok(())).unwrap();
        let mut saved = model_file::load(&path).unwrap();
        let graph = &saved.graph;
        let weights = graph.params[graph.nodes[0].params[0]].range();
        let bias = graph.params[graph.nodes[0].params[1]].range();
        let inputs = graph.input_size();
        saved.params[weights][DEAD * inputs..(DEAD + 1) * inputs].fill(0.0);
        saved.params[bias][DEAD] = -1.0;
        model_file::save(&path, &saved).unwrap();
        path
    })
}

/// The hidden layer's statistics over the inspected images, as inspect computes them.
fn hidden_stats() -> UnitStats {
    let saved = model_file::load(model()).unwrap();
    let mut backend = report::open(DeviceChoice::Cpu, &saved).unwrap();
    let test = report::test_data(&mnist_dir(), Some(TEST_IMAGES)).unwrap();
    let mut stats =
        analysis::unit_stats(backend.as_mut(), &saved.graph, &test, saved.graph.classes()).unwrap();
    assert_eq!(stats.len(), 1);
    stats.remove(0)
}

// ---------------------------------------------------------------- server

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    at: Instant,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the request body is JSON")
    }

    /// The text of the user message.
    fn text(&self) -> String {
        self.json()["messages"][0]["content"][0]["text"]
            .as_str()
            .expect("a text part first")
            .to_string()
    }

    /// The attached image's bytes, if one is attached.
    fn image(&self) -> Option<Vec<u8>> {
        let url = self.json()["messages"][0]["content"][1]["image_url"]["url"]
            .as_str()?
            .to_string();
        let data = url
            .strip_prefix("data:image/png;base64,")
            .expect("a PNG data URL");
        Some(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap(),
        )
    }

    /// The prompt's first line: "# Unit 0:3 …", "# Layer 0 …" or "# The whole …".
    fn title(&self) -> String {
        self.text().lines().next().unwrap_or_default().to_string()
    }
}

/// What the server answers one request with.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

/// A 200 whose answer names the prompt it answers.
fn canned(request: &Request) -> Reply {
    let answer = canned_answer(&request.title());
    Reply {
        status: 200,
        headers: Vec::new(),
        body: serde_json::json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]
        })
        .to_string(),
    }
}

fn canned_answer(title: &str) -> String {
    format!("Canned answer to «{}».", title.trim_start_matches("# "))
}

fn status(code: u16, retry_after: Option<&str>) -> Reply {
    Reply {
        status: code,
        headers: retry_after
            .map(|s| vec![("Retry-After", s.to_string())])
            .unwrap_or_default(),
        body: format!("{{\"error\": \"status {code} from the test server\"}}"),
    }
}

struct Server {
    base: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    /// Answers request `n` (counting from 0) with `handler`.
    fn start(handler: impl Fn(usize, &Request) -> Reply + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                let n = {
                    let mut seen = log.lock().unwrap();
                    seen.push(request.clone());
                    seen.len() - 1
                };
                let reply = handler(n, &request);
                let mut head = format!(
                    "HTTP/1.1 {} Test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                    reply.status,
                    reply.body.len()
                );
                for (name, value) in &reply.headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(reply.body.as_bytes());
                let _ = stream.flush();
            }
        });
        Server { base, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let at = Instant::now();
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut words = first.split_whitespace();
    let method = words.next()?.to_string();
    let path = words.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().expect("a numeric Content-Length"))
        .expect("the client sends a Content-Length");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8(body).expect("a UTF-8 body"),
        at,
    })
}

// ---------------------------------------------------------------- running

/// `gpunet inspect` on the fixture into `out`, with `extra` flags; the key
/// variable set to `key` or removed.
fn inspect(out: &Path, extra: &[&str], key: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gpunet"));
    command.args(["inspect", "--model"]).arg(model());
    command.arg("--out").arg(out).arg("--data").arg(mnist_dir());
    command.args([
        "--device",
        "cpu",
        "--test-limit",
        &TEST_IMAGES.to_string(),
        "--ascent-steps",
        "5",
        "--mistakes",
        "3",
    ]);
    command.args(extra);
    match key {
        Some(k) => command.env("GPUNET_LLM_API_KEY", k),
        None => command.env_remove("GPUNET_LLM_API_KEY"),
    };
    command.output().unwrap()
}

fn ask(out: &Path, server: &Server, extra: &[&str], key: Option<&str>) -> Output {
    let mut args = vec!["--llm-url", &server.base, "--llm-model", MODEL_NAME];
    args.extend_from_slice(extra);
    inspect(out, &args, key)
}

#[track_caller]
fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "inspect failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The hidden units that are not dead on the inspected images: all but
/// DEAD, unless training killed others too (checked to leave at least 3).
fn live_units() -> Vec<usize> {
    static LIVE: OnceLock<Vec<usize>> = OnceLock::new();
    LIVE.get_or_init(|| {
        let stats = hidden_stats();
        assert!(stats.dead.contains(&DEAD), "{:?}", stats.dead);
        let live: Vec<usize> = (0..stats.layer.units)
            .filter(|u| !stats.dead.contains(u))
            .collect();
        assert!(live.len() >= 3, "too few live units: {live:?}");
        live
    })
    .clone()
}

/// writeups.json as it must be when every prompt is answered.
fn complete_writeups() -> Value {
    let units: serde_json::Map<String, Value> = live_units()
        .into_iter()
        .map(|u| {
            (
                format!("0:{u}"),
                Value::String(canned_answer(&format!(
                    "# Unit 0:{u} of an image classifier"
                ))),
            )
        })
        .collect();
    serde_json::json!({
        "units": units,
        "layers": {"0": canned_answer("# Layer 0 (`layers.0 (dense6, relu)`) of an image classifier")},
        "network": canned_answer("# The whole image classifier"),
    })
}

fn writeups(out: &Path) -> Value {
    serde_json::from_str(&read(&out.join("writeups.json"))).unwrap()
}

// ---------------------------------------------------------------- tests

#[test]
fn asks_units_then_the_layer_then_the_network_and_keeps_the_answers() {
    let server = Server::start(|_, r| canned(r));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let output = ask(&out, &server, &[], None);
    assert_success(&output);
    let requests = server.requests();
    let titles: Vec<String> = requests.iter().map(Request::title).collect();
    let mut want: Vec<String> = live_units()
        .iter()
        .map(|u| format!("# Unit 0:{u} of an image classifier"))
        .collect();
    want.push("# Layer 0 (`layers.0 (dense6, relu)`) of an image classifier".into());
    want.push("# The whole image classifier".into());
    assert_eq!(
        titles, want,
        "units, then the layer, then the network; the dead unit {DEAD} never"
    );

    let stats = hidden_stats();
    let test = report::test_data(&mnist_dir(), Some(TEST_IMAGES)).unwrap();
    for (r, &u) in requests.iter().zip(&live_units()) {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/v1/chat/completions")
        );
        assert_eq!(r.json()["model"], MODEL_NAME);
        assert_eq!(r.header("authorization"), None, "no key set, no header");
        assert!(!r.body.contains("Bearer"));
        let text = r.text();
        assert_eq!(text, read(&out.join(format!("prompts/units/0-{u}.md"))));
        for c in 0..10 {
            let images = test.labels.iter().filter(|&&l| l as usize == c).count();
            let row = format!(
                "| {c} | {images} | {:.3} | {:.3} |",
                stats.mean[c][u], stats.std[c][u]
            );
            assert!(text.contains(&row), "unit 0:{u}: no row {row:?} in\n{text}");
        }
        for background in [
            "dense6,relu,dense10",
            "Dataset: mnist",
            "train accuracy",
            "test accuracy",
            "Task",
        ] {
            assert!(
                text.contains(background),
                "unit 0:{u}: no {background:?} in\n{text}"
            );
        }
        let png = r.image().expect("the unit's image is attached");
        assert_eq!(
            png,
            std::fs::read(out.join(format!("prompts/units/0-{u}.png"))).unwrap()
        );
        assert_eq!(&png[1..4], b"PNG");
    }
    assert!(!out.join(format!("prompts/units/0-{DEAD}.md")).exists());
    let layer = requests[live_units().len()].text();
    assert!(
        layer.contains(&format!("### Unit 0:{DEAD}\n\nDead")),
        "{layer}"
    );
    for &u in &live_units() {
        assert!(layer.contains(&canned_answer(&format!(
            "# Unit 0:{u} of an image classifier"
        ))));
    }
    let network = requests.last().unwrap();
    assert!(network.image().is_none() && requests[live_units().len()].image().is_none());
    let network = network.text();
    assert!(network.contains(
        &complete_writeups()["layers"]["0"]
            .as_str()
            .unwrap()
            .to_string()
    ));
    assert!(
        network.contains("| 7 | 0:"),
        "each output's strongest inputs:\n{network}"
    );

    assert_eq!(writeups(&out), complete_writeups());
    let index = read(&out.join("index.html"));
    let page = read(&out.join("writeups.html"));
    for answer in [
        complete_writeups()["units"][format!("0:{}", live_units()[0])]
            .as_str()
            .unwrap(),
        complete_writeups()["layers"]["0"].as_str().unwrap(),
        complete_writeups()["network"].as_str().unwrap(),
    ] {
        let escaped = answer.replace('`', "&#96;");
        assert!(
            index.contains(answer) || index.contains(&escaped),
            "index.html lacks {answer:?}"
        );
        assert!(
            page.contains(answer) || page.contains(&escaped),
            "writeups.html lacks {answer:?}"
        );
    }
    assert!(page.contains(&format!("0:{DEAD}</b>")) && page.contains("Dead"));
    assert!(page.contains(&format!("prompts/units/0-{}.png", live_units()[0])));
    // A second run has nothing left to ask.
    let again = ask(&out, &server, &[], None);
    assert_success(&again);
    assert_eq!(server.requests().len(), requests.len());
}

#[test]
fn the_key_travels_in_the_bearer_header_only() {
    const KEY: &str = "sk-test-4d1f7a";
    let server = Server::start(|_, r| canned(r));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let output = ask(&out, &server, &[], Some(KEY));
    assert_success(&output);
    let requests = server.requests();
    assert_eq!(requests.len(), live_units().len() + 2);
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert!(!r.body.contains(KEY));
    }
    for text in [&output.stdout, &output.stderr] {
        assert!(!String::from_utf8_lossy(text).contains(KEY));
    }
    for entry in walk(&out) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "{} holds the key",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_429_is_retried_after_the_servers_retry_after() {
    let server = Server::start(|n, r| {
        if n == 0 {
            status(429, Some("1"))
        } else {
            canned(r)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let output = ask(&out, &server, &[], None);
    assert_success(&output);
    let requests = server.requests();
    assert_eq!(requests.len(), live_units().len() + 3);
    assert_eq!(requests[0].body, requests[1].body, "the same prompt again");
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("HTTP 429") && stderr.contains("retrying"),
        "{stderr}"
    );
    assert_eq!(writeups(&out), complete_writeups());
}

#[test]
fn a_persistent_500_fails_naming_the_status_and_the_url() {
    let server = Server::start(|_, _| status(500, Some("0")));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let output = ask(&out, &server, &["--llm-retries", "2"], None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let url = format!("{}/v1/chat/completions", server.base);
    assert!(
        stderr.contains("HTTP 500") && stderr.contains(&url),
        "{stderr}"
    );
    assert!(
        stderr.contains("after 3 attempts") && stderr.contains("unit 0:0"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(server.requests().len(), 3, "one try and two retries");
    // The report and the prompts are there all the same.
    assert!(out.join("index.html").is_file() && out.join("prompts/network.md").is_file());
    assert!(!out.join("writeups.json").exists());
}

#[test]
fn a_rerun_asks_only_for_the_missing_prompts() {
    const ANSWERED: usize = 2;
    let failing = Server::start(|n, r| {
        if n < ANSWERED {
            canned(r)
        } else {
            status(503, Some("0"))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let first = ask(&out, &failing, &["--llm-retries", "0"], None);
    assert!(!first.status.success());
    let partial = writeups(&out);
    let answered: Vec<String> = live_units()[..ANSWERED]
        .iter()
        .map(|u| format!("0:{u}"))
        .collect();
    let keys: Vec<String> = partial["units"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, answered);
    assert!(partial.get("network").is_none() && partial["layers"].as_object().unwrap().is_empty());

    let server = Server::start(|_, r| canned(r));
    let second = ask(&out, &server, &[], None);
    assert_success(&second);
    let titles: Vec<String> = server.requests().iter().map(Request::title).collect();
    let mut want: Vec<String> = live_units()[ANSWERED..]
        .iter()
        .map(|u| format!("# Unit 0:{u} of an image classifier"))
        .collect();
    want.push("# Layer 0 (`layers.0 (dense6, relu)`) of an image classifier".into());
    want.push("# The whole image classifier".into());
    assert_eq!(titles, want);
    assert_eq!(writeups(&out), complete_writeups());
}

#[test]
fn prompts_alone_are_written_for_pasting() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let output = inspect(&out, &["--prompts"], None);
    assert_success(&output);
    for &u in &live_units() {
        let text = read(&out.join(format!("prompts/units/0-{u}.md")));
        assert!(text.contains(&format!("](0-{u}.png)")), "{text}");
        assert!(out.join(format!("prompts/units/0-{u}.png")).is_file());
    }
    assert!(!out.join(format!("prompts/units/0-{DEAD}.md")).exists());
    let layer = read(&out.join("prompts/layers/0.md"));
    let first = live_units()[0];
    assert!(
        layer.contains(&format!(
            "paste here the answer to prompts/units/0-{first}.md"
        )),
        "{layer}"
    );
    assert!(
        layer.contains(&format!("### Unit 0:{DEAD}\n\nDead")),
        "{layer}"
    );
    let network = read(&out.join("prompts/network.md"));
    assert!(
        network.contains("paste here the answer to prompts/layers/0.md"),
        "{network}"
    );
    assert!(!out.join("writeups.json").exists());
    assert!(read(&out.join("index.html")).contains("Neuron write-ups"));
}

#[test]
fn the_server_flags_come_together() {
    let dir = tempfile::tempdir().unwrap();
    let output = inspect(dir.path(), &["--llm-url", "http://127.0.0.1:9"], None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--llm-model"), "{stderr}");
}
