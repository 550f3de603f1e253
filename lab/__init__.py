"""The lab cell: a PyBullet tabletop with cameras and exact ground truth (CONTRACTS sections 1-3)."""
