//! RTCP (RFC 3550, RFC 4585) packet views.
