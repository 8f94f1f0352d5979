"""trajectories: agent runs in, trajectory pairs, step pairs, step labels and KTO rows out."""
