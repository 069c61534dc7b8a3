"""Call state: roles, the call model, the tracker's transitions, departure rules."""
