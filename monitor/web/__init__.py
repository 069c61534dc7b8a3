"""HTTP plumbing shared by the endpoints: bounded bodies, timeouts, access tokens, JSON replies."""
