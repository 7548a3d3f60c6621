"""A GStreamer RTSP server for tests; run with the SYSTEM python3 (the venv cannot import gi).

usage: /usr/bin/python3 rtsp_server.py PORT [FREQ]   -> serves rtsp://127.0.0.1:PORT/audio
Prints "ready" once listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port, freq = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 440.0
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( audiotestsrc is-live=true wave=sine freq={freq} volume=0.5 ! audioconvert ! audioresample ! "
    "audio/x-raw,rate=16000,channels=1 ! rtpL16pay name=pay0 pt=96 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/audio", factory)
if server.attach(None) == 0:
    sys.exit("could not bind")
print("ready", flush=True)
GLib.MainLoop().run()
