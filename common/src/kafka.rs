//! Kafka client configuration shared by every binary.
//!
//! - `reach`: the start-up check that a broker answers, and [`Watch`], the context that notices refusals.
//! - [`refusal`]: which of librdkafka's errors mean the broker refuses this client, and what to fix.

mod reach;
pub mod refusal;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{FromClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::types::RDKafkaConfRes;
use tracing::info;

pub use self::reach::Watch;
pub use self::refusal::Refusal;
use crate::{Error, Result, redact};

/// Connection flags common to every binary.
#[derive(Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(long, env = "FRAMEWIRE_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,

    /// One librdkafka setting, taken whole (commas in VALUE are kept: -X debug=broker,topic); repeatable.
    /// Wins over framewire's defaults and, key by key, over --kafka-options.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,

    /// librdkafka settings, one KEY=VALUE per line (commas, `;` and `=` in a VALUE are kept; blank lines and
    /// lines starting with # are skipped). Give secrets here rather than with -X: other users can read
    /// command lines (`ps`).
    #[arg(long = "kafka-options", value_name = "LINES", env = "FRAMEWIRE_KAFKA_OPTIONS", hide_env_values = true)]
    pub options: Option<String>,

    /// How long to wait for the brokers at start-up before giving up with an error.
    #[arg(long, env = "FRAMEWIRE_CONNECT_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
}

/// Settings are shown with their secrets hidden: a `{:?}` of the config must be safe to log.
impl std::fmt::Debug for KafkaArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |(k, v): (&str, &str)| redact::setting(k, v);
        let overrides: Vec<String> =
            self.overrides.iter().map(|o| o.split_once('=').map_or_else(|| redact::HIDDEN.into(), shown)).collect();
        let options: Option<Vec<String>> = self.options.as_deref().map(|text| {
            entries(text).map(|(_, line)| line.split_once('=').map_or_else(|| redact::HIDDEN.into(), shown)).collect()
        });
        f.debug_struct("KafkaArgs")
            .field("brokers", &redact::url(&self.brokers))
            .field("overrides", &overrides)
            .field("options", &options)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl KafkaArgs {
    /// The `-X` and `--kafka-options` settings merged: `--kafka-options` (FRAMEWIRE_KAFKA_OPTIONS) first, then
    /// each `-X` replacing the value of the same key, so a deployment's environment can hold the common
    /// settings and one command line change one of them without repeating the rest.
    pub fn settings(&self) -> Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: &str| match out.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => out.push((k.to_string(), v.to_string())),
        };
        for (k, v) in parse_options(self.options.as_deref().unwrap_or_default())? {
            put(k, v);
        }
        for o in &self.overrides {
            let (k, v) = parse_override(o)?;
            put(k, v);
        }
        Ok(out)
    }

    /// A client config with the brokers set, `base` (the binary's defaults) on top, and the settings of
    /// [`KafkaArgs::settings`] last, so they win. Every setting is checked with librdkafka here: a bad one
    /// is an error that names it, with secret values hidden.
    pub fn config(&self, base: &[(&str, &str)]) -> Result<ClientConfig> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        for (k, v) in base {
            cfg.set(*k, *v);
        }
        for (k, v) in self.settings()? {
            cfg.set(k, v);
        }
        cfg.create_native_config().map_err(|e| hide(&cfg, e))?;
        Ok(cfg)
    }

    /// A client (producer, consumer, admin) from [`KafkaArgs::config`]; its creation errors have secret
    /// values hidden.
    pub fn create<T: FromClientConfig>(&self, base: &[(&str, &str)]) -> Result<T> {
        let cfg = self.config(base)?;
        cfg.create().map_err(|e| hide(&cfg, e))
    }

    /// Like [`KafkaArgs::create`], with a client context.
    pub fn create_with_context<C: ClientContext, T: FromClientConfigAndContext<C>>(
        &self,
        base: &[(&str, &str)],
        context: C,
    ) -> Result<T> {
        let cfg = self.config(base)?;
        cfg.create_with_context(context).map_err(|e| hide(&cfg, e))
    }

    /// Creates each topic that does not exist yet. Existing topics are left as they are.
    pub async fn ensure_topics(&self, topics: &[(&str, i32)], replication: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.create(&[])?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|(name, parts)| NewTopic::new(name, *parts, TopicReplication::Fixed(replication)))
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(self.connect_timeout));
        for result in admin.create_topics(new.iter(), &opts).await? {
            match result {
                Ok(topic) => info!(%topic, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(Error::CreateTopic { topic, reason: code.to_string() }),
            }
        }
        Ok(())
    }
}

/// Splits one `-X` value at its first `=`: the rest, commas and all, is the value.
pub fn parse_override(s: &str) -> Result<(&str, &str)> {
    parse_entry(s, "-X")
}

/// Parses `--kafka-options` (FRAMEWIRE_KAFKA_OPTIONS): one `key=value` per line, since a value may hold
/// commas (`debug=broker,topic`, cipher lists), semicolons and `=` (passwords), but never a line break.
pub fn parse_options(text: &str) -> Result<Vec<(&str, &str)>> {
    entries(text).map(|(n, line)| parse_entry(line, &format!("FRAMEWIRE_KAFKA_OPTIONS line {n}"))).collect()
}

/// The lines of `--kafka-options` that hold a setting, numbered from 1.
fn entries(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn parse_entry<'a>(s: &'a str, origin: &str) -> Result<(&'a str, &'a str)> {
    if let Some((k, v)) = s.split_once('=') {
        let k = k.trim();
        if is_property_name(k) {
            return Ok((k, v.trim()));
        }
    }
    // The entry is echoed only when it is nothing but the name of a librdkafka property: anything else
    // may be a secret typed with the wrong separator (`sasl.password:hunter2`) or on its own.
    let name = s.trim();
    let known = is_property_name(name) && {
        let mut probe = ClientConfig::new();
        probe.set(name, "");
        !matches!(
            probe.create_native_config(),
            Err(KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, ..))
        )
    };
    Err(if known {
        Error::BadOverride { origin: origin.into(), shown: format!("{name:?}"), hint: format!(": {name}=VALUE") }
    } else {
        Error::BadOverride {
            origin: origin.into(),
            shown: "(not shown, as it may hold a secret)".into(),
            hint: String::new(),
        }
    })
}

/// librdkafka's property names: `sasl.password`, `ssl.key.pem`, `linger.ms`...
fn is_property_name(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A librdkafka error with the values of secret settings in `cfg` hidden: librdkafka quotes the value it
/// refused ("Invalid value "..." for configuration property "sasl.password"").
fn hide(cfg: &ClientConfig, e: KafkaError) -> Error {
    let map = cfg.config_map();
    let secrets = map.iter().filter(|(k, _)| redact::is_secret_key(k)).map(|(_, v)| *v);
    match e {
        // An unknown key may be a secret one misspelt (`sasl.pasword`): its value is not shown either.
        KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, desc, key, value) => Error::BadSetting {
            setting: format!("{key}=(value not shown)"),
            reason: redact::scrub(&desc, secrets.chain([value.as_str()])),
        },
        KafkaError::ClientConfig(_, desc, key, value) => {
            let desc = if value.is_empty() { desc } else { desc.replace(&value, &redact::value(&key, &value)) };
            Error::BadSetting { setting: redact::setting(&key, &value), reason: redact::scrub(&desc, secrets) }
        }
        // librdkafka checks the SASL mechanism only when it makes the client.
        KafkaError::ClientCreation(reason) => match refusal::at_creation(&reason, &refusal::Identity::of(cfg)) {
            Some(refusal) => {
                Error::Refused { brokers: cfg.get("bootstrap.servers").unwrap_or_default().into(), refusal }
            }
            None => Error::Kafka(KafkaError::ClientCreation(redact::scrub(&reason, secrets))),
        },
        e => Error::Kafka(e),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaArgs,
    }

    fn args(overrides: &[&str], options: Option<&str>) -> KafkaArgs {
        KafkaArgs {
            brokers: "b:1".into(),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            options: options.map(String::from),
            connect_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn overrides_parse_and_win() {
        let args = args(&["linger.ms=7", "client.id = x=y"], None);
        let cfg = args.config(&[("linger.ms", "1")]).unwrap();
        assert_eq!(cfg.get("linger.ms"), Some("7"));
        assert_eq!(cfg.get("client.id"), Some("x=y"));
        assert_eq!(cfg.get("bootstrap.servers"), Some("b:1"));
    }

    #[test]
    fn each_x_is_one_whole_setting_commas_included() {
        let cli = Cli::try_parse_from([
            "t",
            "-X",
            "debug=broker,topic",
            "-X",
            "ssl.cipher.suites=ECDHE-RSA-AES128-GCM-SHA256,ECDHE-RSA-AES256-GCM-SHA384",
            "-X",
            "sasl.password=a,b;c=d",
        ])
        .unwrap();
        let settings = cli.kafka.settings().unwrap();
        assert_eq!(
            settings,
            [
                ("debug".to_string(), "broker,topic".to_string()),
                ("ssl.cipher.suites".into(), "ECDHE-RSA-AES128-GCM-SHA256,ECDHE-RSA-AES256-GCM-SHA384".into()),
                ("sasl.password".into(), "a,b;c=d".into()),
            ]
        );
        // librdkafka takes them as they are. (This build has no OpenSSL, so the cipher list stays out.)
        let cli = Cli::try_parse_from(["t", "-X", "debug=broker,topic", "-X", "sasl.password=a,b;c=d"]).unwrap();
        let cfg = cli.kafka.config(&[]).unwrap();
        assert_eq!(cfg.get("sasl.password"), Some("a,b;c=d"));
        assert_eq!(cfg.get("debug"), Some("broker,topic"));
    }

    #[test]
    fn kafka_options_are_one_setting_per_line() {
        let text = "# shared by every service\r\nsecurity.protocol=SASL_PLAINTEXT\n\n  debug = broker,topic  \nsasl.password=p,w;x=y\n";
        assert_eq!(
            parse_options(text).unwrap(),
            [("security.protocol", "SASL_PLAINTEXT"), ("debug", "broker,topic"), ("sasl.password", "p,w;x=y")]
        );
        assert!(parse_options("").unwrap().is_empty());
    }

    #[test]
    fn the_command_line_overrides_the_environment_key_by_key() {
        let args = args(&["linger.ms=9", "acks=1"], Some("linger.ms=1\nclient.id=from-env\nlinger.ms=2"));
        let settings = args.settings().unwrap();
        let get = |k: &str| settings.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("linger.ms"), Some("9"), "the command line wins");
        assert_eq!(get("client.id"), Some("from-env"), "other environment keys stay");
        assert_eq!(get("acks"), Some("1"));
        assert_eq!(settings.len(), 3, "{settings:?}");
        let cfg = args.config(&[("linger.ms", "5"), ("acks", "all")]).unwrap();
        assert_eq!(cfg.get("linger.ms"), Some("9"));
        assert_eq!(cfg.get("client.id"), Some("from-env"));
    }

    #[test]
    fn malformed_settings_are_errors_that_do_not_echo_secrets() {
        // A bare property name is safe to show, and the message says what is missing.
        let e = parse_override("sasl.password").unwrap_err().to_string();
        assert!(e.contains("\"sasl.password\"") && e.contains("in -X") && e.contains("key=value"), "{e}");
        // Anything else may be a secret.
        for bad in ["sasl.password:hunter2", "hunter2", "sasl.password hunter2", "=hunter2", "a b=hunter2"] {
            let e = parse_override(bad).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{bad}: {e}");
            assert!(e.contains("not shown"), "{e}");
        }
        let e = parse_options("linger.ms=1\n\nsasl.password hunter2").unwrap_err().to_string();
        assert!(e.contains("FRAMEWIRE_KAFKA_OPTIONS line 3") && !e.contains("hunter2"), "{e}");
        let e = args(&[], Some("hunter2")).config(&[]).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn settings_librdkafka_refuses_are_named_without_their_secret_values() {
        // Unknown property with a secret-looking value: librdkafka names the key only.
        let e = args(&["sasl.pasword=hunter2"], None).config(&[]).unwrap_err().to_string();
        assert!(e.contains("sasl.pasword") && !e.contains("hunter2"), "{e}");
        // An unknown key whose name says nothing about secrets.
        let e = args(&["bogus=hunter2"], None).config(&[]).unwrap_err().to_string();
        assert!(e.contains("bogus") && !e.contains("hunter2"), "{e}");
        // A value librdkafka refuses for a secret property (a PEM that is not one).
        let e = args(&["ssl.key.pem=hunter2"], None)
            .create::<rdkafka::producer::BaseProducer>(&[])
            .err()
            .map(|e| e.to_string());
        assert!(e.as_deref().is_none_or(|e| !e.contains("hunter2")), "{e:?}");
        // A non-secret value is shown, since it helps.
        let e = args(&["linger.ms=soon"], None).config(&[]).unwrap_err().to_string();
        assert!(e.contains("linger.ms=soon") && e.contains("Invalid value"), "{e}");
        // librdkafka's own errors that reach Error::Kafka are hidden too.
        let raw = KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"hunter2\" for configuration property \"sasl.password\"".into(),
            "sasl.password".into(),
            "hunter2".into(),
        );
        let e = Error::from(raw).to_string();
        assert!(e.contains("sasl.password") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn secrets_stay_out_of_help_and_debug() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let options = cmd.get_arguments().find(|a| a.get_id() == "options").unwrap();
        assert!(options.is_hide_env_values_set(), "FRAMEWIRE_KAFKA_OPTIONS must not appear in --help");
        let args = args(&["sasl.password=hunter2", "linger.ms=5"], Some("ssl.key.password=hunter3\ndebug=all"));
        let shown = format!("{args:?}");
        assert!(!shown.contains("hunter") && shown.contains("linger.ms=5") && shown.contains("debug=all"), "{shown}");
    }
}
