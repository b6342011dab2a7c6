"""Survey-scale fitting: catalogs of cutouts, streamed in batches, checkpointed and resumable."""
