//! Named, seeded load profiles (the reference method's topologies).

use serde::Serialize;

/// A load profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "profile", rename_all = "lowercase")]
pub enum Profile {
    /// `streams` independent 1 → 1 streams; `rate` is total input pps.
    P2p { streams: usize },
    /// `streams` streams each to `consumers`; `rate` is total OUTPUT pps.
    Fanout { streams: usize, consumers: usize },
    /// `participants` each send audio (50 pps, 160 B) and video (100 pps, ~1000 B) and receive
    /// everyone else; `rate` is ignored.
    Conference { participants: usize },
}

/// One RTP stream the generator sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stream {
    pub id: u32,
    pub ssrc: u32,
    pub payload_type: u8,
    pub video: bool,
    pub pps: f64,
    /// RTP payload bytes.
    pub size: usize,
    /// Indexes of the receiver sockets that consume it.
    pub receivers: Vec<usize>,
}

impl Profile {
    /// The streams for `rate` and `size`, with SSRCs drawn from `seed`; and the receiver count.
    pub fn streams(&self, rate: f64, size: usize, seed: u64) -> (Vec<Stream>, usize) {
        let mut x = seed | 1;
        let mut ssrc = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u32) | 1
        };
        match *self {
            Profile::P2p { streams } => {
                let v = (0..streams)
                    .map(|i| Stream {
                        id: i as u32,
                        ssrc: ssrc(),
                        payload_type: 96,
                        video: true,
                        pps: rate / streams as f64,
                        size,
                        receivers: vec![i],
                    })
                    .collect();
                (v, streams)
            }
            Profile::Fanout { streams, consumers } => {
                let v = (0..streams)
                    .map(|i| Stream {
                        id: i as u32,
                        ssrc: ssrc(),
                        payload_type: 96,
                        video: true,
                        pps: rate / (streams * consumers) as f64,
                        size,
                        receivers: (i * consumers..(i + 1) * consumers).collect(),
                    })
                    .collect();
                (v, streams * consumers)
            }
            Profile::Conference { participants } => {
                let mut v = Vec::new();
                for p in 0..participants {
                    let others: Vec<usize> = (0..participants).filter(|o| *o != p).collect();
                    for (video, pps, size, pt) in [(false, 50.0, 160, 111), (true, 100.0, 1000, 96)] {
                        v.push(Stream {
                            id: v.len() as u32,
                            ssrc: ssrc(),
                            payload_type: pt,
                            video,
                            pps,
                            size,
                            receivers: others.clone(),
                        });
                    }
                }
                (v, participants)
            }
        }
    }

    /// Output packets per second the profile asks for.
    pub fn output_pps(&self, rate: f64) -> f64 {
        match *self {
            Profile::P2p { .. } | Profile::Fanout { .. } => rate,
            Profile::Conference { participants } => (participants * (participants - 1)) as f64 * 150.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_rate_is_output_rate() {
        let (s, receivers) = Profile::Fanout { streams: 10, consumers: 10 }.streams(100_000.0, 1000, 1);
        assert_eq!(receivers, 100);
        let out: f64 = s.iter().map(|s| s.pps * s.receivers.len() as f64).sum();
        assert!((out - 100_000.0).abs() < 1e-6);
        let (c, n) = Profile::Conference { participants: 4 }.streams(0.0, 0, 1);
        assert_eq!((c.len(), n), (8, 4));
        assert_eq!(Profile::Conference { participants: 4 }.output_pps(0.0), 1800.0);
    }
}
