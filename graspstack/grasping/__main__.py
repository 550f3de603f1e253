"""`python -m graspstack.grasping` regenerates the precomputed candidates in models/grasps/."""

from graspstack.grasping.candidates import write_cache

write_cache()
