"""What customers asked for or told us: opt-outs, holds, disputes; agents' calls."""
