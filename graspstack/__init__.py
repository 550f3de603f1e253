"""graspstack: pose estimation and grasp planning services for tabletop picking."""

__version__ = "0.1.0"
