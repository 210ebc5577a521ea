//! YOLO output decoding. Boxes come out in model-input pixels; scores are already activated in the
//! exported graphs.
//!
//! - YOLOv5 `[N, A, 5 + C]`: `cx, cy, w, h, objectness, class scores...`; score = objectness x class score.
//! - YOLOv8 / YOLO11 `[N, 4 + C, A]`: `cx, cy, w, h, class scores...` (channels first), no objectness.
//! - End-to-end `[N, D, 6]`: `x1, y1, x2, y2, score, class` with NMS already applied in the graph.

use ndarray::{ArrayViewD, Ix3};

use crate::nms::{Candidate, Rect};
use crate::{Error, Result};

fn three_d<'a>(out: ArrayViewD<'a, f32>, what: &str) -> Result<ndarray::ArrayView3<'a, f32>> {
    let shape = out.shape().to_vec();
    out.into_dimensionality::<Ix3>().map_err(|_| {
        Error::OutputMismatch(format!("model output has shape {shape:?} but the {what} decoder expects a 3-D tensor"))
    })
}

fn centre_box(cx: f32, cy: f32, w: f32, h: f32) -> Rect {
    Rect { x1: cx - w / 2.0, y1: cy - h / 2.0, x2: cx + w / 2.0, y2: cy + h / 2.0 }
}

/// YOLOv5-style `[N, A, 5 + C]`.
pub fn decode_v5(out: ArrayViewD<'_, f32>, conf: f32) -> Result<Vec<Vec<Candidate>>> {
    let out = three_d(out, "YOLOv5 [N,A,5+C]")?;
    let (n, anchors, k) = out.dim();
    if k < 6 {
        return Err(Error::OutputMismatch(format!(
            "model output has shape [{n},{anchors},{k}] but the YOLOv5 decoder expects [N,A,5+C] with at least one class"
        )));
    }
    let mut all = Vec::with_capacity(n);
    for b in 0..n {
        let mut found = Vec::new();
        for a in 0..anchors {
            let row = out.slice(ndarray::s![b, a, ..]);
            let obj = row[4];
            if obj < conf {
                continue;
            }
            let (best, score) =
                row.iter().skip(5).enumerate().fold((0, f32::MIN), |acc, (c, &s)| if s > acc.1 { (c, s) } else { acc });
            let score = obj * score;
            if score >= conf {
                found.push(Candidate {
                    class_id: best as u32,
                    score,
                    rect: centre_box(row[0], row[1], row[2], row[3]),
                });
            }
        }
        all.push(found);
    }
    Ok(all)
}

/// YOLOv8/YOLO11-style `[N, 4 + C, A]`.
pub fn decode_v8(out: ArrayViewD<'_, f32>, conf: f32) -> Result<Vec<Vec<Candidate>>> {
    let out = three_d(out, "YOLOv8 [N,4+C,A]")?;
    let (n, k, anchors) = out.dim();
    if k < 5 {
        return Err(Error::OutputMismatch(format!(
            "model output has shape [{n},{k},{anchors}] but the YOLOv8 decoder expects [N,4+C,A] with at least one class"
        )));
    }
    let mut all = Vec::with_capacity(n);
    for b in 0..n {
        let img = out.slice(ndarray::s![b, .., ..]);
        let mut found = Vec::new();
        for a in 0..anchors {
            let (mut best, mut score) = (0usize, f32::MIN);
            for c in 4..k {
                let s = img[[c, a]];
                if s > score {
                    (best, score) = (c - 4, s);
                }
            }
            if score >= conf {
                let r = centre_box(img[[0, a]], img[[1, a]], img[[2, a]], img[[3, a]]);
                found.push(Candidate { class_id: best as u32, score, rect: r });
            }
        }
        all.push(found);
    }
    Ok(all)
}

/// End-to-end `[N, D, 6]` (NMS inside the model).
pub fn decode_end_to_end(out: ArrayViewD<'_, f32>, conf: f32) -> Result<Vec<Vec<Candidate>>> {
    let out = three_d(out, "end-to-end [N,D,6]")?;
    let (n, d, k) = out.dim();
    if k != 6 {
        return Err(Error::OutputMismatch(format!(
            "model output has shape [{n},{d},{k}] but the end-to-end decoder expects [N,D,6] (x1,y1,x2,y2,score,class)"
        )));
    }
    Ok((0..n)
        .map(|b| {
            (0..d)
                .filter_map(|i| {
                    let r = out.slice(ndarray::s![b, i, ..]);
                    (r[4] >= conf && r[5] >= 0.0).then(|| Candidate {
                        class_id: r[5].round() as u32,
                        score: r[4],
                        rect: Rect { x1: r[0].min(r[2]), y1: r[1].min(r[3]), x2: r[0].max(r[2]), y2: r[1].max(r[3]) },
                    })
                })
                .collect()
        })
        .collect())
}

/// Class names from Ultralytics ONNX metadata: `{0: 'person', 1: 'bicycle', ...}`.
pub fn parse_names(meta: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut rest = meta.trim().trim_start_matches('{').trim_end_matches('}');
    while let Some((key, tail)) = rest.split_once(':') {
        let Ok(id) = key.trim().trim_start_matches(',').trim().parse::<u32>() else { break };
        let tail = tail.trim_start();
        let Some(quote) = tail.chars().next().filter(|c| *c == '\'' || *c == '"') else { break };
        let Some(end) = tail[1..].find(quote) else { break };
        out.push((id, tail[1..1 + end].to_string()));
        rest = &tail[end + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn v5_multiplies_objectness_and_picks_the_best_class() {
        let mut out = Array3::<f32>::zeros((1, 2, 8)); // 3 classes
        out.slice_mut(ndarray::s![0, 0, ..]).assign(&ndarray::arr1(&[100.0, 50.0, 20.0, 10.0, 0.9, 0.1, 0.8, 0.3]));
        out.slice_mut(ndarray::s![0, 1, ..]).assign(&ndarray::arr1(&[10.0, 10.0, 4.0, 4.0, 0.4, 0.9, 0.0, 0.0]));
        let got = decode_v5(out.view().into_dyn(), 0.5).unwrap();
        assert_eq!(got[0].len(), 1, "second anchor's objectness is too low");
        let c = &got[0][0];
        assert_eq!(c.class_id, 1);
        assert!((c.score - 0.72).abs() < 1e-6);
        assert_eq!(c.rect, Rect { x1: 90.0, y1: 45.0, x2: 110.0, y2: 55.0 });
    }

    #[test]
    fn v8_reads_channels_first() {
        // 2 classes, 3 anchors: [1, 6, 3]
        let mut out = Array3::<f32>::zeros((1, 6, 3));
        for (c, v) in [30.0, 40.0, 10.0, 20.0, 0.2, 0.7].iter().enumerate() {
            out[[0, c, 2]] = *v;
        }
        out[[0, 4, 0]] = 0.3;
        let got = decode_v8(out.view().into_dyn(), 0.5).unwrap();
        assert_eq!(got[0].len(), 1);
        assert_eq!(got[0][0].class_id, 1);
        assert_eq!(got[0][0].rect, Rect { x1: 25.0, y1: 30.0, x2: 35.0, y2: 50.0 });
    }

    #[test]
    fn end_to_end_rows_are_boxes() {
        let mut out = Array3::<f32>::zeros((1, 2, 6));
        out.slice_mut(ndarray::s![0, 0, ..]).assign(&ndarray::arr1(&[1.0, 2.0, 30.0, 40.0, 0.8, 2.0]));
        out.slice_mut(ndarray::s![0, 1, ..]).assign(&ndarray::arr1(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]));
        let got = decode_end_to_end(out.view().into_dyn(), 0.25).unwrap();
        assert_eq!(
            got[0],
            vec![Candidate { class_id: 2, score: 0.8, rect: Rect { x1: 1.0, y1: 2.0, x2: 30.0, y2: 40.0 } }]
        );
    }

    #[test]
    fn wrong_shapes_are_named_in_the_error() {
        let ssd_like = ndarray::Array4::<f32>::zeros((1, 10, 1, 4));
        let err = decode_v8(ssd_like.view().into_dyn(), 0.5).unwrap_err().to_string();
        assert!(err.contains("[1, 10, 1, 4]") && err.contains("YOLOv8"), "{err}");
        let narrow = Array3::<f32>::zeros((1, 10, 5));
        assert!(decode_v5(narrow.view().into_dyn(), 0.5).is_err());
        assert!(decode_end_to_end(Array3::<f32>::zeros((1, 10, 7)).view().into_dyn(), 0.5).is_err());
    }

    #[test]
    fn ultralytics_names() {
        let names = parse_names("{0: 'person', 1: 'bicycle', 2: \"traffic light\", 12: 'FACE_MALE'}");
        assert_eq!(
            names,
            vec![(0, "person".into()), (1, "bicycle".into()), (2, "traffic light".into()), (12, "FACE_MALE".into())]
        );
        assert!(parse_names("").is_empty());
    }
}
