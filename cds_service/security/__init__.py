"""security: at the door: client JWTs (CDS Hooks 2.0 "Trusting CDS Clients"), key sets, the replay
store, trust presets, and the rules for every URL the service calls out to."""
