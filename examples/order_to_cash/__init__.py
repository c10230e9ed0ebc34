"""Order to cash: payment, inventory, a fraud review by a person, shipping, confirmation."""
