"""The pose model (issue 4): PoseNet on the whole RGB-D frame, centre-vote decoding, depth refinement.

Modules: network (the FCN and its input encoding), data/targets/losses/train (training), decode and
refine (from network outputs to poses), infer (the Predictor), registry (models/pose versions),
report and bench (held-out scores, confidence quality and per-stage latency for the model card).
"""
