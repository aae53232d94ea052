//! A client for OpenAI-compatible chat-completions endpoints (Ollama,
//! llama.cpp's server, vLLM, hosted APIs): one question in, one answer out.
//!
//! - The endpoint: a URL ending in `/chat/completions` is used as given;
//!   one ending in `/v1` gets `/chat/completions` appended; any other
//!   (a server's root, e.g. `http://localhost:11434`) gets
//!   `/v1/chat/completions`.
//! - A question is a text, optionally with a PNG; the PNG travels as a
//!   base64 `data:image/png;base64,…` URL in an `image_url` content part.
//! - The key, when `GPUNET_LLM_API_KEY` is set and not empty, goes in an
//!   `Authorization: Bearer` header and nowhere else: it is not in the
//!   request body, in any message or in `Debug` output.
//! - 429 and 5xx answers, timeouts and dropped connections are retried
//!   with exponential backoff (1 s, 2 s, 4 s, … at most 60 s), or after the
//!   server's `Retry-After` seconds when it gives them (at most 300 s).
//!   Any other status is an error naming the status and the URL.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};
use std::fmt;
use std::io::Write;
use std::time::Duration;

/// The environment variable the key is read from (only from there).
pub const API_KEY_VAR: &str = "GPUNET_LLM_API_KEY";

/// Where to ask and how patiently.
#[derive(Clone)]
pub struct LlmConfig {
    /// As the user gave it; see [`endpoint`] for the URL posted to.
    pub url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer`; never printed.
    pub api_key: Option<String>,
    /// The longest one request may take, answer included.
    pub timeout: Duration,
    /// Retries after the first attempt, on 429, 5xx and transport errors.
    pub retries: u32,
}

impl LlmConfig {
    /// A config whose key comes from `GPUNET_LLM_API_KEY` (unset or empty: no key).
    pub fn with_key_from_env(
        url: String,
        model: String,
        timeout: Duration,
        retries: u32,
    ) -> LlmConfig {
        let api_key = std::env::var(API_KEY_VAR).ok().filter(|k| !k.is_empty());
        LlmConfig {
            url,
            model,
            api_key,
            timeout,
            retries,
        }
    }
}

/// Shows whether a key is set, never the key.
impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field(
                "api_key",
                &self.api_key.as_ref().map(|_| "(set, not shown)"),
            )
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// The URL the questions are posted to (see the module comment).
pub fn endpoint(url: &str) -> Result<String> {
    let trimmed = url.trim().trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
        bail!(
            "--llm-url {url:?}: expected an http:// or https:// URL, e.g. http://localhost:11434"
        );
    }
    Ok(if trimmed.ends_with("/chat/completions") {
        trimmed.to_string()
    } else if trimmed.ends_with("/v1") {
        format!("{trimmed}/chat/completions")
    } else {
        format!("{trimmed}/v1/chat/completions")
    })
}

/// The JSON body of one question: a single user message whose content is
/// the text and, if given, the PNG as a data URL.
pub fn request_body(model: &str, text: &str, png: Option<&[u8]>) -> Value {
    let mut content = vec![json!({"type": "text", "text": text})];
    if let Some(png) = png {
        let data = base64::engine::general_purpose::STANDARD.encode(png);
        content.push(json!({
            "type": "image_url",
            "image_url": {"url": format!("data:image/png;base64,{data}")}
        }));
    }
    json!({
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "stream": false
    })
}

/// The answer's text: `choices[0].message.content`, a string or a list of
/// text parts.
pub fn answer_text(body: &Value) -> Option<String> {
    let content = body.pointer("/choices/0/message/content")?;
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => return None,
    };
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// `Retry-After` as a number of seconds (an HTTP date is not understood,
/// and the backoff applies instead), at most 300 s.
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    let seconds: f64 = value?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(300.0)))
}

/// The wait before retry `attempt` (0 for the first retry): 1 s doubling, at most 60 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(6)).min(Duration::from_secs(60))
}

/// Asks one endpoint, one question at a time.
pub struct ChatClient {
    agent: ureq::Agent,
    endpoint: String,
    config: LlmConfig,
}

/// Why an attempt failed, and whether trying again may help.
enum Failure {
    Retry { why: String, wait: Option<Duration> },
    Fatal(anyhow::Error),
}

impl ChatClient {
    pub fn new(config: &LlmConfig) -> Result<ChatClient> {
        if config.model.trim().is_empty() {
            bail!("--llm-model is empty: name the model the server should use, e.g. llava");
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            // Statuses are ours to report, with the URL.
            .http_status_as_error(false)
            .user_agent(concat!("gpunet/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(ChatClient {
            agent,
            endpoint: endpoint(&config.url)?,
            config: config.clone(),
        })
    }

    /// The URL questions are posted to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Asks `text` (with `png` attached) and returns the answer's text,
    /// retrying as the module comment says; notes each retry in `log`.
    pub fn ask(&self, text: &str, png: Option<&[u8]>, log: &mut dyn Write) -> Result<String> {
        let body = request_body(&self.config.model, text, png).to_string();
        let mut attempt = 0;
        loop {
            match self.attempt(&body) {
                Ok(answer) => return Ok(answer),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry { why, wait }) => {
                    if attempt >= self.config.retries {
                        bail!(
                            "{}: {why}, still after {} attempts; the answers so far are kept and a rerun continues from there",
                            self.endpoint,
                            attempt + 1
                        );
                    }
                    let wait = wait.unwrap_or_else(|| backoff(attempt));
                    let _ = writeln!(
                        log,
                        "{}: {why}; retrying in {:.1} s",
                        self.endpoint,
                        wait.as_secs_f64()
                    );
                    std::thread::sleep(wait);
                    attempt += 1;
                }
            }
        }
    }

    fn attempt(&self, body: &str) -> std::result::Result<String, Failure> {
        let mut request = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json");
        if let Some(key) = &self.config.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = match request.send(body) {
            Ok(r) => r,
            Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(Failure::Fatal(anyhow!(
                    "{}: connection refused; is the language-model server running there?",
                    self.endpoint
                )))
            }
            Err(ureq::Error::HostNotFound) => {
                return Err(Failure::Fatal(anyhow!("{}: host not found", self.endpoint)))
            }
            Err(e) => {
                return Err(Failure::Retry {
                    why: e.to_string(),
                    wait: None,
                })
            }
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string();
        if status == 429 || (500..600).contains(&status) {
            let wait = retry_after(
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
            );
            return Err(Failure::Retry {
                why: format!("HTTP {status}{}", excerpt(text.as_deref().unwrap_or(""))),
                wait,
            });
        }
        let text = text.map_err(|e| Failure::Retry {
            why: format!("reading the answer: {e}"),
            wait: None,
        })?;
        if !(200..300).contains(&status) {
            return Err(Failure::Fatal(anyhow!(
                "{}: HTTP {status}{}",
                self.endpoint,
                excerpt(&text)
            )));
        }
        let json: Value = serde_json::from_str(&text)
            .with_context(|| {
                format!(
                    "{}: the answer is not JSON{}",
                    self.endpoint,
                    excerpt(&text)
                )
            })
            .map_err(Failure::Fatal)?;
        answer_text(&json).ok_or_else(|| {
            Failure::Fatal(anyhow!(
                "{}: the answer has no text at choices[0].message.content{}",
                self.endpoint,
                excerpt(&text)
            ))
        })
    }
}

/// `: "…"` with the start of a server's message, or nothing when it is empty.
fn excerpt(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let short: String = text.chars().take(200).collect();
    let more = if short.len() < text.len() { "…" } else { "" };
    format!(": {short:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_the_url_or_its_chat_completions_path() {
        let cases = [
            (
                "http://localhost:11434",
                "http://localhost:11434/v1/chat/completions",
            ),
            (
                "http://localhost:11434/",
                "http://localhost:11434/v1/chat/completions",
            ),
            (
                "https://api.example.com/v1",
                "https://api.example.com/v1/chat/completions",
            ),
            (
                "http://h:8080/v1/chat/completions",
                "http://h:8080/v1/chat/completions",
            ),
            (
                "http://h/openai/deployments/x/chat/completions",
                "http://h/openai/deployments/x/chat/completions",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(endpoint(url).unwrap(), want, "{url}");
        }
        let err = endpoint("localhost:11434").unwrap_err().to_string();
        assert!(
            err.contains("--llm-url") && err.contains("http://"),
            "{err}"
        );
    }

    #[test]
    fn the_image_travels_as_a_png_data_url() {
        let body = request_body("m", "what is it?", Some(&[0x89, b'P', b'N', b'G']));
        assert_eq!(body["model"], "m");
        let parts = body["messages"][0]["content"].as_array().unwrap();
        assert_eq!(parts[0]["text"], "what is it?");
        assert_eq!(
            parts[1]["image_url"]["url"],
            "data:image/png;base64,iVBORw=="
        );
        let text_only = request_body("m", "hi", None);
        assert_eq!(
            text_only["messages"][0]["content"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn answers_are_read_from_the_first_choice() {
        let plain = json!({"choices": [{"message": {"content": "  a loop detector \n"}}]});
        assert_eq!(answer_text(&plain).unwrap(), "a loop detector");
        let parts = json!({"choices": [{"message": {"content": [{"type": "text", "text": "a "}, {"type": "text", "text": "b"}]}}]});
        assert_eq!(answer_text(&parts).unwrap(), "a b");
        assert!(answer_text(&json!({"choices": []})).is_none());
        assert!(answer_text(&json!({"choices": [{"message": {"content": " "}}]})).is_none());
    }

    #[test]
    fn retry_after_seconds_are_honoured_and_capped() {
        assert_eq!(retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(retry_after(Some("99999")), Some(Duration::from_secs(300)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(retry_after(None), None);
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(30), Duration::from_secs(60));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let cfg = LlmConfig {
            url: "http://x".into(),
            model: "m".into(),
            api_key: Some("sk-secret".into()),
            timeout: Duration::from_secs(1),
            retries: 0,
        };
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("sk-secret") && shown.contains("not shown"),
            "{shown}"
        );
    }
}
