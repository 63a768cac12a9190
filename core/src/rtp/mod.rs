//! RTP (RFC 3550) packet views.
