"""The data flywheel: hard cases from the pose service through Redis Streams into a durable store,
then to labelers (docs/flywheel.md).

Modules: cases (the record), triggers (when a pose answer is a hard case), producer (onto the
stream, never blocking the caller), consumer (stream -> store, then ack), store (blobs + SQLite),
labeling (leases), labelstudio (task export/import), sim_labeler (the lab's labeler), chaos.
"""
