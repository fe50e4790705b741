"""Generation: the engine (text ⟷ sketch decoding), the Trace it returns, the modes, answer extraction, the switching
event store, and the checks on user input done at the edges (CLI, app)."""
