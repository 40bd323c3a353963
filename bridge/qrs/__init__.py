"""Talking to the Qlik Sense Repository Service (QRS): start reload tasks.

`tls` builds the client's TLS context from the certificates exported from the QMC, `client`
makes the requests (httpx, with Qlik's xrfkey and X-Qlik-User), `starter` decides whether a
start may happen (the allow-list, the rate limit) and counts the outcome: these three are
imported only when `qrs.enabled` (`allow`, pure, also decides the retry button's availability;
`reasons`, pure, names why a start did not happen, for the commands too).
"""
