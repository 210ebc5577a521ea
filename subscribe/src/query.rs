//! `subscribe query` and `subscribe show`: looking things up in the store.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::db::{Db, Value};
use crate::store::{EVENT_COLUMNS, event_from_row, now_ms};
use crate::track::EventRow;

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
}

/// One stored detection.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DetectionRow {
    pub camera: String,
    pub seq: i64,
    pub model: String,
    pub capture_ms: i64,
    pub label: String,
    pub score: f64,
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    pub snapshot: Option<String>,
}

/// Builds the WHERE clause and its parameters from the filters.
fn filters(args: &QueryArgs, time_col: &str, score_col: &str) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    let mut add = |clause: &str, v: Value| {
        params.push(v);
        clauses.push(clause.replace('?', &format!("${}", params.len())));
    };
    if let Some(c) = &args.camera {
        add("camera = ?", c.as_str().into());
    }
    if let Some(l) = &args.label {
        add("label = ?", l.as_str().into());
    }
    if let Some(m) = &args.model {
        add("model = ?", m.as_str().into());
    }
    if let Some(s) = args.since {
        add(&format!("{time_col} >= ?"), (now_ms() - s.as_millis() as i64).into());
    }
    if let Some(s) = args.min_score {
        add(&format!("{score_col} >= ?"), f64::from(s).into());
    }
    let w = if clauses.is_empty() { String::new() } else { format!(" AND {}", clauses.join(" AND ")) };
    (w, params)
}

pub async fn detections(db: &mut Db, args: &QueryArgs) -> anyhow::Result<Vec<DetectionRow>> {
    let (w, mut params) = filters(args, "b.capture_ms", "b.score");
    let w = w.replace("camera =", "b.camera =").replace("label =", "b.label =").replace("model =", "b.model =");
    params.push(args.limit.into());
    let sql = format!(
        "SELECT b.camera, b.seq, b.model, b.capture_ms, b.label, b.score, b.x1, b.y1, b.x2, b.y2, f.snapshot
         FROM boxes b JOIN frames f ON f.camera = b.camera AND f.seq = b.seq AND f.model = b.model
         WHERE 1 = 1{w} ORDER BY b.capture_ms DESC, b.seq DESC, b.idx LIMIT ${}",
        params.len()
    );
    Ok(db
        .query(&sql, &params)
        .await?
        .into_iter()
        .map(|r| DetectionRow {
            camera: r[0].str(),
            seq: r[1].int(),
            model: r[2].str(),
            capture_ms: r[3].int(),
            label: r[4].str(),
            score: r[5].real(),
            bbox: [r[6].real(), r[7].real(), r[8].real(), r[9].real()],
            snapshot: r[10].text(),
        })
        .collect())
}

pub async fn events(db: &mut Db, args: &QueryArgs) -> anyhow::Result<Vec<EventRow>> {
    let (w, mut params) = filters(args, "start_ms", "peak_score");
    params.push(args.limit.into());
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE scope = ''{w} ORDER BY start_ms DESC LIMIT ${}",
        params.len()
    );
    Ok(db.query(&sql, &params).await?.iter().map(|r| event_from_row(r)).collect())
}

pub async fn event(db: &mut Db, id: &str) -> anyhow::Result<Option<EventRow>> {
    let rows = db.query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"), &[id.into()]).await?;
    Ok(rows.first().map(|r| event_from_row(r)))
}

/// Snapshot files of the frames an event spans, in frame order.
pub async fn event_snapshots(db: &mut Db, e: &EventRow) -> anyhow::Result<Vec<String>> {
    let rows = db
        .query(
            "SELECT snapshot FROM frames WHERE camera = $1 AND model = $2 AND seq >= $3 AND seq <= $4
             AND snapshot IS NOT NULL ORDER BY seq",
            &[e.camera.as_str().into(), e.model.as_str().into(), e.start_seq.into(), e.end_seq.into()],
        )
        .await?;
    Ok(rows.iter().filter_map(|r| r[0].text()).collect())
}

pub fn time(ms: i64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}

pub async fn run_query(args: &QueryArgs) -> anyhow::Result<usize> {
    let mut db = Db::open_existing(&args.db).await?;
    let mut out = std::io::stdout().lock();
    if args.events {
        let rows = events(&mut db, args).await?;
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
    let rows = detections(&mut db, args).await?;
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
pub async fn run_show(args: &ShowArgs) -> anyhow::Result<Vec<PathBuf>> {
    let mut db = Db::open_existing(&args.db).await?;
    let Some(e) = event(&mut db, &args.id).await? else {
        anyhow::bail!("no event {:?} in {}", args.id, crate::db::redact(&args.db));
    };
    println!("event {}", e.id);
    println!("  camera     {}", e.camera);
    println!("  label      {}", e.label);
    println!("  model      {}", e.model);
    println!("  start      {} (seq {})", time(e.start_ms), e.start_seq);
    println!("  end        {} (seq {}){}", time(e.end_ms), e.end_seq, if e.open { ", still open" } else { "" });
    println!("  duration   {:.1} s, {} frames", e.duration_ms() as f64 / 1000.0, e.frames);
    println!("  peak score {:.2} (seq {})", e.peak_score, e.peak_seq);
    let mut files = event_snapshots(&mut db, &e).await?;
    if let Some(best) = &e.best_snapshot {
        files.retain(|f| f != best);
        files.insert(0, best.clone());
    }
    std::fs::create_dir_all(&args.out)?;
    let mut written = Vec::new();
    for (i, src) in files.iter().enumerate() {
        let name = std::path::Path::new(src).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dest = args.out.join(if i == 0 && e.best_snapshot.is_some() {
            format!("{}-best-{name}", e.id)
        } else {
            format!("{}-{name}", e.id)
        });
        match std::fs::copy(src, &dest) {
            Ok(_) => {
                println!("  snapshot   {}", dest.display());
                written.push(dest);
            }
            Err(err) => println!("  snapshot   {src}: {err} (removed by retention?)"),
        }
    }
    if files.is_empty() {
        println!("  snapshots  none (the label is not in --snapshot-classes, or snapshots were off)");
    }
    Ok(written)
}
