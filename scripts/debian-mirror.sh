# Sourced by scripts/setup and scripts/check-home-assistant-chroot (not run on its own):
# debian_mirror prints the Debian mirror this machine's apt sources name (its main archive, not
# -security), or nothing; no registry address is written in the scripts themselves.
debian_mirror() {
  # Each grep may find nothing (no .sources, or no .list files): not an error here.
  {
    grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | sed -E 's/^URIs:[[:space:]]*//' | tr ' ' '\n' || true
    grep -hsE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
      | sed -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}' || true
  } | { grep -E '/debian/?$' || true; } | head -1
}
