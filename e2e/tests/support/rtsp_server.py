#!/usr/bin/python3
"""A real RTSP server for the live-camera tests: GStreamer's RTSP server (Debian gir1.2-gst-rtsp-server-1.0).

Usage: rtsp_server.py PORT [WIDTHxHEIGHT] [FPS]
Serves rtsp://127.0.0.1:PORT/cam, a live H.264 test pattern with a running clock overlay. Prints "ready" once
it listens. Run with /usr/bin/python3 (Debian's Python carries the `gi` bindings).
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port = sys.argv[1]
width, height = (sys.argv[2] if len(sys.argv) > 2 else "320x240").split("x")
fps = sys.argv[3] if len(sys.argv) > 3 else "25"

server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 "
    f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
# One pipeline for all readers, as a camera has.
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print("ready", flush=True)
GLib.MainLoop().run()
