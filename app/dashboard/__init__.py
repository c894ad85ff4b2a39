"""Dashboard pages: project overview, jobs, models, datasets, drift alarms and the simulator report."""
