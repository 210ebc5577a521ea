"""The OpenCV way a Python user decodes a video and JPEG-encodes every frame (no broker): the ingest baseline.

Usage: python opencv_jpeg.py VIDEO QUALITY   -> prints "frames seconds"
"""
import sys
import time

import cv2

start = time.perf_counter()
cap = cv2.VideoCapture(sys.argv[1])
if not cap.isOpened():
    sys.exit(f"cannot open {sys.argv[1]}")
params = [cv2.IMWRITE_JPEG_QUALITY, int(sys.argv[2])]
frames = 0
while True:
    ok, frame = cap.read()
    if not ok:
        break
    ok, jpeg = cv2.imencode(".jpg", frame, params)
    if not ok:
        sys.exit("imencode failed")
    frames += 1
print(frames, time.perf_counter() - start)
