"""Small runtime helpers every part uses: the guard around foreign code (extension hooks), the
supervisor of background tasks, logging with rate limits, and coalescing of publishes."""
