"""Git: the only place treefork talks to git (imperative shell)."""
