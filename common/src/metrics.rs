//! A Prometheus `/metrics` endpoint. Deliberately tiny (one GET route over plain HTTP/1.1) so every binary
//! can expose metrics without a web framework.

use std::net::SocketAddr;

use prometheus::{Encoder, Registry, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Flag for the metrics listener.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Address of the Prometheus /metrics endpoint; "off" disables it. If the port is taken (several
    /// replicas on one host) the binary logs a warning and runs without it.
    #[arg(long = "metrics-listen", env = "FRAMEWIRE_METRICS_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: String,
}

/// Binds the endpoint and serves `registry` until `shutdown`. Returns the bound address, or `None`
/// when disabled or when the address is unavailable (logged).
pub async fn serve(args: &MetricsArgs, registry: Registry, shutdown: CancellationToken) -> Option<SocketAddr> {
    if args.listen.eq_ignore_ascii_case("off") {
        return None;
    }
    let listener = match TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            warn!(listen = %args.listen, error = %e, "metrics endpoint disabled: cannot bind");
            return None;
        }
    };
    // Memory, CPU and file descriptors of the process: a long-running pipeline must stay flat.
    let _ = registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()));
    let addr = listener.local_addr().ok()?;
    info!(%addr, "metrics at http://{addr}/metrics");
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            let Ok((mut sock, _)) = accepted else { continue };
            let registry = registry.clone();
            // One short-lived task per scrape connection; scrapes are rare and bounded by the scraper.
            tokio::spawn(async move {
                // A request may arrive in pieces: read up to the end of its head (bounded in size and
                // time), or a scraper still sending would meet a closed socket.
                let mut buf = [0u8; 4096];
                let mut n = 0;
                let read_head = async {
                    while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf[n..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(got) => n += got,
                        }
                    }
                };
                if tokio::time::timeout(std::time::Duration::from_secs(5), read_head).await.is_err() || n == 0 {
                    return;
                }
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (status, ctype, body) = if path == "/metrics" {
                    ("200 OK", TextEncoder::new().format_type().to_string(), render(&registry))
                } else {
                    ("404 Not Found", "text/plain".to_string(), b"see /metrics\n".to_vec())
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    Some(addr)
}

/// Registers `c` in `registry` and returns it, for building a binary's metrics struct in one expression.
/// Registration fails only for a duplicate name, which each binary's fixed list of metrics rules out.
pub fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: T) -> T {
    registry.register(Box::new(c.clone())).unwrap_or_else(|e| panic!("metric registration: {e}"));
    c
}

/// A registered counter. Like [`register`], panics only on a duplicate or malformed name: a bug in the
/// binary's fixed list, found by its first test.
pub fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::IntCounter {
    register(registry, prometheus::IntCounter::new(name, help).unwrap_or_else(|e| panic!("{name}: {e}")))
}

/// A registered gauge.
pub fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::IntGauge {
    register(registry, prometheus::IntGauge::new(name, help).unwrap_or_else(|e| panic!("{name}: {e}")))
}

/// A registered counter with one label.
pub fn counter_vec(registry: &Registry, name: &str, help: &str, label: &str) -> prometheus::IntCounterVec {
    register(
        registry,
        prometheus::IntCounterVec::new(prometheus::Opts::new(name, help), &[label])
            .unwrap_or_else(|e| panic!("{name}: {e}")),
    )
}

/// A registered histogram with the given buckets.
pub fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> prometheus::Histogram {
    register(
        registry,
        prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(name, help).buckets(buckets))
            .unwrap_or_else(|e| panic!("{name}: {e}")),
    )
}

/// A registered histogram with one label and the given buckets.
pub fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
    buckets: Vec<f64>,
) -> prometheus::HistogramVec {
    register(
        registry,
        prometheus::HistogramVec::new(prometheus::HistogramOpts::new(name, help).buckets(buckets), &[label])
            .unwrap_or_else(|e| panic!("{name}: {e}")),
    )
}

/// The registry in Prometheus text format.
pub fn render(registry: &Registry) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metric families.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::IntCounter;

    #[tokio::test]
    async fn serves_registered_metrics() {
        let registry = Registry::new();
        let c = IntCounter::new("framewire_test_total", "test counter").unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        c.inc_by(3);
        let token = CancellationToken::new();
        let args = MetricsArgs { listen: "127.0.0.1:0".into() };
        let addr = serve(&args, registry, token.clone()).await.unwrap();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("framewire_test_total 3"), "{body}");

        // A request that arrives in two pieces is answered once it is whole.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        s.write_all(b"host: x\r\n\r\n").await.unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(body.contains("framewire_test_total 3"), "{body}");
        token.cancel();
    }
}
