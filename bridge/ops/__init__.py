"""Operating the bridge: `check`, `status`, `health`, and where the running bridge is found."""
