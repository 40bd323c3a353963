"""The core path and what it works on: typed events, live state and its flags, the counters,
and the shape of what is published (topics, payloads, privacy). `path.Bridge` takes each
datagram's event through the state to the extensions."""
