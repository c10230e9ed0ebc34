"""Order shipping: an orchestrator asks the shipping service by event and follows its answer."""
