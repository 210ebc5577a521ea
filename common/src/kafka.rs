//! Kafka client configuration shared by every binary.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, Producer};
use tracing::{debug, info};

use crate::{Error, Result};

/// Connection flags common to every binary.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(long, env = "FRAMEWIRE_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,

    /// Extra librdkafka setting, repeatable (e.g. -X security.protocol=SSL). Applied last, so it wins.
    #[arg(short = 'X', value_name = "KEY=VALUE", env = "FRAMEWIRE_KAFKA_OPTIONS", value_delimiter = ',')]
    pub overrides: Vec<String>,

    /// How long to wait for the brokers at start-up before giving up with an error.
    #[arg(long, env = "FRAMEWIRE_CONNECT_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
}

impl KafkaArgs {
    /// A client config with the brokers set and the `-X` overrides applied on top of `base`.
    pub fn config(&self, base: &[(&str, &str)]) -> Result<ClientConfig> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        for (k, v) in base {
            cfg.set(*k, *v);
        }
        for o in &self.overrides {
            let (k, v) = parse_override(o)?;
            cfg.set(k, v);
        }
        Ok(cfg)
    }

    /// Waits until a broker answers a metadata request, or fails after `connect_timeout`
    /// with an error that says what to check.
    pub fn wait_reachable(&self) -> Result<()> {
        let producer: BaseProducer = self.config(&[])?.create()?;
        let start = Instant::now();
        let result = producer.client().fetch_metadata(None, self.connect_timeout);
        match result {
            Ok(md) if !md.brokers().is_empty() => {
                debug!(
                    brokers = md.brokers().len(),
                    elapsed_ms = start.elapsed().as_millis() as u64,
                    "kafka reachable"
                );
                Ok(())
            }
            Ok(_) => Err(Error::Unreachable {
                brokers: self.brokers.clone(),
                waited: self.connect_timeout,
                reason: "metadata lists no brokers".into(),
            }),
            Err(e) => Err(Error::Unreachable {
                brokers: self.brokers.clone(),
                waited: self.connect_timeout,
                reason: e.to_string(),
            }),
        }
    }

    /// Creates each topic that does not exist yet. Existing topics are left as they are.
    pub async fn ensure_topics(&self, topics: &[(&str, i32)], replication: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.config(&[])?.create()?;
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

/// Splits `key=value`.
pub fn parse_override(s: &str) -> Result<(&str, &str)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v.trim())),
        _ => Err(Error::BadOverride(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_win() {
        let args = KafkaArgs {
            brokers: "b:1".into(),
            overrides: vec!["linger.ms=7".into(), "client.id = x=y".into()],
            connect_timeout: Duration::from_secs(1),
        };
        let cfg = args.config(&[("linger.ms", "1")]).unwrap();
        assert_eq!(cfg.get("linger.ms"), Some("7"));
        assert_eq!(cfg.get("client.id"), Some("x=y"));
        assert_eq!(cfg.get("bootstrap.servers"), Some("b:1"));
    }

    #[test]
    fn malformed_override_is_an_error() {
        assert!(matches!(parse_override("novalue"), Err(Error::BadOverride(_))));
        assert!(matches!(parse_override("=v"), Err(Error::BadOverride(_))));
    }

    #[test]
    fn unreachable_broker_fails_within_the_bound() {
        // Port 9 (discard) on loopback has no Kafka: the wait must end with a clear error, not hang.
        let args = KafkaArgs {
            brokers: "127.0.0.1:9".into(),
            overrides: vec![],
            connect_timeout: Duration::from_millis(1500),
        };
        let start = Instant::now();
        let err = args.wait_reachable().unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
        let msg = err.to_string();
        assert!(msg.contains("cannot reach Kafka at 127.0.0.1:9"), "{msg}");
    }
}
