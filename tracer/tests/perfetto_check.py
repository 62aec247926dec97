#!/usr/bin/env python3
"""Decode a Perfetto trace with Perfetto's own published protos (PyPI package `perfetto`)
and print what the Rust tests check, as JSON: slices per name prefix, instants, and for
every flow id how many events carry it and how many terminate it. Ill-formed input fails
the parse (non-zero exit)."""
import collections
import json
import sys

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

trace = pb.Trace()
trace.ParseFromString(open(sys.argv[1], "rb").read())
tracks = {}
begins = collections.Counter()
ends = 0
instants = 0
flows = collections.defaultdict(lambda: [0, 0])
flow_tracks = collections.defaultdict(set)
args = {}
for packet in trace.packet:
    if packet.HasField("track_descriptor"):
        tracks[packet.track_descriptor.uuid] = packet.track_descriptor.name
    if not packet.HasField("track_event"):
        continue
    event = packet.track_event
    assert event.track_uuid in tracks, f"event on undeclared track {event.track_uuid}"
    if event.type == pb.TrackEvent.TYPE_SLICE_BEGIN:
        begins[event.name.split(" ")[0]] += 1
    elif event.type == pb.TrackEvent.TYPE_SLICE_END:
        ends += 1
    elif event.type == pb.TrackEvent.TYPE_INSTANT:
        instants += 1
    for flow in event.flow_ids:
        flows[flow][0] += 1
        flow_tracks[flow].add(event.track_uuid)
    for flow in event.terminating_flow_ids:
        flows[flow][1] += 1
        flow_tracks[flow].add(event.track_uuid)
        values = {}
        for annotation in event.debug_annotations:
            kind = annotation.WhichOneof("value")
            values[annotation.name] = getattr(annotation, kind) if kind else None
        args[str(flow)] = values
print(json.dumps({
    "tracks": len(tracks),
    "slice_begins": begins,
    "slice_ends": ends,
    "instants": instants,
    "flows": {str(k): v for k, v in flows.items()},
    "flows_across_tracks": sum(1 for v in flow_tracks.values() if len(v) > 1),
    "args": args,
}))
