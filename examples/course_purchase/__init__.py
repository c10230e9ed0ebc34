"""Course purchase: an orchestrated saga (payment, then enrollment; refund on failure)."""
