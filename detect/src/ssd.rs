//! SSD output decoding: per-anchor class scores and normalized `ymin, xmin, ymax, xmax` boxes, as exported
//! by the TensorFlow Object Detection API without its NMS.

use ndarray::{ArrayViewD, Axis, Ix3};

use crate::nms::{Candidate, Rect};
use crate::{Error, Result};

/// Decodes one batch: for each image, every (anchor, class) with score >= `conf`, boxes in model-input
/// pixels (`input_w x input_h`).
pub fn decode(
    scores: ArrayViewD<'_, f32>,
    boxes: ArrayViewD<'_, f32>,
    conf: f32,
    class_offset: u32,
    input_w: f32,
    input_h: f32,
) -> Result<Vec<Vec<Candidate>>> {
    let (score_shape, box_shape) = (scores.shape().to_vec(), boxes.shape().to_vec());
    let mismatch = || {
        Error::OutputMismatch(format!(
            "model outputs have shapes {score_shape:?} and {box_shape:?} but the SSD decoder expects [N,A,C] scores and [N,A,1,4] or [N,A,4] boxes"
        ))
    };
    let scores = scores.into_dimensionality::<Ix3>().map_err(|_| mismatch())?;
    let boxes = match boxes.ndim() {
        4 if boxes.shape()[2] == 1 => boxes.index_axis_move(Axis(2), 0),
        _ => boxes,
    };
    let boxes = boxes.into_dimensionality::<Ix3>().map_err(|_| mismatch())?;
    let (n, anchors, _) = scores.dim();
    if boxes.dim() != (n, anchors, 4) {
        return Err(mismatch());
    }
    let mut out = Vec::with_capacity(n);
    for b in 0..n {
        let mut found = Vec::new();
        for a in 0..anchors {
            let row = scores.slice(ndarray::s![b, a, ..]);
            for (c, &s) in row.iter().enumerate() {
                if s >= conf {
                    let bx = boxes.slice(ndarray::s![b, a, ..]);
                    let (ymin, xmin, ymax, xmax) = (bx[0], bx[1], bx[2], bx[3]);
                    found.push(Candidate {
                        class_id: c as u32 + class_offset,
                        score: s,
                        rect: Rect {
                            x1: xmin.min(xmax) * input_w,
                            y1: ymin.min(ymax) * input_h,
                            x2: xmax.max(xmin) * input_w,
                            y2: ymax.max(ymin) * input_h,
                        },
                    });
                }
            }
        }
        out.push(found);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, Array4};

    #[test]
    fn decodes_scores_above_threshold_with_offset_and_pixel_boxes() {
        let mut scores = Array3::<f32>::zeros((1, 3, 4));
        scores[[0, 1, 0]] = 0.9; // anchor 1, column 0 -> class 1
        scores[[0, 2, 3]] = 0.6; // anchor 2, column 3 -> class 4
        scores[[0, 0, 2]] = 0.2; // below threshold
        let mut boxes = Array4::<f32>::zeros((1, 3, 1, 4));
        for (i, v) in [0.1, 0.2, 0.5, 0.6].iter().enumerate() {
            boxes[[0, 1, 0, i]] = *v;
        }
        for (i, v) in [0.0, 0.0, 1.0, 1.0].iter().enumerate() {
            boxes[[0, 2, 0, i]] = *v;
        }
        let out = decode(scores.view().into_dyn(), boxes.view().into_dyn(), 0.5, 1, 300.0, 200.0).unwrap();
        assert_eq!(out.len(), 1);
        let mut got = out[0].clone();
        got.sort_by(|a, b| b.score.total_cmp(&a.score));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].class_id, 1);
        let r = got[0].rect;
        assert!((r.x1 - 60.0).abs() < 1e-4 && (r.y1 - 20.0).abs() < 1e-4, "{r:?}");
        assert!((r.x2 - 180.0).abs() < 1e-4 && (r.y2 - 100.0).abs() < 1e-4, "{r:?}");
        assert_eq!(got[1].class_id, 4);
    }

    #[test]
    fn three_dimensional_boxes_are_accepted() {
        let mut scores = Array3::<f32>::zeros((1, 1, 1));
        scores[[0, 0, 0]] = 1.0;
        let boxes = Array3::<f32>::from_elem((1, 1, 4), 0.5);
        let out = decode(scores.view().into_dyn(), boxes.view().into_dyn(), 0.5, 0, 10.0, 10.0).unwrap();
        assert_eq!(out[0].len(), 1);
    }

    #[test]
    fn yolo_shaped_outputs_are_rejected_with_a_clear_message() {
        let scores = ndarray::Array3::<f32>::zeros((1, 84, 8400));
        let boxes = ndarray::Array2::<f32>::zeros((1, 4));
        let err = decode(scores.view().into_dyn(), boxes.view().into_dyn(), 0.5, 0, 1.0, 1.0).unwrap_err().to_string();
        assert!(err.contains("[1, 84, 8400]") && err.contains("SSD decoder expects"), "{err}");
    }

    #[test]
    fn anchor_count_mismatch_is_rejected() {
        let scores = Array3::<f32>::zeros((1, 10, 3));
        let boxes = Array4::<f32>::zeros((1, 9, 1, 4));
        assert!(decode(scores.view().into_dyn(), boxes.view().into_dyn(), 0.5, 0, 1.0, 1.0).is_err());
    }
}
