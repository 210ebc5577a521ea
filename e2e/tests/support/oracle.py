"""An independent oracle for detect's boxes: the same ONNX model run through Python onnxruntime, with the
pre- and post-processing written here from the models' documentation (STACK.md, the model's metadata and
detect's documented contract: JPEG decoded with libjpeg-turbo's DCT scaling down to no less than the model's
input size, bilinear resize at pixel centres, stretch for SSD, centred letterbox for YOLO, greedy per-class
NMS, boxes in source pixels clipped to the frame), not from detect's code.

Usage: oracle.py --kind ssd|yolov8 --model M.onnx [--labels L.txt] [--conf 0.5] [--iou 0.45]
                 [--max-det 100] IMAGE...

Prints tab-separated lines:
    image  INDEX  WIDTH  HEIGHT
    box        INDEX  LABEL  CLASS_ID  SCORE  X1  Y1  X2  Y2   (after NMS, best first)
    candidate  INDEX  LABEL  CLASS_ID  SCORE  X1  Y1  X2  Y2   (every box over the threshold, before NMS)
"""

import argparse
import ast
import sys

import numpy as np
import onnxruntime as ort
import simplejpeg

# Ultralytics pads letterboxed images with this grey.
LETTERBOX_GREY = 114


def load_rgb(path, min_width, min_height):
    """Decodes a JPEG at the smallest of libjpeg-turbo's DCT scales (n/8) that leaves at least
    min_width x min_height (or the full image if it is smaller). detect documents this step, and it moves
    scores enough (against a full-size decode) to change which of SSD's near-equal person anchors on the
    astronaut NMS keeps, so the oracle does the same. Returns the pixels and the full size, the frame's
    coordinate system."""
    with open(path, "rb") as f:
        data = f.read()
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    rgb = simplejpeg.decode_jpeg(
        data, colorspace="RGB", min_width=min(min_width, width), min_height=min(min_height, height)
    )
    return rgb, width, height


def axis_weights(src, dst):
    """Source indices and weights of a linear resize along one axis, sampling at pixel centres (the
    convention of OpenCV's INTER_LINEAR, with no anti-aliasing: what a plain cv2.resize does)."""
    pos = (np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5
    pos = np.clip(pos, 0.0, src - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, src - 1)
    return lo, hi, pos - lo


def resize_bilinear(rgb, width, height):
    """Bilinear resize of an HxWx3 uint8 image to height x width, rounded back to 8 bits as an 8-bit
    image library's resize returns it."""
    h, w, _ = rgb.shape
    y0, y1, fy = axis_weights(h, height)
    x0, x1, fx = axis_weights(w, width)
    img = rgb.astype(np.float64)
    fx = fx[None, :, None]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    fy = fy[:, None, None]
    out = top * (1 - fy) + bottom * fy
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def iou_one_to_many(box, others):
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms_per_class(boxes, scores, classes, iou, max_det):
    """Greedy NMS within each class (a person never suppresses a bicycle); returns kept indices, best
    first, at most max_det."""
    keep = []
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        while idx.size:
            best = idx[0]
            keep.append(best)
            rest = idx[1:]
            idx = rest[iou_one_to_many(boxes[best], boxes[rest]) <= iou]
    keep.sort(key=lambda i: -scores[i])
    return keep[:max_det]


class Ssd:
    """SSDLite MobileNetV2 COCO (STACK.md): NHWC float32 [1,300,300,3] RGB 0..255, plain resize; outputs
    sigmoid scores [1,A,90] (column j is label id j+1) and boxes [1,A,1,4] as normalised ymin,xmin,ymax,xmax."""

    def __init__(self, session, labels_path):
        self.session = session
        inp = session.get_inputs()[0]
        self.input = inp.name
        _, self.height, self.width, _ = inp.shape
        outs = {o.name: o for o in session.get_outputs()}
        self.scores = next(n for n, o in outs.items() if len(o.shape) == 3)
        self.boxes = next(n for n, o in outs.items() if len(o.shape) == 4)
        with open(labels_path, encoding="utf-8") as f:
            # Line i (from 1) names label id i.
            self.labels = {i + 1: line.strip() for i, line in enumerate(f)}

    def candidates(self, rgb, w, h, conf):
        x = resize_bilinear(rgb, self.width, self.height).astype(np.float32)[None]
        scores, boxes = self.session.run([self.scores, self.boxes], {self.input: x})
        scores = scores[0]
        boxes = boxes[0].reshape(-1, 4)
        anchor, column = np.nonzero(scores >= conf)
        ymin, xmin, ymax, xmax = boxes[anchor].T.astype(np.float64)
        # Normalised to the stretched input, so normalised to the source frame too.
        xyxy = np.stack([xmin * w, ymin * h, xmax * w, ymax * h], axis=1)
        ids = column + 1
        return xyxy, scores[anchor, column].astype(np.float64), ids, [self.labels.get(int(i), "") for i in ids]


class YoloV8:
    """YOLOv8 [N,4+C,A] (Ultralytics export): NCHW RGB 0..1, letterboxed; rows cx,cy,w,h in input pixels
    then one sigmoid score per class (no objectness). Input size and class names from the ONNX metadata's
    `imgsz` and `names`."""

    def __init__(self, session):
        self.session = session
        self.input = session.get_inputs()[0].name
        meta = session.get_modelmeta().custom_metadata_map
        # The graph's height and width are dynamic: the export size is in the metadata.
        self.height, self.width = ast.literal_eval(meta["imgsz"])
        self.names = ast.literal_eval(meta["names"])

    def candidates(self, rgb, w, h, conf):
        # The letterbox geometry follows the frame's full size (the DCT-scaled pixels are only resampled).
        scale = min(self.width / w, self.height / h)
        fw = min(max(int(round(w * scale)), 1), self.width)
        fh = min(max(int(round(h * scale)), 1), self.height)
        left, top = (self.width - fw) // 2, (self.height - fh) // 2
        canvas = np.full((self.height, self.width, 3), LETTERBOX_GREY, dtype=np.uint8)
        canvas[top : top + fh, left : left + fw] = resize_bilinear(rgb, fw, fh)
        x = (canvas.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        (out,) = self.session.run(None, {self.input: x})
        out = out[0]
        class_scores = out[4:]
        # Ultralytics' decoding: one box per anchor, its best class.
        ids = class_scores.argmax(axis=0)
        best = class_scores[ids, np.arange(out.shape[1])]
        keep = np.flatnonzero(best >= conf)
        cx, cy, bw, bh = out[:4, keep].astype(np.float64)
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        # Undo the letterbox: remove the padding, then the scale.
        xyxy = (xyxy - np.array([left, top, left, top])) / scale
        ids = ids[keep]
        return xyxy, best[keep].astype(np.float64), ids, [self.names[int(i)] for i in ids]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=["ssd", "yolov8"], required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--labels")
    p.add_argument("--conf", type=float, default=0.5)
    p.add_argument("--iou", type=float, default=0.45)
    p.add_argument("--max-det", type=int, default=100)
    p.add_argument("images", nargs="+")
    a = p.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(a.model, options, providers=["CPUExecutionProvider"])
    if a.kind == "ssd":
        if not a.labels:
            p.error("--labels is required for --kind ssd")
        model = Ssd(session, a.labels)
    else:
        model = YoloV8(session)

    out = sys.stdout
    for index, path in enumerate(a.images):
        rgb, w, h = load_rgb(path, model.width, model.height)
        out.write(f"image\t{index}\t{w}\t{h}\n")
        xyxy, scores, ids, labels = model.candidates(rgb, w, h, a.conf)
        if len(scores) == 0:
            continue
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h)
        for i in nms_per_class(xyxy, scores, np.asarray(ids), a.iou, a.max_det):
            write_box(out, "box", index, labels[i], ids[i], scores[i], xyxy[i])
        # Every candidate before NMS as well: when two overlapping candidates score almost the same, which
        # one NMS keeps is decided by noise, and the caller needs the runner-up to recognise such a tie.
        for i in np.argsort(-scores, kind="stable"):
            write_box(out, "candidate", index, labels[i], ids[i], scores[i], xyxy[i])


def write_box(out, kind, index, label, class_id, score, xyxy):
    x1, y1, x2, y2 = xyxy
    out.write(f"{kind}\t{index}\t{label}\t{int(class_id)}\t{score:.6f}\t{x1:.3f}\t{y1:.3f}\t{x2:.3f}\t{y2:.3f}\n")


if __name__ == "__main__":
    main()
