//! `subscribe query` and `subscribe show`: looking things up in the store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use framewire_common::objects::{ObjectError, ObjectStoreArgs, Objects};
use framewire_common::redact;

use crate::repo::{Db, EventFilter, RepoError};
use crate::snapshot::shown;

#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// Database written by `subscribe store`.
    #[arg(long, env = "FRAMEWIRE_DB", hide_env_values = true, default_value = "sqlite://framewire.db")]
    pub db: String,

    /// Only this camera.
    #[arg(long)]
    pub camera: Option<String>,

    /// Only this label.
    #[arg(long)]
    pub label: Option<String>,

    /// Only what was captured within this long before now (e.g. 10m, 2h, 7days).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,

    /// Only this model (name@version).
    #[arg(long)]
    pub model: Option<String>,

    /// Least score.
    #[arg(long)]
    pub min_score: Option<f32>,

    /// List events instead of single detections.
    #[arg(long)]
    pub events: bool,

    /// Most rows, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,

    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

impl QueryArgs {
    pub fn filter(&self) -> EventFilter {
        EventFilter {
            camera: self.camera.clone(),
            label: self.label.clone(),
            model: self.model.clone(),
            since: self.since,
            min_score: self.min_score,
            limit: self.limit,
            ..EventFilter::default()
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// Event id (from `subscribe query --events`, the `events` topic or an alert).
    pub id: String,

    /// Database written by `subscribe store`.
    #[arg(long, env = "FRAMEWIRE_DB", hide_env_values = true, default_value = "sqlite://framewire.db")]
    pub db: String,

    /// Where to write the event's snapshot images.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,

    /// Object storage for snapshots given as URLs (`s3://…`): endpoint, region, retries.
    #[command(flatten)]
    pub objects: ObjectStoreArgs,
}

/// Why a look-up failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("no event {id:?} in {db}")]
    NoEvent { id: String, db: String },
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    #[error("writing output: {0}")]
    Json(#[from] serde_json::Error),
    #[error("writing {}: {source}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{failed} snapshot(s) could not be read, first: {first} (check --s3-endpoint, --s3-region and the AWS_* \
         credentials)"
    )]
    Snapshots { failed: usize, first: String },
    #[error("creating {}: {source}", dir.display())]
    OutDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A time as RFC 3339 with milliseconds (UTC).
pub fn time(ms: i64) -> String {
    framewire_common::time::rfc3339_ms(ms)
}

/// Prints the matching detections or events; returns how many.
pub async fn run_query(args: &QueryArgs) -> Result<usize, QueryError> {
    let mut db = Db::open_existing(&args.db).await?;
    let filter = args.filter();
    let mut out = std::io::stdout().lock();
    if args.events {
        let rows = db.events(&filter).await?;
        for e in &rows {
            if args.json {
                serde_json::to_writer(&mut out, e)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{}  {}  {} {:<10} {:>6.1}s  {:>4} frames  peak {:.2}  {}{}",
                    e.id,
                    time(e.start_ms),
                    e.camera,
                    e.label,
                    e.duration_ms() as f64 / 1000.0,
                    e.frames,
                    e.peak_score,
                    if e.open { "open" } else { "ended" },
                    e.best_snapshot.as_deref().map(|s| format!("  {s}")).unwrap_or_default()
                )?;
            }
        }
        return Ok(rows.len());
    }
    let rows = db.detections(&filter).await?;
    for d in &rows {
        if args.json {
            serde_json::to_writer(&mut out, d)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{}  {} #{}  {:<10} {:.2}  [{:.0},{:.0},{:.0},{:.0}]  {}",
                time(d.capture_ms),
                d.camera,
                d.seq,
                d.label,
                d.score,
                d.bbox[0],
                d.bbox[1],
                d.bbox[2],
                d.bbox[3],
                d.model
            )?;
        }
    }
    Ok(rows.len())
}

/// Prints an event and copies its snapshots into `--out`. Returns the files written.
pub async fn run_show(args: &ShowArgs) -> Result<Vec<PathBuf>, QueryError> {
    let mut db = Db::open_existing(&args.db).await?;
    let Some(e) = db.event(&args.id).await? else {
        return Err(QueryError::NoEvent { id: args.id.clone(), db: redact::url(&args.db).into_owned() });
    };
    println!("event {}", e.id);
    println!("  camera     {}", e.camera);
    println!("  label      {}", e.label);
    println!("  model      {}", e.model);
    println!("  start      {} (seq {})", time(e.start_ms), e.start_seq);
    println!("  end        {} (seq {}){}", time(e.end_ms), e.end_seq, if e.open { ", still open" } else { "" });
    println!("  duration   {:.1} s, {} frames", e.duration_ms() as f64 / 1000.0, e.frames);
    println!("  peak score {:.2} (seq {})", e.peak_score, e.peak_seq);
    let files = db.event_snapshots(&e).await?;
    std::fs::create_dir_all(&args.out).map_err(|source| QueryError::OutDir { dir: args.out.clone(), source })?;
    let objects = Objects::new(&args.objects);
    let mut written = Vec::new();
    let mut unreadable = Vec::new();
    for (i, src) in files.iter().enumerate() {
        let name = Path::new(src).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dest = args.out.join(if i == 0 && e.best_snapshot.is_some() {
            format!("{}-best-{name}", e.id)
        } else {
            format!("{}-{name}", e.id)
        });
        // A file path or an object's URL, whichever the store recorded.
        match objects.read(src).await {
            Ok(bytes) => {
                std::fs::write(&dest, &bytes).map_err(|source| QueryError::WriteFile { path: dest.clone(), source })?;
                println!("  snapshot   {}", dest.display());
                written.push(dest);
            }
            Err(ObjectError::NotFound { .. }) => println!("  snapshot   {src}: gone (removed by retention?)"),
            Err(err) => {
                let err = shown(&err);
                println!("  snapshot   {err}");
                unreadable.push(err);
            }
        }
    }
    if files.is_empty() {
        println!("  snapshots  none (the label is not in --snapshot-classes, or snapshots were off)");
    }
    // A store that cannot be read is not a removed snapshot: say so with the exit status too.
    if let Some(first) = unreadable.first() {
        return Err(QueryError::Snapshots { failed: unreadable.len(), first: first.clone() });
    }
    Ok(written)
}
