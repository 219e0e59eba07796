"""Account matching and the ownership rules."""
