"""Job definitions, their loader, the planner and the runner."""
