"""Payment, inventory, notification: the same flow as an orchestrated saga and as a choreography."""
